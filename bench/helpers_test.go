// Package bench holds the end-to-end benchmarks of b24queue: goodput
// against the portal's query limit, efficiency under the operating-time
// limit, overhead against a bare asynq handler, and import preparation.
//
// Every file is a _test.go file and there are no Test functions, so
// `go test ./...` compiles the package and runs nothing; the benchmarks run
// with `make bench` (`go test -run '^$' -bench . -benchtime 1x ./...`).
// Each benchmark measures one run and reports its figure as a ratio with
// b.ReportMetric; none fails because a target is missed (the figure is the
// result), only when the run itself is wrong (objects missing or created
// twice, a run that does not finish).
//
// Worker processes. The fleet benchmarks start several workers with the
// real runtime (internal/worker: worker.New + Run) in this one process.
// Each has its own go-redis client, its own limiter.Limiter, its own asynq
// server and its own HTTP client, exactly what a separate `worker` process
// would have; they share nothing but Redis and the simulated portal, as
// processes do. They do share this process's CPUs and Go scheduler, which
// makes the figures a little pessimistic, never optimistic.
//
// Redis: DB 7 of 127.0.0.1:6379; every run uses its own portal name (so its
// own queue) and key prefix and deletes them afterwards. Without Redis the
// benchmarks skip, unless CI is set.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/internal/worker"
	"github.com/b24queue/b24queue/tasks"
)

// Redis database and URL of the benchmarks.
const (
	redisDB  = 7
	redisURL = "redis://" + testutil.RedisAddr + "/7"
)

// benchRedis returns a client on DB 7, or skips when Redis does not answer
// and CI is unset. It is closed on b.Cleanup.
func benchRedis(b *testing.B) *redis.Client {
	b.Helper()
	return testutil.Redis(b, redisDB, func(o *redis.Options) { o.PoolSize = 32 })
}

// uniqueName returns kind followed by random hex: a valid portal name
// (^[a-z0-9][a-z0-9_-]{0,62}$) and key prefix no other run shares.
func uniqueName(kind string) string { return testutil.Unique("bench-" + kind + "-") }

// cleanupRedis deletes a run's queue and every key under its prefix.
func cleanupRedis(b *testing.B, rdb *redis.Client, queue, prefix string) {
	b.Helper()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		in := asynq.NewInspectorFromRedisClient(rdb)
		_ = in.DeleteQueue(queue, true)
		for _, pattern := range []string{prefix + ":*", "asynq:{" + queue + "}:*"} {
			iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
				if len(keys) == 500 {
					rdb.Unlink(ctx, keys...)
					keys = keys[:0]
				}
			}
			if len(keys) > 0 {
				rdb.Unlink(ctx, keys...)
			}
		}
	})
}

// logger discards logs, or writes warnings to stderr under -v.
func logger() *slog.Logger {
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// sim is a simulated portal on a loopback HTTP server that also records
// when the portal last answered department.add (or a batch) successfully,
// so that a run's end is the portal's last create, not the moment a poll
// noticed it.
type sim struct {
	*b24test.Portal
	webhook string

	mu     sync.Mutex
	lastOK time.Time // when the last successful department.add or batch answered
	adds   []answer  // every department.add answer, in order
	reads  int       // requests that read the structure and create nothing
}

// answer is one department.add answer of the portal.
type answer struct {
	at     time.Time
	status int
}

// startSim serves a portal with cfg until b ends.
func startSim(b *testing.B, cfg b24test.Config) *sim {
	b.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	s := &sim{Portal: b24test.New(cfg)}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	b.Cleanup(ts.Close)
	s.webhook = fmt.Sprintf("%s/rest/%d/%s/", ts.URL, cfg.WebhookUserID, cfg.WebhookSecret)
	return s
}

func (s *sim) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.Portal.ServeHTTP(rec, r)
	if isStructureRead(r.URL.Path + "?" + string(body)) {
		s.mu.Lock()
		s.reads++
		s.mu.Unlock()
	}
	add := strings.Contains(r.URL.Path, "department.add")
	if !add && !strings.Contains(r.URL.Path, "batch") {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec.status == http.StatusOK && now.After(s.lastOK) {
		s.lastOK = now
	}
	if add {
		s.adds = append(s.adds, answer{at: now, status: rec.status})
	}
}

// isStructureRead reports whether a request (its path and body) reads the
// portal's structure (department.get, crm.automatedsolution.list, alone or
// as batch commands) and creates or changes nothing.
func isStructureRead(req string) bool {
	reads := strings.Contains(req, "department.get") || strings.Contains(req, "crm.automatedsolution.list")
	return reads && !strings.Contains(req, ".add") && !strings.Contains(req, ".update")
}

// structureReads returns how many requests read the structure so far.
func (s *sim) structureReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// last returns when the last successful department.add or batch was
// answered.
func (s *sim) last() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastOK
}

