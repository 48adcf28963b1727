package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24/b24test"
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
// shared (other test suites, the Redis server and the simulator use the same
// CPUs), and a single pair swings by a factor of two or more.
const overheadRounds = 5

// BenchmarkOverheadVsBareAsynq compares the throughput of our worker with a
// bare asynq server on the same Redis, against a portal that limits nothing
// (1e6 req/s, burst 1e6, no latency, operating cost 1 µs per call):
//
//   - ours: one worker process (internal/worker, the full handler: shared
//     limiter grant, attempt marker set and cleared, the HTTP call to the
//     simulator, task result written, metrics);
//   - bare: an asynq server with the same concurrency whose handler for the
//     same department:create tasks (same payloads and options) returns nil.
//
// overhead_ratio = tasks/s of ours ÷ tasks/s of bare, the median over
// overheadRounds back-to-back pairs; target ≥ 0.5. Both sides are timed
// from the server's start to the last task's completion, with the tasks
// queued beforehand. The simulator runs in this process, so its request
// handling competes for the same CPUs as the worker's.
func BenchmarkOverheadVsBareAsynq(b *testing.B) {
	var ratio, ours, bare float64
	for range b.N {
		b.StopTimer()
		rdb := benchRedis(b)
		var ratios, oursRates, bareRates []float64
		for range overheadRounds {
			bareRate := bareRun(b, rdb)
			oursRate := oursRun(b, rdb)
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
	s := startSim(b, b24test.Config{
		Rate: 1e6, Burst: 1e6,
		MethodCost: map[string]time.Duration{"department.add": time.Microsecond},
	})
	enqueueDepartments(b, rdb, portal, overheadN)
	limits := config.Limits{Rate: 1e6, Burst: 1e6, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	cfg := workerConfig(portal, s.webhook, limits, overheadConc)

	b.StartTimer()
	start := time.Now()
	f := startFleet(b, 1, cfg, portal)
	elapsed := waitCompleted(b, rdb, queue, overheadN, time.Minute).Sub(start)
	b.StopTimer()
	f.stop()
	s.checkOnce(b, overheadN)
	return overheadN / elapsed.Seconds()
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
