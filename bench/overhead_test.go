package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/tasks"
)

// overheadN is the number of tasks each side processes; overheadConc the
// concurrency of the one worker process on each side (the default
// WORKER_CONCURRENCY).
const (
	overheadN    = 3000
	overheadConc = 10
)

// overheadRounds is how many (bare, ours) pairs one benchmark run measures;
// the reported figures are the medians. The machines this runs on are
// shared (other test suites, the Redis server and the portal use the same
// CPUs, and the virtual CPUs themselves slow down and speed up), and a
// single pair swings by a factor of 1.5. The two sides of a pair run in
// alternating order, so that a machine slowing down or speeding up during
// a run does not favour either.
const overheadRounds = 7

// BenchmarkOverheadVsBareAsynq compares the throughput of our worker with a
// bare asynq server on the same Redis, against a no-op portal (noopPortal:
// no limits, no latency, an answer with a new ID at once):
//
//   - ours: one worker process (internal/worker, the full handler: shared
//     limiter grant that also sets the attempt marker, the HTTP call, task
//     result written, metrics; LOG_LEVEL=warn, so no line per task);
//   - bare: an asynq server with the same concurrency whose handler for the
//     same department:create tasks (same payloads and options) returns nil.
//
// overhead_ratio = tasks/s of ours ÷ tasks/s of bare, the median over
// overheadRounds back-to-back pairs; target ≥ 0.5. Both sides are timed
// from the server's start to the last task's completion, with the tasks
// queued beforehand. The portal runs in this process, so its request
// handling competes for the same two CPUs as the worker's: the figure is a
// little pessimistic, as the benchmarks here always are.
//
// The portal is deliberately not b24test's simulator, whose own work per
// request (parameters decoded into a PHP-like map, limit bookkeeping,
// statistics) would be charged to the worker here; with it the ratio is
// about 10% lower (see the README).
func BenchmarkOverheadVsBareAsynq(b *testing.B) {
	var ratio, ours, bare float64
	for range b.N {
		b.StopTimer()
		rdb := benchRedis(b)
		var ratios, oursRates, bareRates []float64
		for round := range overheadRounds {
			var bareRate, oursRate float64
			if round%2 == 0 {
				bareRate = bareRun(b, rdb)
				oursRate = oursRun(b, rdb)
			} else {
				oursRate = oursRun(b, rdb)
				bareRate = bareRun(b, rdb)
			}
			ratios = append(ratios, oursRate/bareRate)
			oursRates = append(oursRates, oursRate)
			bareRates = append(bareRates, bareRate)
			b.Logf("%d tasks, concurrency %d: ours %.0f tasks/s, bare asynq %.0f tasks/s, ratio %.3f",
				overheadN, overheadConc, oursRate, bareRate, oursRate/bareRate)
		}
		ratio += median(ratios)
		ours += median(oursRates)
		bare += median(bareRates)
	}
	n := float64(b.N)
	b.ReportMetric(ratio/n, "overhead_ratio")
	b.ReportMetric(ours/n, "ours_tasks/s")
	b.ReportMetric(bare/n, "bare_tasks/s")
}

// median returns the median of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// bareRun returns the tasks/s of a do-nothing asynq handler.
func bareRun(b *testing.B, rdb *redis.Client) float64 {
	portal := uniqueName("bare")
	queue := tasks.QueueName(portal)
	cleanupRedis(b, rdb, queue, portal)
	enqueueDepartments(b, rdb, portal, overheadN)

	// Its own Redis client, built as the worker builds its own.
	own, err := config.Redis{URL: redisURL}.UniversalClient()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = own.Close() })
	srv := asynq.NewServerFromRedisClient(own, asynq.Config{
		Concurrency: overheadConc,
		Queues:      map[string]int{queue: 1},
		LogLevel:    asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeDepartmentCreate, func(context.Context, *asynq.Task) error { return nil })

	b.StartTimer()
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	elapsed := waitCompleted(b, rdb, queue, overheadN, time.Minute).Sub(start)
	b.StopTimer()
	srv.Shutdown()
	return overheadN / elapsed.Seconds()
}

