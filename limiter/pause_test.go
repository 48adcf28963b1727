package limiter

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/testutil"
)

// waitSubscribed starts lim's pause subscription and waits until Redis has
// confirmed it, so that a test's Throttled cannot race the first PSUBSCRIBE.
func waitSubscribed(t *testing.T, lim *Limiter) {
	t.Helper()
	lim.subscribe()
	lim.subMu.Lock()
	s := lim.sub
	lim.subMu.Unlock()
	select {
	case <-s.ready:
	case <-time.After(3 * time.Second):
		t.Fatal("pause subscription not confirmed within 3s")
	}
}

// waitFor polls cond every 5ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reports counts EffectiveRate calls: one per reservation and one per
// Throttled call of the limiter.
func (m *recordingMetrics) reports() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rates)
}

// TestThrottledPausesSleepingWaiters checks, in real time and with the Redis
// server's clock, that goroutines already asleep in Wait for a reserved slot
// do not go out during a cooldown that starts after they reserved: neither
// when another process (own Redis client) reports the 503 through pub/sub,
// nor when their own Limiter does with no subscription at all.
func TestThrottledPausesSleepingWaiters(t *testing.T) {
	t.Parallel()
	const (
		cooldown = time.Second
		waiters  = 3
		onWire   = 50 * time.Millisecond // grace for a request leaving as the 503 lands
	)
	// Rate 5: slots 200ms apart. Burst 5 less 1 of headroom: 4 at once.
	cfg := Config{Rate: 5, Burst: 5, Cooldown: cooldown}
	tests := []struct {
		name string
		// throttler returns who reports the 503; it may prepare a.
		throttler func(t *testing.T, a, other *Limiter) *Limiter
	}{
		{"another process, through pub/sub", func(t *testing.T, a, other *Limiter) *Limiter {
			waitSubscribed(t, a)
			return other
		}},
		{"the same limiter, without pub/sub", func(t *testing.T, a, _ *Limiter) *Limiter {
			if err := a.Close(); err != nil { // no subscription: only the local wake-up
				t.Fatal(err)
			}
			return a
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdbA, rdbB := newTestClient(t), newTestClient(t)
			prefix := testutil.KeyPrefix(t, rdbA)
			m := &recordingMetrics{}
			a := New(rdbA, cfg, WithPrefix(prefix), WithMetrics(m))
			t.Cleanup(func() { _ = a.Close() })
			b := New(rdbB, cfg, WithPrefix(prefix))
			t.Cleanup(func() { _ = b.Close() })
			throttler := tt.throttler(t, a, b)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			t.Cleanup(cancel)

			// B takes the shared burst, so A's waiters get slots about 200,
			// 400 and 600ms ahead: all inside the cooldown to come.
			for range cfg.WithDefaults().SharedBurst() {
				if _, err := b.Reserve(ctx, portal, "m"); err != nil {
					t.Fatal(err)
				}
			}
			var (
				mu     sync.Mutex
				grants []time.Time
				wg     sync.WaitGroup
			)
			for range waiters {
				wg.Go(func() {
					if err := a.Wait(ctx, portal, "m"); err != nil {
						t.Errorf("Wait: %v", err)
						return
					}
					mu.Lock()
					grants = append(grants, time.Now())
					mu.Unlock()
				})
			}
			waitFor(t, time.Second, "the waiters' reservations", func() bool { return m.reports() == waiters })
			t0 := time.Now()
			if err := throttler.Throttled(ctx, portal); err != nil {
				t.Fatal(err)
			}
			wg.Wait()

			if len(grants) != waiters {
				t.Fatalf("%d of %d waiters granted", len(grants), waiters)
			}
			for _, g := range grants {
				if at := g.Sub(t0); at >= onWire && at < cooldown {
					t.Errorf("grant at throttle+%v, inside the cooldown [%v, %v)", at, onWire, cooldown)
				}
			}
			// Each waiter gave up its slot and reserved once more.
			want := 2 * waiters
			if throttler == a {
				want++ // Throttled's own report
			}
			if got := m.reports(); got != want {
				t.Errorf("%d rate reports, want %d (each waiter reserving twice)", got, want)
			}
		})
	}
}

