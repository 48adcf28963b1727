package limiter

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/testutil"
)

const portal = "p1"

func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Parallel()
	def := Config{}.WithDefaults()
	want := Config{Rate: 2, Burst: 50, Headroom: 0.1, MinRate: 0.5, Cooldown: 2 * time.Second,
		OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute,
		OperatingMargin: 0.95, LocalBurst: 2}
	if def != want {
		t.Fatalf("defaults = %+v, want %+v", def, want)
	}
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}

	tests := []struct {
		name   string
		cfg    Config
		fields []string // every field named in the error, nil: valid
	}{
		{"enterprise", Config{Rate: 5, Burst: 250}, nil},
		{"zero rate", Config{Burst: 1, Headroom: 0.1, MinRate: 1, LocalBurst: 1, OperatingLimit: 1, OperatingWindow: 1, OperatingMargin: 1}, []string{"Rate"}},
		{"headroom of 1", Config{Rate: 2, Headroom: 1}, []string{"Headroom"}},
		{"nan headroom", Config{Rate: 2, Headroom: math.NaN()}, []string{"Headroom"}},
		{"nan rate", Config{Rate: math.NaN(), MinRate: 1}, []string{"Rate"}},
		{"inf rate", Config{Rate: math.Inf(1), MinRate: 1}, []string{"Rate"}},
		{"min above rate", Config{Rate: 2, MinRate: 3}, []string{"MinRate"}},
		{"all bad", Config{Rate: -1, Burst: -1, Headroom: -0.1, MinRate: -1, Cooldown: -1, OperatingLimit: -1,
			OperatingWindow: -1, OperatingMargin: 1.5, LocalBurst: -1},
			[]string{"Rate", "Burst", "MinRate", "Cooldown", "OperatingLimit", "OperatingWindow", "OperatingMargin", "LocalBurst", "Headroom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			if tt.name != "zero rate" && tt.name != "all bad" {
				cfg = cfg.WithDefaults()
			}
			err := cfg.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors for %v", tt.fields)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), " "+f+" = ") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.fields) {
				t.Errorf("error lists %d problems, want %d: %v", got, len(tt.fields), err)
			}
		})
	}
}

func TestSharedBurst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		burst    int
		headroom float64 // 0: default 0.1
		want     int
	}{
		{1, 0, 1},      // nothing to spare
		{2, 0, 1},      // at least one request of headroom
		{5, 0, 4},      // ceil(0.5) = 1
		{10, 0, 9},     // exactly 1
		{11, 0, 9},     // ceil(1.1) = 2
		{20, 0, 18},    // 0.1×20 is 2, not 3, despite float rounding
		{50, 0, 45},    // the standard plan
		{250, 0, 225},  // Enterprise
		{50, 0.2, 40},  // a larger fraction
		{10, 0.99, 1},  // never below 1
		{3, 0.001, 2},  // a tiny fraction still keeps 1 free
		{100, 0.3, 70}, // 0.3×100 = 30.000000000000004
	}
	for _, tt := range tests {
		cfg := Config{Burst: tt.burst, Headroom: tt.headroom}.WithDefaults()
		if got := cfg.SharedBurst(); got != tt.want {
			t.Errorf("Burst %d Headroom %v: SharedBurst = %d, want %d", tt.burst, cfg.Headroom, got, tt.want)
		}
	}
}

func TestInvalidInputsFailWithoutRedis(t *testing.T) {
	t.Parallel()
	// A client that cannot connect: the errors below must come before any I/O.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	lim := New(rdb, Config{})
	lim.Configure("bad", Config{Rate: 2, MinRate: 5})
	ctx := context.Background()
	t.Cleanup(func() { _ = lim.Close() })
	for _, p := range []string{"", "a{b", "a}b"} {
		if err := lim.Wait(ctx, p, "m"); err == nil || !strings.Contains(err.Error(), "invalid portal name") {
			t.Errorf("Wait(%q) = %v, want invalid portal name", p, err)
		}
	}
	if _, err := lim.Reserve(ctx, "bad", "m"); err == nil || !strings.Contains(err.Error(), "MinRate") {
		t.Errorf("Reserve with invalid config = %v, want MinRate error", err)
	}
	if got := lim.Config("enterprise"); got != (Config{}).WithDefaults() {
		t.Errorf("Config of unconfigured portal = %+v, want defaults", got)
	}
}

