package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
)

// simRedisDB is the package's Redis database for tests (limiter uses DB 1);
// every testutil.Redis(t, simRedisDB) is a separate client: one "process".
const simRedisDB = 1

// pacer adapts a Limiter to b24.Pacer for one portal, as the tasks package
// does.
type pacer struct {
	lim    *limiter.Limiter
	portal string
}

func (p pacer) Wait(ctx context.Context, method string) error {
	return p.lim.Wait(ctx, p.portal, method)
}

// TestSimulatedPortal runs 3 worker processes (each its own Redis client,
// Limiter and b24 client, with several goroutines) creating departments as
// fast as they can for 20s against a simulated portal with the same rate and
// burst as the limiter. The portal must never answer 503, and the fleet must
// still use at least 90% of what the shared bucket allows.
func TestSimulatedPortal(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time test takes 20s")
	}
	t.Parallel()
	const (
		rate       = 10
		burst      = 20
		clients    = 3
		goroutines = 4 // per client
		runFor     = 20 * time.Second
		portal     = "sim"
	)
	srv := b24test.NewServer(t, b24test.Config{Rate: rate, Burst: burst})
	cfg := limiter.Config{Rate: rate, Burst: burst}
	prefix := testutil.KeyPrefix(t, testutil.Redis(t, simRedisDB))

	var (
		wg        sync.WaitGroup
		throttles atomic.Int64
	)
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(runFor))
	t.Cleanup(cancel)
	for c := range clients {
		lim := limiter.New(testutil.Redis(t, simRedisDB), cfg, limiter.WithPrefix(prefix))
		t.Cleanup(func() { _ = lim.Close() })
		client, err := b24.NewWebhook(srv.WebhookURL(), b24.WithPacer(pacer{lim, portal}))
		if err != nil {
			t.Fatal(err)
		}
		for g := range goroutines {
			wg.Go(func() {
				for i := 0; ; i++ {
					_, _, err := client.AddDepartment(ctx, b24.DepartmentFields{
						Name: fmt.Sprintf("c%d-g%d-%d", c, g, i), Parent: 1,
					})
					var de *limiter.DelayError
					switch {
					case err == nil:
					case errors.As(err, &de), ctx.Err() != nil:
						return // the next slot is past the end of the run
					case b24.Classify(err) == b24.RateLimited:
						throttles.Add(1) // what a worker does on a 503
						if err := lim.Throttled(context.Background(), portal); err != nil {
							t.Errorf("Throttled: %v", err)
						}
					default:
						t.Errorf("AddDepartment: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	st := srv.Stats()
	shared := cfg.WithDefaults().SharedBurst()
	allowed := float64(shared) + rate*runFor.Seconds()
	t.Logf("%d requests in %v (shared bucket allows %.0f), %d 503s, max %d in 1s",
		st.Requests, elapsed.Round(time.Millisecond), allowed, st.Rejected503, st.MaxPerSecond)
	if st.Rejected503 != 0 || throttles.Load() != 0 {
		t.Errorf("portal answered 503 %d times (clients saw %d), want 0", st.Rejected503, throttles.Load())
	}
	if float64(st.Requests) < 0.9*allowed {
		t.Errorf("%d requests, want at least 90%% of %.0f", st.Requests, allowed)
	}
	if float64(st.Requests) > allowed+1 {
		t.Errorf("%d requests, more than the %.0f the shared bucket allows", st.Requests, allowed)
	}
}
