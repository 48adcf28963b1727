package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// The import of BenchmarkGoodputBatch: a root under the portal's
// department 1, 50 children under it, and the rest spread 50 per child:
// three levels, the last of 949 departments; against a standard plan.
const (
	batchN      = 1000
	batchFanout = 50
	batchRate   = 2
)

// BenchmarkGoodputBatch imports 1,000 departments in batch mode (item tasks
// grouped by asynq and sent as Bitrix24 batch requests of up to 50
// commands) through 3 worker processes against a standard-plan portal
// (2 req/s, burst 50), and reports:
//
//   - items_per_request: departments created per REST request the portal
//     admitted (lookups included); 50 is the ceiling;
//   - created/s, and 503s (target 0);
//   - single_bound_ratio: created/s ÷ (R + B/T), the ratio of
//     BenchmarkGoodput. Call by call it cannot exceed 1; batch mode is how
//     it does.
//
// T runs from the servers' start (the import submitted beforehand) to the
// portal's last successful batch answer.
//
// The worker runtime (internal/worker) does not configure batch mode yet,
// so the "processes" here are asynq servers wired as the tasks package
// documents it (BatchServerConfig(true), BatchMux, RetryDelay, IsFailure),
// each with its own go-redis client, limiter and portal client, like the
// in-process servers of the tasks package's fleet tests.
func BenchmarkGoodputBatch(b *testing.B) {
	var perReq, perSec, s503, ratio float64
	for range b.N {
		b.StopTimer()
		rdb := benchRedis(b)
		portal := uniqueName("batch")
		queue := tasks.QueueName(portal)
		cleanupRedis(b, rdb, queue, portal)
		s := startSim(b, b24test.Config{Rate: batchRate, Burst: goodputBurst, Latency: goodputLatency})

		imports := tasks.NewImports(rdb, asynq.NewClientFromRedisClient(rdb), portal, nil, tasks.WithBatch(true))
		if _, err := imports.Submit(context.Background(), portal, "batch", batchFile()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = imports.Store().Delete(context.Background(), "batch") })

		limits := limiter.Config{Rate: batchRate, Burst: goodputBurst}
		b.StartTimer()
		start := time.Now()
		for i := range goodputWorkers {
			startBatchServer(b, portal, s.webhook, limits, i)
		}
		last := s.waitCreated(b, batchN, 60*time.Second)
		b.StopTimer()

		st := s.checkOnce(b, batchN)
		elapsed := last.Sub(start)
		perReq += float64(batchN) / float64(st.Requests)
		perSec += batchN / elapsed.Seconds()
		s503 += float64(st.Rejected503)
		ratio += batchN / (goodputBurst + batchRate*elapsed.Seconds())
		b.Logf("%d departments in %v with %d requests (%.1f per request), %d 503s",
			batchN, elapsed.Round(time.Millisecond), st.Requests, float64(batchN)/float64(st.Requests), st.Rejected503)
	}
	n := float64(b.N)
	b.ReportMetric(perReq/n, "items_per_request")
	b.ReportMetric(perSec/n, "created/s")
	b.ReportMetric(s503/n, "503s")
	b.ReportMetric(ratio/n, "single_bound_ratio")
}

// batchFile returns the import of BenchmarkGoodputBatch.
func batchFile() *importer.File {
	f := &importer.File{}
	root := int64(1)
	for i := range batchN {
		d := importer.Department{Key: fmt.Sprintf("d%d", i), Name: fmt.Sprintf("Department %d", i)}
		if i == 0 {
			d.ParentID = &root
		} else {
			d.Parent = fmt.Sprintf("d%d", (i-1)/batchFanout)
		}
		f.Departments = append(f.Departments, d)
	}
	return f
}

// startBatchServer runs one batch-mode worker "process" until b ends: its
// own Redis client, limiter, portal client, import tracker and asynq server.
func startBatchServer(b *testing.B, portal, webhook string, limits limiter.Config, i int) {
	b.Helper()
	rdb := testutil.Redis(b, redisDB)
	log := logger().With("worker", i)
	lim := limiter.New(rdb, limits, limiter.WithPrefix(portal), limiter.WithLogger(log))
	p, err := tasks.NewPortal(tasks.PortalConfig{Name: portal, WebhookURL: webhook, Limits: limits, Timeout: 10 * time.Second}, lim, nil, nil, log)
	if err != nil {
		b.Fatal(err)
	}
	h, err := tasks.NewHandler(tasks.HandlerConfig{
		Portals: []*tasks.Portal{p},
		Claims:  tasks.NewClaims(rdb, portal),
		Imports: tasks.NewImports(rdb, asynq.NewClientFromRedisClient(rdb), portal, log, tasks.WithBatch(true)),
		Logger:  log,
	})
	if err != nil {
		b.Fatal(err)
	}
	cfg := asynq.Config{
		Concurrency:              goodputConcurrency,
		Queues:                   map[string]int{tasks.QueueName(portal): 1},
		RetryDelayFunc:           tasks.RetryDelay,
		IsFailure:                tasks.IsFailure,
		DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout:          3 * time.Second,
		LogLevel:                 asynq.ErrorLevel,
	}
	tasks.BatchServerConfig(true).Apply(&cfg)
	srv := asynq.NewServerFromRedisClient(rdb, cfg)
	if err := srv.Start(h.BatchMux()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.Shutdown()
		_ = lim.Close()
	})
}