func TestReserveBucketMath(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rate: 2, Burst: 5})
	ctx := context.Background()
	steps := []struct {
		advance time.Duration
		want    time.Duration
	}{
		// The shared burst (5 less 1 of headroom) goes out at once...
		{0, 0}, {0, 0}, {0, 0}, {0, 0},
		// ...then one slot every 1/rate = 500ms.
		{0, 500 * time.Millisecond},
		{0, 1000 * time.Millisecond},
		{0, 1500 * time.Millisecond},
		// 250ms later the queue is 250ms shorter.
		{250 * time.Millisecond, 1750 * time.Millisecond},
		// Once the last slot (t=2s) has passed and 1s more, two tokens are back.
		{2750 * time.Millisecond, 0},
		{0, 0},
		{0, 500 * time.Millisecond},
		// After a long idle period the whole shared burst is available again.
		{time.Minute, 0}, {0, 0}, {0, 0}, {0, 0},
		{0, 500 * time.Millisecond},
	}
	for i, s := range steps {
		b.clock.Advance(s.advance)
		got, err := b.lim.Reserve(ctx, portal, "department.add")
		if err != nil {
			t.Fatalf("step %d: Reserve: %v", i, err)
		}
		if got != s.want {
			t.Fatalf("step %d: delay = %v, want %v", i, got, s.want)
		}
	}
}

func TestReserveSharedBetweenProcesses(t *testing.T) {
	t.Parallel()
	cfg := Config{Rate: 10, Burst: 3}
	b := setup(t, cfg)
	other := b.newLimiter(t, cfg)
	ctx := context.Background()
	// Both processes draw from one bucket: 2 free (3 less 1 of headroom),
	// then 100ms spacing.
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	for i, w := range want {
		lim := b.lim
		if i%2 == 1 {
			lim = other
		}
		got, err := lim.Reserve(ctx, portal, "m")
		if err != nil || got != w {
			t.Fatalf("grant %d: Reserve = %v, %v; want %v", i, got, err, w)
		}
	}
	// A different portal has its own bucket.
	if got, err := other.Reserve(ctx, "p2", "m"); err != nil || got != 0 {
		t.Fatalf("other portal: Reserve = %v, %v; want 0", got, err)
	}
}

func TestThrottledCooldownSeenByAnotherProcess(t *testing.T) {
	t.Parallel()
	cfg := Config{Rate: 2, Burst: 5, Cooldown: 2 * time.Second}
	m := &recordingMetrics{}
	b := setup(t, cfg)
	other := b.newLimiter(t, cfg, WithMetrics(m))
	ctx := context.Background()

	if d, err := b.lim.Reserve(ctx, portal, "m"); err != nil || d != 0 {
		t.Fatalf("first Reserve = %v, %v", d, err)
	}
	if err := other.Throttled(ctx, portal); err != nil {
		t.Fatalf("Throttled: %v", err)
	}
	// The bucket is considered full at now+Cooldown: the next grant comes one
	// interval of the decreased rate (2*0.8 = 1.6/s, 625ms) after the cooldown.
	const first = 2*time.Second + 625*time.Millisecond
	if d, err := b.lim.Reserve(ctx, portal, "m"); err != nil || d != first {
		t.Fatalf("Reserve after Throttled = %v, %v; want %v", d, err, first)
	}
	if d, err := other.Reserve(ctx, portal, "m"); err != nil || d != first+625*time.Millisecond {
		t.Fatalf("second Reserve after Throttled = %v, %v; want %v", d, err, first+625*time.Millisecond)
	}
	for _, lim := range []*Limiter{b.lim, other} {
		if r, err := lim.Rate(ctx, portal); err != nil || math.Abs(r-1.6) > 1e-9 {
			t.Fatalf("Rate = %v, %v; want 1.6", r, err)
		}
	}
	if m.throttled != 1 || len(m.rates) == 0 || math.Abs(m.rates[len(m.rates)-1]-1.6) > 1e-9 {
		t.Fatalf("metrics: throttled=%d rates=%v", m.throttled, m.rates)
	}
	// Long after, the bucket has drained and the burst is back.
	b.clock.Advance(time.Minute)
	if d, err := b.lim.Reserve(ctx, portal, "m"); err != nil || d != 0 {
		t.Fatalf("Reserve a minute later = %v, %v; want 0", d, err)
	}
}

