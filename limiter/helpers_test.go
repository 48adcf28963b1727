package limiter

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/testutil"
)

// testRedisDB is this package's Redis database for tests.
const testRedisDB = 1

// newTestClient returns a fresh go-redis client (a separate connection pool,
// i.e. "another process") on DB 1, or skips the test when Redis does not
// answer and CI is unset.
func newTestClient(tb testing.TB) *redis.Client {
	tb.Helper()
	return testutil.Redis(tb, testRedisDB, func(o *redis.Options) { o.PoolSize = 32 })
}

// newFakeClock returns a clock that only moves when told to, starting near
// real time so that TTLs derived from it look sane when inspected.
func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Now().Truncate(time.Second))
}

// bundle is what most tests need: a limiter on a fresh prefix with a fake clock.
type bundle struct {
	rdb    *redis.Client
	prefix string
	clock  *testutil.Clock
	lim    *Limiter
}

func setup(t *testing.T, cfg Config, opts ...Option) *bundle {
	t.Helper()
	rdb := newTestClient(t)
	b := &bundle{rdb: rdb, prefix: testutil.KeyPrefix(t, rdb), clock: newFakeClock()}
	b.lim = b.newLimiter(t, cfg, opts...)
	return b
}

// newLimiter returns another limiter sharing b's prefix and clock but with its
// own Redis client: a second process.
func (b *bundle) newLimiter(t *testing.T, cfg Config, opts ...Option) *Limiter {
	t.Helper()
	opts = append([]Option{WithPrefix(b.prefix), WithClock(b.clock.Now)}, opts...)
	lim := New(newTestClient(t), cfg, opts...)
	t.Cleanup(func() { _ = lim.Close() })
	return lim
}

// recordingMetrics records Metrics calls.
type recordingMetrics struct {
	mu        sync.Mutex
	waited    []time.Duration
	throttled int
	blocked   []string
	rates     []float64
}

func (m *recordingMetrics) Waited(_ string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waited = append(m.waited, d)
}

func (m *recordingMetrics) Throttled(string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.throttled++
}

func (m *recordingMetrics) Blocked(_, method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocked = append(m.blocked, method)
}

func (m *recordingMetrics) EffectiveRate(_ string, r float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rates = append(m.rates, r)
}

// countingHook counts round trips to Redis: a command or a pipeline counts as
// one. The handshake of a new pooled connection (HELLO, CLIENT SETINFO) is
// not counted: it is paid once per connection, not per request.
type countingHook struct{ n atomic.Int64 }

func isHandshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isHandshake(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return !isHandshake(c) }) {
			return next(ctx, cmds)
		}
		h.n.Add(1)
		return next(ctx, cmds)
	}
}
