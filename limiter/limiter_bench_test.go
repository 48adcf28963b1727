package limiter

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

// BenchmarkWait measures the shared limiter under more demand than it allows:
// 16 goroutines of one process call Wait for 2s at rate 200, burst 20. It
// reports
//
//	roundtrips/grant  Redis round trips per granted request (must be 1)
//	rate_ratio        grants / (shared burst + rate × elapsed) (target >= 0.97)
//
// Each iteration takes about 2s; run it with -benchtime 1x.
func BenchmarkWait(b *testing.B) {
	const (
		rate       = 200
		burst      = 20
		goroutines = 16
		runFor     = 2 * time.Second
	)
	rdb := newTestClient(b)
	hook := &countingHook{}
	rdb.AddHook(hook)
	prefix := testutil.KeyPrefix(b, rdb)
	ctx := context.Background()
	var roundTrips, grants, ratioSum float64
	for i := 0; i < b.N; i++ {
		cfg := Config{Rate: rate, Burst: burst}
		lim := New(rdb, cfg, WithPrefix(prefix))
		shared := float64(cfg.WithDefaults().SharedBurst())
		p := "bench" + time.Now().Format("150405.000000")
		warmUp(b, lim, goroutines)
		hook.n.Store(0)
		var (
			inTime, calls atomic.Int64
			wg            sync.WaitGroup
		)
		start := time.Now()
		end := start.Add(runFor)
		for range goroutines {
			wg.Go(func() {
				for time.Now().Before(end) {
					calls.Add(1)
					if err := lim.Wait(ctx, p, "department.add"); err != nil {
						b.Error(err)
						return
					}
					if !time.Now().After(end) {
						inTime.Add(1)
					}
				}
			})
		}
		wg.Wait()
		roundTrips += float64(hook.n.Load())
		grants += float64(calls.Load())
		ratioSum += float64(inTime.Load()) / (shared + rate*runFor.Seconds())
		_ = lim.Close()
	}
	b.ReportMetric(roundTrips/grants, "roundtrips/grant")
	b.ReportMetric(ratioSum/float64(b.N), "rate_ratio")
	b.ReportMetric(0, "ns/op") // one op is a 2s run; its duration says nothing
}

// BenchmarkReserve measures the cost of one grant with the bucket never
// limiting (rate 1e9): the latency of the single Redis round trip.
func BenchmarkReserve(b *testing.B) {
	rdb := newTestClient(b)
	hook := &countingHook{}
	rdb.AddHook(hook)
	lim := New(rdb, Config{Rate: 1e9, Burst: 1 << 30}, WithPrefix(testutil.KeyPrefix(b, rdb)))
	ctx := context.Background()
	if _, err := lim.Reserve(ctx, portal, "m"); err != nil {
		b.Fatal(err)
	}
	hook.n.Store(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := lim.Reserve(ctx, portal, "m"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/grant")
}

// warmUp loads the script and opens the pool's connections (whose handshake
// commands would otherwise be counted) by reserving from n goroutines at once
// on a separate portal.
func warmUp(b *testing.B, lim *Limiter, n int) {
	b.Helper()
	lim.Configure("warmup", Config{Rate: 1e9, Burst: 1 << 30})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for range 5 {
				if _, err := lim.Reserve(context.Background(), "warmup", "m"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