func TestAIMD(t *testing.T) {
	t.Parallel()
	cfg := Config{Rate: 10, Burst: 4, MinRate: 5, Cooldown: time.Second}
	b := setup(t, cfg)
	ctx := context.Background()
	rate := func() float64 {
		t.Helper()
		r, err := b.lim.Rate(ctx, portal)
		if err != nil {
			t.Fatalf("Rate: %v", err)
		}
		return r
	}
	throttle := func() {
		t.Helper()
		if err := b.lim.Throttled(ctx, portal); err != nil {
			t.Fatalf("Throttled: %v", err)
		}
	}
	if r := rate(); r != 10 {
		t.Fatalf("initial rate = %v, want configured 10", r)
	}

	// Multiplicative decrease, counted once per Cooldown, floored at MinRate.
	decreases := []struct {
		advance time.Duration
		want    float64
	}{
		{0, 8},
		{0, 8},                      // same overload seen by another worker
		{500 * time.Millisecond, 8}, // still within the cooldown of the last decrease
		{500 * time.Millisecond, 6.4},
		{time.Second, 5.12},
		{time.Second, 5}, // floor
		{time.Second, 5},
	}
	for i, d := range decreases {
		b.clock.Advance(d.advance)
		throttle()
		if r := rate(); math.Abs(r-d.want) > 1e-9 {
			t.Fatalf("decrease %d: rate = %v, want %v", i, r, d.want)
		}
	}

	// Increase: ×1.1 every Burst (4) grants without a 503, up to Rate.
	grant := func() {
		t.Helper()
		b.clock.Advance(time.Second) // keep the bucket from filling
		if _, err := b.lim.Reserve(ctx, portal, "m"); err != nil {
			t.Fatalf("Reserve: %v", err)
		}
	}
	want := 5.0
	for want < 10 {
		for range 3 {
			grant()
		}
		if r := rate(); math.Abs(r-want) > 1e-9 {
			t.Fatalf("after 3 grants: rate = %v, want unchanged %v", r, want)
		}
		grant()
		want = min(want*1.1, 10)
		if r := rate(); math.Abs(r-want) > 1e-9 {
			t.Fatalf("after 4 grants: rate = %v, want %v", r, want)
		}
	}
	for range 8 {
		grant()
	}
	if r := rate(); r != 10 {
		t.Fatalf("rate = %v, want capped at 10", r)
	}

	// A throttle in the middle of a run resets the count of good grants.
	b.clock.Advance(time.Minute)
	throttle() // 8
	b.clock.Advance(time.Minute)
	for range 3 {
		grant()
	}
	b.clock.Advance(time.Second)
	throttle() // 6.4
	grant()
	if r := rate(); math.Abs(r-6.4) > 1e-9 {
		t.Fatalf("rate = %v, want 6.4 (count reset by the 503)", r)
	}
}

func TestRateIncreaseKeepsQueuedSlots(t *testing.T) {
	t.Parallel()
	// At a reduced rate with a queue of reserved slots, an increase must make
	// the next slot follow the last one at the new spacing: never before it,
	// and without a stall.
	cfg := Config{Rate: 10, Burst: 2, MinRate: 1, Cooldown: time.Nanosecond}
	b := setup(t, cfg)
	ctx := context.Background()
	if err := b.lim.Throttled(ctx, portal); err != nil { // rate 8, bucket full
		t.Fatal(err)
	}
	var last time.Duration
	for i := range 6 {
		d, err := b.lim.Reserve(ctx, portal, "m")
		if err != nil {
			t.Fatal(err)
		}
		r, _ := b.lim.Rate(ctx, portal)
		if i > 0 {
			gap := d - last
			// The gap is the interval of the rate in force before this grant.
			if gap <= 0 || gap > 125*time.Millisecond+time.Microsecond {
				t.Fatalf("grant %d: delay %v after %v (gap %v, rate now %v)", i, d, last, gap, r)
			}
		}
		last = d
	}
	if r, _ := b.lim.Rate(ctx, portal); r <= 8 {
		t.Fatalf("rate = %v, want increased above 8 after 6 grants", r)
	}
}

