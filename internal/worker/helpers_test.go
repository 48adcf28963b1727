package worker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/testutil"
)

// testRedisDB is this package's Redis database for tests, and testRedisURL
// the same database as a URL for the worker's configuration.
const (
	testRedisDB  = 4
	testRedisURL = "redis://" + testutil.RedisAddr + "/4"
)

// requireRedis skips the test when Redis does not answer, unless CI is set,
// where it fails.
func requireRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	return testutil.Redis(t, testRedisDB)
}

// deadRedisURL returns a redis:// URL of a loopback port nobody listens on.
func deadRedisURL(t *testing.T) string {
	t.Helper()
	return "redis://" + testutil.ClosedAddr(t) + "/4"
}

// baseConfig is a valid worker configuration with one webhook portal named
// portal, on the test Redis, with the side port off.
func baseConfig(portal, webhookURL string) config.Worker {
	limits := config.Limits{Rate: 50, Burst: 50, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	return config.Worker{
		Redis:    config.Redis{URL: testRedisURL},
		Portals:  []config.Portal{{Name: portal, WebhookURL: webhookURL, Limits: limits}},
		Defaults: limits,
		Timeout:  10 * time.Second,
		// The simulator never runs a request after it dropped the answer:
		// a retry need not wait the portal's 60 s before its lookup.
		RequestLimit:    time.Second,
		Concurrency:     4,
		ShutdownTimeout: 2 * time.Second,
		LogLevel:        "debug",
	}
}

// bundle is what a worker test needs.
type bundle struct {
	w      *Worker
	cfg    config.Worker
	sim    *b24test.Server
	portal string
	queue  string
	prefix string
	logs   *testutil.SyncBuffer
	client *asynq.Client
	insp   *asynq.Inspector
}

// setup builds a worker against a fresh simulator with a unique portal (so
// a unique queue) and key prefix. edit may change the configuration first.
// The worker is not running; the queue and keys are removed on cleanup.
func setup(t *testing.T, simCfg b24test.Config, edit func(*config.Worker)) *bundle {
	t.Helper()
	rdb := requireRedis(t)
	sim := b24test.NewServer(t, simCfg)
	b := &bundle{
		sim:    sim,
		portal: "t" + testutil.RandomHex(6),
		prefix: "b24qtest" + testutil.RandomHex(4),
		logs:   &testutil.SyncBuffer{},
	}
	b.queue = "b24:" + b.portal
	b.cfg = baseConfig(b.portal, sim.WebhookURL())
	if edit != nil {
		edit(&b.cfg)
	}
	w, err := New(b.cfg, NewLogger(b.logs, b.cfg.Level()), WithPrefix(b.prefix))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.w = w
	t.Cleanup(func() { _ = w.Close() })
	b.client = asynq.NewClientFromRedisClient(rdb)
	b.insp = asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() {
		_ = b.insp.DeleteQueue(b.queue, true)
		testutil.DeleteKeys(rdb, b.prefix+":*")
	})
	return b
}

// run starts Run in the background and returns a stop function that
// cancels it and returns Run's error and how long it took to return.
func (b *bundle) run(t *testing.T) (stop func() (error, time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.w.Run(ctx) }()
	var once sync.Once
	var err error
	var took time.Duration
	stop = func() (error, time.Duration) {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30s")
			}
			took = time.Since(start)
		})
		return err, took
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitTask polls the task until cond holds or 20 s pass.
func (b *bundle) waitTask(t *testing.T, id string, what string, cond func(*asynq.TaskInfo) bool) *asynq.TaskInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last *asynq.TaskInfo
	for time.Now().Before(deadline) {
		info, err := b.insp.GetTaskInfo(b.queue, id)
		if err == nil {
			last = info
			if cond(info) {
				return info
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	state := "unknown"
	if last != nil {
		state = last.State.String() + " (last error: " + last.LastErr + ")"
	}
	t.Fatalf("task %s never became %s; state %s\nlogs:\n%s", id, what, state, b.logs.String())
	return nil
}

func contains(haystack string, needles ...string) []string {
	var missing []string
	for _, n := range needles {
		if !strings.Contains(haystack, n) {
			missing = append(missing, n)
		}
	}
	return missing
}

func slogLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}