// answers returns the department.add answers so far, in order.
func (s *sim) answers() []answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]answer(nil), s.adds...)
}

// waitCreated polls until n departments were created and returns when the
// last one was; it fails b after timeout.
func (s *sim) waitCreated(b *testing.B, n int, timeout time.Duration) time.Time {
	b.Helper()
	testutil.WaitFor(b, timeout, fmt.Sprintf("%d departments created", n), func() (bool, string) {
		st := s.Stats()
		return st.DepartmentsCreated >= n, fmt.Sprintf("portal stats %+v", st)
	})
	return s.last()
}

// checkOnce fails b unless the portal holds exactly n departments besides
// the root and none twice.
func (s *sim) checkOnce(b *testing.B, n int) b24test.Stats {
	b.Helper()
	st := s.Stats()
	if st.DepartmentsCreated != n || st.DuplicateDepartments != 0 {
		b.Errorf("portal created %d departments (%d duplicates), want %d once each", st.DepartmentsCreated, st.DuplicateDepartments, n)
	}
	return st
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// workerConfig is the configuration of one worker process serving portal
// at webhook with limits, as config.LoadWorker would return it from the
// environment (side port off).
func workerConfig(portal, webhook string, limits config.Limits, concurrency int) config.Worker {
	return config.Worker{
		Redis:           config.Redis{URL: redisURL},
		Portals:         []config.Portal{{Name: portal, WebhookURL: webhook, Limits: limits}},
		Defaults:        limits,
		Timeout:         10 * time.Second,
		Concurrency:     concurrency,
		ShutdownTimeout: 3 * time.Second,
		Batch:           false,
		LogLevel:        "warn",
	}
}

// fleet is n worker processes (see the package doc) running until b ends.
type fleet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startFleet builds n workers from cfg with the key prefix and runs them.
// They are stopped (gracefully, as on SIGTERM) on b.Cleanup.
func startFleet(b *testing.B, n int, cfg config.Worker, prefix string) *fleet {
	b.Helper()
	return startFleetWith(b, n, cfg, worker.WithPrefix(prefix))
}

// startFleetWith is startFleet with the worker options given.
func startFleetWith(b *testing.B, n int, cfg config.Worker, opts ...worker.Option) *fleet {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{cancel: cancel}
	workers := make([]*worker.Worker, n)
	for i := range n {
		w, err := worker.New(cfg, logger().With("worker", i), opts...)
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		workers[i] = w
	}
	for i, w := range workers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := w.Run(ctx); err != nil {
				b.Errorf("worker %d: %v", i, err)
			}
		}()
	}
	b.Cleanup(f.stop)
	return f
}

// stop shuts the fleet down and waits for it; later calls do nothing.
func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// enqueueDepartments puts n department:create tasks for portal on its
// queue, from a few goroutines (enqueueing is not what is measured).
func enqueueDepartments(b *testing.B, rdb *redis.Client, portal string, n int) {
	b.Helper()
	client := asynq.NewClientFromRedisClient(rdb)
	const senders = 8
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < n; i += senders {
				task, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{Portal: portal, Name: fmt.Sprintf("Department %05d", i), Parent: 1})
				if err == nil {
					_, err = client.Enqueue(task)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