func TestDelayErrorDoesNotReserve(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rate: 1, Burst: 1}, WithMaxWait(2*time.Second))
	ctx := context.Background()
	for i, want := range []time.Duration{0, time.Second, 2 * time.Second} {
		if d, err := b.lim.Reserve(ctx, portal, "m"); err != nil || d != want {
			t.Fatalf("grant %d: Reserve = %v, %v; want %v", i, d, err, want)
		}
	}
	for range 3 { // refused calls leave the bucket as it was
		_, err := b.lim.Reserve(ctx, portal, "m")
		var de *DelayError
		if !errors.As(err, &de) || de.Delay != 3*time.Second || de.Portal != portal {
			t.Fatalf("Reserve beyond MaxWait = %v, want *DelayError{3s}", err)
		}
	}
	// The context deadline shortens the allowed wait.
	dctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	t.Cleanup(cancel)
	b.clock.Advance(time.Second) // next slot now 2s away
	if d, err := b.lim.Reserve(dctx, portal, "m"); err != nil || d != 2*time.Second {
		t.Fatalf("Reserve within deadline = %v, %v; want 2s", d, err)
	}
	var de *DelayError
	if _, err := b.lim.Reserve(dctx, portal, "m"); !errors.As(err, &de) || de.Delay != 3*time.Second {
		t.Fatalf("Reserve beyond deadline = %v, want *DelayError{3s}", err)
	}
	// Wait returns the DelayError immediately instead of sleeping.
	start := time.Now()
	if err := b.lim.Wait(dctx, portal, "m"); !errors.As(err, &de) {
		t.Fatalf("Wait beyond deadline = %v, want *DelayError", err)
	}
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Fatalf("Wait took %v before giving up", el)
	}
}

func TestOperatingBlocks(t *testing.T) {
	t.Parallel()
	cfg := Config{Rate: 2, Burst: 5, OperatingLimit: 100 * time.Second, OperatingWindow: 10 * time.Minute, OperatingMargin: 0.9}
	m := &recordingMetrics{}
	b := setup(t, cfg, WithMetrics(m))
	other := b.newLimiter(t, cfg)
	ctx := context.Background()
	const method = "department.add"
	t0 := b.clock.Now()

	blockedUntil := func(lim *Limiter) time.Time {
		t.Helper()
		until, ok, err := lim.Blocked(ctx, portal, method)
		if err != nil {
			t.Fatalf("Blocked: %v", err)
		}
		if ok != !until.IsZero() {
			t.Fatalf("Blocked = %v, %v: inconsistent", until, ok)
		}
		return until
	}
	steps := []struct {
		name string
		do   func(now time.Time) error
		want time.Duration // block end relative to t0; 0: not blocked
	}{
		{"below margin", func(now time.Time) error {
			return b.lim.Observe(ctx, portal, method, 89*time.Second, now.Add(time.Minute))
		}, 0},
		{"at margin blocks until reset", func(now time.Time) error {
			return b.lim.Observe(ctx, portal, method, 90*time.Second, now.Add(time.Minute))
		}, time.Minute},
		{"stale report does not unblock", func(now time.Time) error {
			return other.Observe(ctx, portal, method, 10*time.Second, now.Add(time.Second))
		}, time.Minute},
		{"earlier 429 does not shorten", func(now time.Time) error {
			return other.Block(ctx, portal, method, now.Add(30*time.Second))
		}, time.Minute},
		{"later 429 extends", func(now time.Time) error {
			return other.Block(ctx, portal, method, now.Add(2*time.Minute))
		}, 2 * time.Minute},
		{"429 without reset keeps a longer block", func(now time.Time) error {
			// The last report's reset (t0+1s) is still ahead but earlier.
			return b.lim.Block(ctx, portal, method, time.Time{})
		}, 2 * time.Minute},
		{"429 without reset and a passed report blocks for the window", func(now time.Time) error {
			b.clock.Advance(3 * time.Minute)
			return b.lim.Block(ctx, portal, method, time.Time{})
		}, 13 * time.Minute},
	}
	for _, s := range steps {
		if err := s.do(b.clock.Now()); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := blockedUntil(other)
		if (s.want == 0) != got.IsZero() || (s.want != 0 && !got.Equal(t0.Add(s.want))) {
			t.Fatalf("%s: blocked until %v, want t0+%v", s.name, got, s.want)
		}
	}

	// A blocked method is refused without consuming a slot; others are not.
	_, err := other.Reserve(ctx, portal, method)
	var be *BlockedError
	if !errors.As(err, &be) || be.Method != method || be.Portal != portal || !be.Until.Equal(t0.Add(13*time.Minute)) {
		t.Fatalf("Reserve of blocked method = %v, want *BlockedError until t0+13m", err)
	}
	if err := b.lim.Wait(ctx, portal, method); !errors.As(err, &be) {
		t.Fatalf("Wait of blocked method = %v, want *BlockedError", err)
	}
	if len(m.blocked) != 1 || m.blocked[0] != method {
		t.Fatalf("metrics blocked = %v", m.blocked)
	}
	for i := range cfg.WithDefaults().SharedBurst() { // the whole burst is still there
		if d, err := b.lim.Reserve(ctx, portal, "user.get"); err != nil || d != 0 {
			t.Fatalf("grant %d of another method = %v, %v; want 0", i, d, err)
		}
	}

	// The key expires with the block.
	pttl, err := b.rdb.PTTL(ctx, b.lim.keys.Block(portal, method)).Result()
	if err != nil || pttl <= 9*time.Minute || pttl > 10*time.Minute {
		t.Fatalf("block key PTTL = %v, %v; want about 10m", pttl, err)
	}
	b.clock.Advance(10 * time.Minute)
	if got := blockedUntil(b.lim); !got.IsZero() {
		t.Fatalf("blocked until %v after the block ended", got)
	}
	if _, err := b.lim.Reserve(ctx, portal, method); err != nil {
		t.Fatalf("Reserve after the block ended: %v", err)
	}
}

