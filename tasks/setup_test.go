package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
)

// testRedisDB is this package's Redis database for tests.
const testRedisDB = 2

// bundle is what an end-to-end test of the package needs: a simulated
// portal, the Redis client and the asynq client/inspector on DB 2, the
// import engine, and a Handler wired like the worker wires it. Every bundle
// has its own portal name (so its own queue) and key prefix; everything is
// removed on t.Cleanup.
type bundle struct {
	sim       *b24test.Server
	rdb       *redis.Client
	prefix    string
	portal    string // portal name; the queue is QueueName(portal)
	queue     string
	client    *asynq.Client
	inspector *asynq.Inspector
	limiter   *limiter.Limiter
	claims    *Claims
	b24portal *Portal
	imports   *Imports
	handler   *Handler
	logger    *slog.Logger
}

// setupConfig adjusts setup.
type setupConfig struct {
	sim b24test.Config
	// limits of the limiter; by default a little below the simulator's so
	// that the tests do not run into 503s.
	limits limiter.Config
	// front, when set, stands between the workers and the simulator.
	front func(http.Handler) http.Handler
	// limiterOpts are added to the limiter's options.
	limiterOpts []limiter.Option
	// logs, when set, receives every log line (JSON, debug level).
	logs *testutil.SyncBuffer
}

// setup builds a bundle; cfg may adjust the defaults (Rate 50, Burst 50 in
// the simulator). It skips when Redis does not answer and CI is unset. The
// asynq server is not started: call b.start.
func setup(t testing.TB, cfg ...func(*setupConfig)) *bundle {
	t.Helper()
	sc := setupConfig{
		sim:    b24test.Config{Rate: 50, Burst: 50},
		limits: limiter.Config{Rate: 48, Burst: 45},
	}
	for _, f := range cfg {
		f(&sc)
	}
	rdb := bundleRedis(t)
	b := &bundle{rdb: rdb, logger: bundleLogger()}
	if sc.logs != nil {
		b.logger = slog.New(slog.NewJSONHandler(sc.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	suffix := testutil.RandomHex(5)
	b.prefix = "b24qtest:" + suffix
	b.portal = "t" + suffix
	b.queue = QueueName(b.portal)
	b.client = asynq.NewClientFromRedisClient(rdb)
	b.inspector = asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() {
		ctx := context.Background()
		_ = b.inspector.DeleteQueue(b.queue, true)
		for _, pattern := range []string{b.prefix + ":*", "asynq:{" + b.queue + "}:*"} {
			iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}
		_ = rdb.Close()
	})

	b.sim = b24test.NewServer(t, sc.sim)
	b.limiter = limiter.New(rdb, sc.limits, append([]limiter.Option{limiter.WithPrefix(b.prefix), limiter.WithLogger(b.logger)}, sc.limiterOpts...)...)
	b.claims = NewClaims(rdb, b.prefix, testRequestCap)
	var err error
	webhook := b.sim.WebhookURL()
	if sc.front != nil {
		ts := httptest.NewServer(sc.front(b.sim.Portal))
		t.Cleanup(ts.Close)
		webhook = strings.Replace(webhook, b.sim.URL, ts.URL, 1)
	}
	b.b24portal, err = NewPortal(PortalConfig{Name: b.portal, WebhookURL: webhook, Limits: sc.limits, Timeout: 10 * time.Second},
		b.limiter, nil, nil, b.logger)
	if err != nil {
		t.Fatal(err)
	}
	b.imports = NewImports(rdb, b.client, b.prefix, b.logger)
	b.handler = b.newHandler(t, b.imports)
	return b
}

// newHandler returns a Handler of the bundle's portal reporting to tracker.
func (b *bundle) newHandler(t testing.TB, tracker ImportTracker) *Handler {
	t.Helper()
	h, err := NewHandler(HandlerConfig{Portals: []*Portal{b.b24portal}, Claims: b.claims, Imports: tracker, Logger: b.logger})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs an asynq server for the bundle's queue with h (b.handler when
// nil), configured like the worker: RetryDelay, IsFailure, and short check
// intervals so retries and parked tasks come back quickly. It is shut down
// on t.Cleanup.
func (b *bundle) start(t testing.TB, h *Handler) {
	t.Helper()
	if h == nil {
		h = b.handler
	}
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{
		Concurrency:              10,
		Queues:                   map[string]int{b.queue: 1},
		RetryDelayFunc:           RetryDelay,
		IsFailure:                IsFailure,
		DelayedTaskCheckInterval: 200 * time.Millisecond,
		TaskCheckInterval:        50 * time.Millisecond,
		ShutdownTimeout:          2 * time.Second,
		LogLevel:                 asynq.ErrorLevel,
		Logger:                   bundleAsynqLogger{},
	})
	if err := srv.Start(h.Mux()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

// waitDone polls the import's status until it is done or timeout passes.
func (b *bundle) waitDone(t testing.TB, importID string, timeout time.Duration) store.Status {
	t.Helper()
	return waitImportDone(t, b.imports, importID, timeout, nil)
}

// waitImportDone polls im's status of importID until it is done or timeout
// passes; describe, if set, adds where the unfinished items are.
func waitImportDone(t testing.TB, im *Imports, importID string, timeout time.Duration, describe func() string) store.Status {
	t.Helper()
	var st store.Status
	testutil.WaitFor(t, timeout, "import "+importID+" done", func() (bool, string) {
		var err error
		if st, err = im.Status(context.Background(), importID); err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("%+v", st.Counts)
		if describe != nil {
			where += "; " + describe()
		}
		return st.Done, where
	})
	return st
}

// bundleRedis returns a client on DB 2, or skips when Redis does not answer
// and CI is unset.
func bundleRedis(t testing.TB) *redis.Client {
	t.Helper()
	return testutil.Redis(t, testRedisDB, func(o *redis.Options) { o.PoolSize = 40 })
}

// bundleLogger writes warnings to stderr under -v and nothing otherwise. It
// does not use t.Log: asynq goroutines may log after a test returned.
func bundleLogger() *slog.Logger {
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// bundleAsynqLogger drops asynq's own logs; the handler's logs say what
// happened to each task.
type bundleAsynqLogger struct{}

func (bundleAsynqLogger) Debug(...any) {}
func (bundleAsynqLogger) Info(...any)  {}
func (bundleAsynqLogger) Warn(...any)  {}
func (bundleAsynqLogger) Error(...any) {}
func (bundleAsynqLogger) Fatal(...any) {}

// reconciled does what an import's reconcile task does after finding
// nothing in the portal (tests that run no server): it marks the import
// reconciled and releases its roots and workplaces.
func reconciled(t testing.TB, im *Imports, portal, importID string) {
	t.Helper()
	ctx := context.Background()
	markReconciled(t, im, portal, importID)
	items, err := im.store.Releasable(ctx, importID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.enqueue(ctx, portal, importID, items); err != nil {
		t.Fatal(err)
	}
}

// markReconciled stands in for the run of the import's reconcile task: the
// import is marked reconciled and the task leaves the queue. Left queued,
// a worker started later would run it while the released items are being
// created, and it would adopt (count as existing before the import) an item
// the import itself had just created.
func markReconciled(t testing.TB, im *Imports, portal, importID string) {
	t.Helper()
	ctx := context.Background()
	if err := im.store.SetReconciled(ctx, importID); err != nil {
		t.Fatal(err)
	}
	st, err := im.store.Status(ctx, importID)
	if err != nil {
		t.Fatal(err)
	}
	err = im.inspector.DeleteTask(QueueName(portal), reconcileTaskID(importID, st.CreatedAt))
	if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatal(err)
	}
}
