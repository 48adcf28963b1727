package limiter

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

func TestWaitIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	rdb := newTestClient(t)
	hook := &countingHook{}
	rdb.AddHook(hook)
	lim := New(rdb, Config{Rate: 1000, Burst: 1000}, WithPrefix(testutil.KeyPrefix(t, rdb)))
	t.Cleanup(func() { _ = lim.Close() })
	ctx := context.Background()
	if err := lim.Wait(ctx, "warmup", "m"); err != nil { // loads the script
		t.Fatal(err)
	}
	hook.n.Store(0)
	const n = 50
	for range n {
		if err := lim.Wait(ctx, portal, "department.add"); err != nil {
			t.Fatal(err)
		}
	}
	if got := hook.n.Load(); got != n {
		t.Fatalf("%d Waits sent %d commands to Redis, want %d", n, got, n)
	}
}

// TestMultiProcessRealTime runs 4 independent limiters (separate Redis
// clients, as separate worker processes would have) that ask as fast as they
// can for 5s, and checks the combined grants against the shared budget.
func TestMultiProcessRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time test takes 5s")
	}
	t.Parallel()
	const (
		rate       = 20
		burst      = 10
		processes  = 4
		goroutines = 4 // per process
		runFor     = 5 * time.Second
	)
	rdb := newTestClient(t)
	prefix := testutil.KeyPrefix(t, rdb)
	cfg := Config{Rate: rate, Burst: burst}

	var (
		mu     sync.Mutex
		grants []time.Time
		wg     sync.WaitGroup
	)
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(runFor))
	t.Cleanup(cancel)
	for range processes {
		lim := New(newTestClient(t), cfg, WithPrefix(prefix))
		t.Cleanup(func() { _ = lim.Close() })
		for range goroutines {
			wg.Go(func() {
				for {
					err := lim.Wait(ctx, portal, "department.add")
					now := time.Now()
					var de *DelayError
					switch {
					case err == nil:
						mu.Lock()
						grants = append(grants, now)
						mu.Unlock()
					case errors.As(err, &de), ctx.Err() != nil:
						return // the next slot is past the end of the run
					default:
						t.Errorf("Wait: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := runFor

	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
	shared := cfg.WithDefaults().SharedBurst() // 9: burst less 1 of headroom
	want := float64(shared) + rate*elapsed.Seconds()
	got := float64(len(grants))
	t.Logf("%d grants in %v (expected %.0f); first %v after start, last %v",
		len(grants), elapsed, want, grants[0].Sub(start), grants[len(grants)-1].Sub(start))
	if got < want*0.95 || got > want*1.05 {
		t.Errorf("%d grants, want %.0f ±5%%", len(grants), want)
	}
	// No 1-second window holds more than the bucket allows: shared burst +
	// rate for any window, rate + 1 for windows starting after the initial
	// burst.
	for i, g := range grants {
		end := g.Add(time.Second)
		n, _ := slices.BinarySearchFunc(grants, end, func(a, b time.Time) int { return a.Compare(b) })
		n -= i
		limit := rate + 1
		if i < shared {
			limit = shared + rate + 1
		}
		if n > limit {
			t.Errorf("window starting at +%v (grant %d) holds %d grants, limit %d", g.Sub(start), i, n, limit)
		}
	}
}

func TestWaitLocalDelayDoesNotTouchRedis(t *testing.T) {
	t.Parallel()
	rdb := newTestClient(t)
	hook := &countingHook{}
	rdb.AddHook(hook)
	// Local smoothing at 1/s with burst 1; the shared bucket would allow more.
	lim := New(rdb, Config{Rate: 1, Burst: 10, LocalBurst: 1},
		WithPrefix(testutil.KeyPrefix(t, rdb)), WithMaxWait(500*time.Millisecond))
	t.Cleanup(func() { _ = lim.Close() })
	ctx := context.Background()
	if err := lim.Wait(ctx, portal, "m"); err != nil {
		t.Fatal(err)
	}
	before := hook.n.Load()
	for range 3 { // refused locally, and the local token is given back each time
		var de *DelayError
		if err := lim.Wait(ctx, portal, "m"); !errors.As(err, &de) || de.Delay <= 500*time.Millisecond || de.Delay > time.Second {
			t.Fatalf("Wait = %v, want *DelayError of about 1s", err)
		}
	}
	if got := hook.n.Load() - before; got != 0 {
		t.Fatalf("locally refused Waits sent %d commands to Redis", got)
	}
	// The shared bucket was not touched by the refused calls.
	if d, err := lim.Reserve(ctx, portal, "m"); err != nil || d != 0 {
		t.Fatalf("Reserve = %v, %v; want 0 (8 of the shared 9 left)", d, err)
	}
}

// TestServerClock exercises the scripts with the Redis server's clock (no
// WithClock), as in production.
func TestServerClock(t *testing.T) {
	t.Parallel()
	rdb := newTestClient(t)
	cfg := Config{Rate: 2, Burst: 5, Cooldown: 2 * time.Second}
	lim := New(rdb, cfg, WithPrefix(testutil.KeyPrefix(t, rdb)))
	ctx := context.Background()
	if err := lim.Throttled(ctx, portal); err != nil {
		t.Fatal(err)
	}
	d, err := lim.Reserve(ctx, portal, "m")
	if err != nil {
		t.Fatal(err)
	}
	// cooldown + 1/1.6 s, less the little time between the two calls.
	if want := 2625 * time.Millisecond; d > want || d < want-200*time.Millisecond {
		t.Fatalf("Reserve after Throttled = %v, want about %v", d, want)
	}
	until := time.Now().Add(time.Minute)
	if err := lim.Block(ctx, portal, "m", until); err != nil {
		t.Fatal(err)
	}
	got, blocked, err := lim.Blocked(ctx, portal, "m")
	if err != nil || !blocked || !got.Equal(until.Truncate(time.Microsecond)) {
		t.Fatalf("Blocked = %v, %v, %v; want %v", got, blocked, err, until)
	}
	var be *BlockedError
	if _, err := lim.Reserve(ctx, portal, "m"); !errors.As(err, &be) {
		t.Fatalf("Reserve of blocked method = %v, want *BlockedError", err)
	}
}