func TestOperatingBlockFallbacks(t *testing.T) {
	t.Parallel()
	cfg := Config{OperatingLimit: 100 * time.Second, OperatingWindow: 10 * time.Minute}
	tests := []struct {
		name string
		do   func(l *Limiter, now time.Time) error
		want time.Duration // from now; 0: not blocked
	}{
		{"report at margin without reset", func(l *Limiter, now time.Time) error {
			return l.Observe(context.Background(), portal, "m", 95*time.Second, time.Time{})
		}, time.Minute},
		{"report at margin with past reset", func(l *Limiter, now time.Time) error {
			return l.Observe(context.Background(), portal, "m", 100*time.Second, now.Add(-time.Second))
		}, time.Minute},
		{"report just below margin", func(l *Limiter, now time.Time) error {
			return l.Observe(context.Background(), portal, "m", 94*time.Second, now.Add(time.Hour))
		}, 0},
		{"429 with past reset", func(l *Limiter, now time.Time) error {
			return l.Block(context.Background(), portal, "m", now.Add(-time.Second))
		}, time.Minute},
		{"429 with future reset", func(l *Limiter, now time.Time) error {
			return l.Block(context.Background(), portal, "m", now.Add(3*time.Minute))
		}, 3 * time.Minute},
		{"429 without reset and no report", func(l *Limiter, now time.Time) error {
			return l.Block(context.Background(), portal, "m", time.Time{})
		}, 10 * time.Minute},
		{"429 without reset after a report below the margin", func(l *Limiter, now time.Time) error {
			if err := l.Observe(context.Background(), portal, "m", 80*time.Second, now.Add(90*time.Second)); err != nil {
				return err
			}
			return l.Block(context.Background(), portal, "m", time.Time{})
		}, 90 * time.Second},
		// One answer claiming a reset ten years ahead must not stop the
		// method fleet-wide until then: no block outlasts the window.
		{"report at margin with a reset ten years ahead", func(l *Limiter, now time.Time) error {
			return l.Observe(context.Background(), portal, "m", 100*time.Second, now.AddDate(10, 0, 0))
		}, 10 * time.Minute},
		{"429 until ten years ahead", func(l *Limiter, now time.Time) error {
			return l.Block(context.Background(), portal, "m", now.AddDate(10, 0, 0))
		}, 10 * time.Minute},
		{"429 without reset after a report claiming ten years", func(l *Limiter, now time.Time) error {
			if err := l.Observe(context.Background(), portal, "m", 80*time.Second, now.AddDate(10, 0, 0)); err != nil {
				return err
			}
			return l.Block(context.Background(), portal, "m", time.Time{})
		}, 10 * time.Minute},
		{"429 without reset after a report whose reset passed", func(l *Limiter, now time.Time) error {
			if err := l.Observe(context.Background(), portal, "m", 80*time.Second, now.Add(-time.Second)); err != nil {
				return err
			}
			return l.Block(context.Background(), portal, "m", time.Time{})
		}, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, cfg)
			now := b.clock.Now()
			if err := tt.do(b.lim, now); err != nil {
				t.Fatal(err)
			}
			until, blocked, err := b.lim.Blocked(context.Background(), portal, "m")
			if err != nil {
				t.Fatal(err)
			}
			if blocked != (tt.want != 0) || (blocked && !until.Equal(now.Add(tt.want))) {
				t.Fatalf("Blocked = %v, %v; want now+%v", until, blocked, tt.want)
			}
		})
	}
}

