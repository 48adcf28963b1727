package bench

import (
	"math"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/tasks"
)

// The scaled operating limit: a budget of 2 s of execution per 10 s window
// (the real one is 480 s per 10 min), 3 worker processes × 4 slots, and two
// call costs:
//
//   - scaled: each department.add billed 0.125 s, so 16 calls fit in a
//     window and 64 departments need 4 windows. The fleet's 12 calls in
//     flight (1.5 s) fit in the budget, as on a real plan, where 12 or even
//     100 calls of a second are a small part of 480 s. (The 16th call starts
//     at 1.875 s, below the 95% margin: with 0.1 s calls the margin would
//     hold back the 20th call of every window, as it is meant to, and the
//     run would need a fifth window.)
//   - dense: each call billed 0.25 s (8 per window, 32 departments). The
//     calls in flight (3 s) exceed the whole budget, which no real plan
//     comes near: it shows the cold start, where 12 calls leave together
//     before any answer has told the fleet how much a call costs.
const (
	opLimit   = 2 * time.Second
	opWindow  = 10 * time.Second
	opWorkers = 3
	opConc    = 4
)

// minOperatingTime is the shortest time in which n calls of cost c can be
// executed under a budget of L per rolling window W, measured from the first
// call to the last.
//
// The portal executes a call when the method's total in the window is below
// L at its arrival, and then bills c (the call that crosses L completes).
// So among the calls executed in any window of length W, the last saw the
// k−1 before it billed: (k−1)·c < L, hence k ≤ m = ceil(L/c) calls per
// window. Any m+1 consecutive executed calls therefore span at least W:
// t[i+m] − t[i] ≥ W. Chaining that from the first call, the n-th call comes
// at least floor((n−1)/m)·W after the first:
//
//	T_min(n) = (ceil(n/m) − 1) · W,  m = ceil(L/c)
//
// which is ceil(n·c/L − 1)·W when L is a multiple of c. With L = 2 s,
// W = 10 s and c = 0.125 s, n = 64 (or c = 0.25 s, n = 32): m = 16 (8),
// T_min = 3 windows = 30 s.
//
// The simulator counts the window in 10 buckets of W/10, and an execution
// leaves the window with its bucket, up to W/10 earlier than t+W. The
// benchmark therefore starts on a bucket boundary (the buckets are aligned
// to multiples of W/10 in Unix time): the first group of calls then lands at
// the start of its bucket, every later group is released exactly W after
// the one before, and the bound above holds for the simulator too.
func minOperatingTime(n int, limit, window, cost time.Duration) time.Duration {
	m := int(math.Ceil(limit.Seconds() / cost.Seconds()))
	groups := (n + m - 1) / m
	return time.Duration(groups-1) * window
}

// BenchmarkOperatingLimit measures how closely a fleet of 3 worker processes
// follows the operating-time budget of a method: time_ratio is the time
// from the start to the portal's last department.add divided by
// minOperatingTime (target ≤ 1.1), and 429s_per_block is the number of
// OPERATION_TIME_LIMIT answers per time the fleet had to stop and wait for
// the window to move (target ≤ 1): at least ceil(n/m) − 1 blocks, more when
// the portal's window freed the budget in steps (see stops).
//
// The query limit is out of the way (50 req/s, burst 50, for at most 64
// calls).
func BenchmarkOperatingLimit(b *testing.B) {
	for _, tc := range []struct {
		name string
		cost time.Duration
		n    int
	}{
		{"scaled", 125 * time.Millisecond, 64},
		{"dense", 250 * time.Millisecond, 32},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var ratio, per float64
			for range b.N {
				r, p := operatingRun(b, tc.cost, tc.n)
				ratio += r
				per += p
			}
			n := float64(b.N)
			b.ReportMetric(ratio/n, "time_ratio")
			b.ReportMetric(per/n, "429s_per_block")
		})
	}
}

func operatingRun(b *testing.B, cost time.Duration, n int) (ratio, perBlock float64) {
	b.StopTimer()
	rdb := benchRedis(b)
	portal := uniqueName("operating")
	cleanupRedis(b, rdb, tasks.QueueName(portal), portal)
	s := startSim(b, b24test.Config{Rate: 50, Burst: 50, OperatingLimit: opLimit, OperatingWindow: opWindow, CallCost: cost})
	enqueueDepartments(b, rdb, portal, n)
	limits := config.Limits{Rate: 50, Burst: 50, OperatingLimit: opLimit, OperatingWindow: opWindow}
	cfg := workerConfig(portal, s.webhook, limits, opConc)

	// Start on a bucket boundary of the simulator's window (see
	// minOperatingTime).
	bucket := opWindow / 10
	time.Sleep(time.Until(time.Now().Truncate(bucket).Add(bucket)))
	b.StartTimer()
	start := time.Now()
	f := startFleet(b, opWorkers, cfg, portal)
	min := minOperatingTime(n, opLimit, opWindow, cost)
	last := s.waitCreated(b, n, 3*min+30*time.Second)
	b.StopTimer()
	f.stop()

	st := s.checkOnce(b, n)
	elapsed := last.Sub(start)
	m := int(math.Ceil(opLimit.Seconds() / cost.Seconds()))
	blocks := max((n+m-1)/m-1, stops(s.answers(), opWindow/20))
	ratio = elapsed.Seconds() / min.Seconds()
	perBlock = float64(st.Rejected429) / float64(blocks)
	b.Logf("%d calls of %v under %v per %v: %v, minimum %v, ratio %.3f; %d requests, %d 429s over %d blocks",
		n, cost, opLimit, opWindow, elapsed.Round(time.Millisecond), min, ratio, st.Requests, st.Rejected429, blocks)
	if testing.Verbose() {
		for _, a := range s.answers() {
			b.Logf("  %s %d", a.at.Sub(start).Round(time.Millisecond), a.status)
		}
	}
	return ratio, perBlock
}

// stops counts the times the fleet stopped creating: gaps longer than gap
// between consecutive successful answers. A group of calls that straddles a
// bucket boundary of the simulator's window frees its budget in two steps,
// so the fleet may have to stop more often than ceil(n/m) − 1 times.
func stops(answers []answer, gap time.Duration) int {
	n := 0
	var prev time.Time
	for _, a := range answers {
		if a.status != 200 {
			continue
		}
		if !prev.IsZero() && a.at.Sub(prev) > gap {
			n++
		}
		prev = a.at
	}
	return n
}