// TestWaiterAfterCooldownKeepsSlot checks that a cooldown ending before a
// waiter's slot does not make it reserve again (which would cost a slot and a
// round trip for nothing).
func TestWaiterAfterCooldownKeepsSlot(t *testing.T) {
	t.Parallel()
	cfg := Config{Rate: 10, Burst: 2, Cooldown: 100 * time.Millisecond} // 1 at once, 100ms apart
	rdb := newTestClient(t)
	prefix := testutil.KeyPrefix(t, rdb)
	m := &recordingMetrics{}
	a := New(rdb, cfg, WithPrefix(prefix), WithMetrics(m))
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	for range 5 { // slots now, +100ms ... +400ms: the waiter's is at +500ms
		if _, err := a.Reserve(ctx, portal, "m"); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a.Wait(ctx, portal, "m") }()
	waitFor(t, time.Second, "the reservation", func() bool { return m.reports() == 6 })
	if err := a.Throttled(ctx, portal); err != nil { // cooldown ends at about +100ms
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := m.reports(); got != 7 { // 6 reservations and Throttled's report
		t.Fatalf("%d rate reports, want 7: the waiter reserved again", got)
	}
}

// TestPauseSubscriptionRecovers kills the Limiter's pub/sub connection (as a
// Redis restart would) and checks that the loss and the recovery are logged
// and that cooldowns from other processes arrive again afterwards.
func TestPauseSubscriptionRecovers(t *testing.T) {
	t.Parallel()
	name := testutil.Unique("b24qtest-")
	rdbA := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: testRedisDB, ClientName: name})
	t.Cleanup(func() { _ = rdbA.Close() })
	rdbB := newTestClient(t) // skips when Redis is down
	prefix := testutil.KeyPrefix(t, rdbB)
	logs := &testutil.SyncBuffer{}
	cfg := Config{Rate: 5, Burst: 5, Cooldown: time.Second}
	a := New(rdbA, cfg, WithPrefix(prefix), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	t.Cleanup(func() { _ = a.Close() })
	other := New(rdbB, cfg, WithPrefix(prefix))
	ctx := context.Background()
	waitSubscribed(t, a)

	list, err := rdbB.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for line := range strings.SplitSeq(list, "\n") {
		if strings.Contains(line, " name="+name+" ") && strings.Contains(line, " psub=1 ") {
			id, _, _ = strings.Cut(strings.TrimPrefix(line, "id="), " ")
		}
	}
	if id == "" {
		t.Fatalf("pub/sub connection named %s not in CLIENT LIST", name)
	}
	if err := rdbB.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the subscription to be restored", func() bool {
		return strings.Contains(logs.String(), "pause subscription restored")
	})
	if !strings.Contains(logs.String(), "pause subscription lost") {
		t.Errorf("loss not logged: %s", logs)
	}

	if err := other.Throttled(ctx, portal); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the cooldown to arrive", func() bool {
		until, _ := a.pauseOf(portal).snapshot()
		return until > 0
	})
}

func TestPauseChannelNames(t *testing.T) {
	t.Parallel()
	lim := New(nil, Config{}, WithPrefix(`a*b?[c]\d`))
	if got, want := lim.keys.ThrottledPattern(), `a\*b\?\[c\]\\d:{*}:throttled`; got != want {
		t.Errorf("ThrottledPattern = %q, want %q", got, want)
	}
	tests := []struct {
		channel string
		portal  string // "": not ours
	}{
		{lim.keys.Throttled("p1"), "p1"},
		{lim.keys.Throttled("x.bitrix24.ru"), "x.bitrix24.ru"},
		{`a*b?[c]\d:{p1}:bucket`, ""},
		{`other:{p1}:throttled`, ""},
		{`a*b?[c]\d:{p{1}:throttled`, ""},
		{`a*b?[c]\d:{}:throttled`, ""},
	}
	for _, tt := range tests {
		got, ok := lim.portalOfChannel(tt.channel)
		if ok != (tt.portal != "") || got != tt.portal {
			t.Errorf("portalOfChannel(%q) = %q, %v; want %q", tt.channel, got, ok, tt.portal)
		}
	}
}

func TestPauseStateExtendOnlyForward(t *testing.T) {
	t.Parallel()
	p := &pauseState{ch: make(chan struct{})}
	_, ch0 := p.snapshot()
	if !p.extend(100) {
		t.Fatal("first cooldown not applied")
	}
	select {
	case <-ch0:
	default:
		t.Fatal("waiters not woken by a new cooldown")
	}
	until, ch1 := p.snapshot()
	for _, end := range []int64{100, 50} { // the echo of our own, and an older one
		if p.extend(end) {
			t.Errorf("extend(%d) after 100 reported a change", end)
		}
	}
	select {
	case <-ch1:
		t.Fatal("waiters woken by a cooldown that ends no later")
	default:
	}
	if until != 100 {
		t.Fatalf("until = %d, want 100", until)
	}
}