func TestEveryKeyHasTTL(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := context.Background()
	for _, f := range []func() error{
		func() error { _, err := b.lim.Reserve(ctx, portal, "a"); return err },
		func() error { return b.lim.Throttled(ctx, portal) },
		func() error { return b.lim.Observe(ctx, portal, "a", time.Second, time.Time{}) },
		func() error { return b.lim.Observe(ctx, portal, "b", 479*time.Second, b.clock.Now().Add(time.Minute)) },
		func() error { return b.lim.Block(ctx, portal, "c", time.Time{}) },
		func() error { _, err := b.lim.Reserve(ctx, "p2", "a"); return err },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	iter := b.rdb.Scan(ctx, 0, b.prefix+":*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	// bucket ×2, request history ×2, block b and c, reports a and b.
	if len(keys) != 8 {
		t.Fatalf("keys = %v, want 8", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, b.prefix+":{") {
			t.Errorf("key %q lacks the {portal} hash tag", k)
		}
		pttl, err := b.rdb.PTTL(ctx, k).Result()
		if err != nil || pttl <= 0 {
			t.Errorf("key %q: PTTL = %v, %v; want > 0", k, pttl, err)
		}
	}
}

func TestRedisUnavailableFailsFast(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more

	tests := []struct {
		name  string
		opts  *redis.Options
		lopts []Option
		limit time.Duration
	}{
		// A client with short timeouts and no retries fails at once.
		{"short client timeouts", &redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond,
			DialerRetries: 1, MaxRetries: -1}, nil, time.Second},
		// A client with default retries (several dial attempts with backoff)
		// is cut short by the limiter's own call timeout.
		{"default client, call timeout", &redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond},
			[]Option{WithCallTimeout(300 * time.Millisecond)}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb := redis.NewClient(tt.opts)
			t.Cleanup(func() { _ = rdb.Close() })
			lim := New(rdb, Config{}, tt.lopts...)
			t.Cleanup(func() { _ = lim.Close() })
			ctx := context.Background()
			start := time.Now()
			err := lim.Wait(ctx, portal, "m")
			if err == nil {
				t.Fatal("Wait with Redis down = nil, want an error")
			}
			var de *DelayError
			var be *BlockedError
			if errors.As(err, &de) || errors.As(err, &be) {
				t.Fatalf("Wait with Redis down = %v, want a Redis error", err)
			}
			if el := time.Since(start); el > tt.limit {
				t.Fatalf("Wait took %v to fail, want < %v", el, tt.limit)
			}
			for name, f := range map[string]func() error{
				"Reserve":   func() error { _, err := lim.Reserve(ctx, portal, "m"); return err },
				"Throttled": func() error { return lim.Throttled(ctx, portal) },
				"Observe":   func() error { return lim.Observe(ctx, portal, "m", time.Second, time.Time{}) },
				"Block":     func() error { return lim.Block(ctx, portal, "m", time.Time{}) },
				"Blocked":   func() error { _, _, err := lim.Blocked(ctx, portal, "m"); return err },
				"Rate":      func() error { _, err := lim.Rate(ctx, portal); return err },
			} {
				start := time.Now()
				if err := f(); err == nil {
					t.Errorf("%s with Redis down = nil, want an error", name)
				}
				if el := time.Since(start); el > tt.limit {
					t.Errorf("%s took %v to fail", name, el)
				}
			}
		})
	}
}

func TestWaitSleepsForTheSlot(t *testing.T) {
	t.Parallel()
	rdb := newTestClient(t)
	m := &recordingMetrics{}
	// Server clock; local burst 1 at rate 20 and shared burst 1: the second
	// Wait sleeps about 50ms.
	lim := New(rdb, Config{Rate: 20, Burst: 1}, WithPrefix(testutil.KeyPrefix(t, rdb)), WithMetrics(m))
	t.Cleanup(func() { _ = lim.Close() })
	ctx := context.Background()
	start := time.Now()
	for range 3 {
		if err := lim.Wait(ctx, portal, "m"); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 95*time.Millisecond || el > 500*time.Millisecond {
		t.Fatalf("3 grants at 20/s burst 1 took %v, want about 100ms", el)
	}
	if len(m.waited) != 3 || len(m.rates) != 3 || m.rates[0] != 20 {
		t.Fatalf("metrics waited=%v rates=%v", m.waited, m.rates)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := lim.Wait(cctx, portal, "m"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with cancelled ctx = %v, want context.Canceled", err)
	}
}
