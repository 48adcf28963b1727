package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/tasks"
)

// goodputBurst is the portal's bucket size in every goodput run (a standard
// plan's 50).
const goodputBurst = 50

// goodputWorkers and goodputConcurrency are the fleet: 3 worker processes
// with the default WORKER_CONCURRENCY.
const (
	goodputWorkers     = 3
	goodputConcurrency = 10
)

// goodputLatency is the simulated portal's processing time per call: real
// portals answer in tens to hundreds of milliseconds, and a non-zero latency
// keeps several requests in flight, which is where pacing goes wrong.
const goodputLatency = 20 * time.Millisecond

// BenchmarkGoodput measures how close a fleet of 3 worker processes comes to
// the portal's query limit while never overrunning it.
//
// In elapsed time T a portal draining R req/s with a bucket of B accepts at
// most B + R·T requests (the bucket is empty at the start), so no client can
// create more than R + B/T departments per second. goodput_ratio is the
// created-per-second rate divided by that bound; T runs from the moment the
// workers start (the tasks are already queued) to the portal's answer to the
// last department.add. Target ≥ 0.95 with zero 503s.
//
// The limiter is configured with the portal's own R and B (B24_RATE,
// B24_BURST). It keeps a little of the burst free (limiter.Config.Headroom,
// 10% by default) against network jitter, which the ratio pays for: at
// most 5 requests over the whole run.
//
// The department counts are scaled with the rate so that each run takes
// under a minute: 150 at R=2, 250 at R=5, 1,000 at R=50.
func BenchmarkGoodput(b *testing.B) {
	for _, c := range []struct {
		rate float64
		n    int
	}{
		{2, 150},
		{5, 250},
		{50, 1000},
	} {
		b.Run(fmt.Sprintf("rate=%g", c.rate), func(b *testing.B) {
			var ratio, s503, perSec float64
			for range b.N {
				r := goodputRun(b, c.rate, c.n)
				ratio += r.ratio
				s503 += float64(r.rejected503)
				perSec += r.perSecond
			}
			n := float64(b.N)
			b.ReportMetric(ratio/n, "goodput_ratio")
			b.ReportMetric(s503/n, "503s")
			b.ReportMetric(perSec/n, "created/s")
		})
	}
}

type goodputResult struct {
	ratio       float64
	perSecond   float64
	rejected503 int
	elapsed     time.Duration
}

// goodputRun creates n departments through the fleet at rate against a
// fresh portal and returns the figures of the run.
func goodputRun(b *testing.B, rate float64, n int) goodputResult {
	b.StopTimer()
	rdb := benchRedis(b)
	portal := uniqueName("goodput")
	cleanupRedis(b, rdb, tasks.QueueName(portal), portal)
	s := startSim(b, b24test.Config{Rate: rate, Burst: goodputBurst, Latency: goodputLatency})
	enqueueDepartments(b, rdb, portal, n)

	limits := config.Limits{Rate: rate, Burst: goodputBurst, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	cfg := workerConfig(portal, s.webhook, limits, goodputConcurrency)
	b.StartTimer()
	start := time.Now()
	f := startFleet(b, goodputWorkers, cfg, portal)
	last := s.waitCreated(b, n, time.Duration(float64(n)/rate*float64(time.Second))+60*time.Second)
	b.StopTimer()
	f.stop()

	st := s.checkOnce(b, n)
	elapsed := last.Sub(start)
	bound := goodputBurst + rate*elapsed.Seconds() // requests the portal accepts in elapsed
	r := goodputResult{
		ratio:       float64(n) / bound,
		perSecond:   float64(n) / elapsed.Seconds(),
		rejected503: st.Rejected503,
		elapsed:     elapsed,
	}
	b.Logf("rate %g burst %d: %d departments in %v (%.2f/s), bound %.2f/s, ratio %.3f; %d requests, %d 503s, max %d in 1 s",
		rate, goodputBurst, n, elapsed.Round(time.Millisecond), r.perSecond, bound/elapsed.Seconds(), r.ratio,
		st.Requests, st.Rejected503, st.MaxPerSecond)
	return r
}