// oursRun returns the tasks/s of one worker process against a portal that
// limits nothing.
func oursRun(b *testing.B, rdb *redis.Client) float64 {
	portal := uniqueName("ours")
	queue := tasks.QueueName(portal)
	cleanupRedis(b, rdb, queue, portal)
	p := startNoopPortal(b)
	enqueueDepartments(b, rdb, portal, overheadN)
	limits := config.Limits{Rate: 1e6, Burst: 1e6, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	cfg := workerConfig(portal, p.webhook, limits, overheadConc)

	b.StartTimer()
	start := time.Now()
	f := startFleet(b, 1, cfg, portal)
	elapsed := waitCompleted(b, rdb, queue, overheadN, time.Minute).Sub(start)
	b.StopTimer()
	f.stop()
	p.checkOnce(b, overheadN)
	return overheadN / elapsed.Seconds()
}

// noopPortal is the portal of the overhead benchmark: it answers every
// department.add at once with a new ID and a time block, as a portal with
// no limits and no work would. It remembers the names it was sent, so that
// checkOnce can tell a department created twice (or a call that was not a
// department.add) from a run that went right.
type noopPortal struct {
	webhook string

	mu    sync.Mutex
	names map[string]int // NAME → calls
	bad   []string       // what was wrong with calls that were not a department.add
}

// noopAnswer is the answer body after the ID: a time block as the portal
// sends it, with a processing time the limiter's tracking ignores.
const noopAnswer = `,"time":{"start":1763900000.1,"finish":1763900000.1001,"duration":0.0001,"processing":0.00005,"date_start":"2025-11-23T12:00:00+03:00","date_finish":"2025-11-23T12:00:00+03:00","operating":0}}`

// startNoopPortal serves a no-op portal until b ends.
func startNoopPortal(b *testing.B) *noopPortal {
	b.Helper()
	p := &noopPortal{names: map[string]int{}}
	ts := httptest.NewServer(http.HandlerFunc(p.serve))
	b.Cleanup(ts.Close)
	p.webhook = ts.URL + "/rest/1/noopwebhookcode/"
	return p
}

func (p *noopPortal) serve(w http.ResponseWriter, r *http.Request) {
	var params struct {
		Name string `json:"NAME"`
	}
	err := json.NewDecoder(r.Body).Decode(&params)
	p.mu.Lock()
	switch {
	case !strings.HasSuffix(r.URL.Path, "/department.add"):
		p.bad = append(p.bad, "call of "+r.URL.Path)
	case err != nil || params.Name == "":
		p.bad = append(p.bad, fmt.Sprintf("department.add without a NAME (%v)", err))
	}
	p.names[params.Name]++
	id := len(p.names) + 1
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = fmt.Fprintf(w, `{"result":%d%s`, id, noopAnswer)
}

// checkOnce fails b unless the portal was asked to create n departments,
// each once, and nothing else.
func (p *noopPortal) checkOnce(b *testing.B, n int) {
	b.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, msg := range p.bad {
		b.Error(msg)
	}
	if len(p.names) != n {
		b.Errorf("portal was asked for %d departments, want %d", len(p.names), n)
	}
	for name, calls := range p.names {
		if calls != 1 {
			b.Errorf("department %q: %d department.add calls, want 1", name, calls)
		}
	}
}

// waitCompleted polls the queue until n tasks are completed and returns
// when that was seen; it fails b when any task is archived or after
// timeout. The poll interval (10 ms) bounds the timing error.
//
// It reads the sizes of asynq's completed and archived sets (keys
// asynq:{QUEUE}:completed and :archived) with two ZCARDs rather than
// Inspector.GetQueueInfo, which also samples the queue's memory (MEMORY
// USAGE and a dozen other commands): polled every 10 ms, that load on the
// shared Redis slowed the very runs it timed.
func waitCompleted(b *testing.B, rdb *redis.Client, queue string, n int, timeout time.Duration) time.Time {
	b.Helper()
	ctx := context.Background()
	completed, archived := "asynq:{"+queue+"}:completed", "asynq:{"+queue+"}:archived"
	deadline := time.Now().Add(timeout)
	for {
		pipe := rdb.Pipeline()
		done, failed := pipe.ZCard(ctx, completed), pipe.ZCard(ctx, archived)
		_, err := pipe.Exec(ctx)
		if err == nil && done.Val() >= int64(n) {
			return time.Now()
		}
		if err == nil && failed.Val() > 0 {
			b.Fatalf("queue %s: %d tasks archived", queue, failed.Val())
		}
		if time.Now().After(deadline) {
			b.Fatalf("queue %s: %d of %d tasks completed after %v (err %v)", queue, done.Val(), n, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
