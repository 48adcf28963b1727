package limiter

import (
	"context"
	"errors"
	"testing"
	"time"
)

// inflightCfg: threshold 90 s of a 100 s budget; the bucket is out of the way.
var inflightCfg = Config{Rate: 100, Burst: 100, OperatingLimit: 100 * time.Second,
	OperatingWindow: 10 * time.Minute, OperatingMargin: 0.9}

// reserveOK reserves one call of method and fails unless it is granted.
func reserveOK(t *testing.T, l *Limiter, method, what string) {
	t.Helper()
	if _, err := l.Reserve(context.Background(), portal, method); err != nil {
		t.Fatalf("%s: Reserve = %v, want a grant", what, err)
	}
}

// reserveHeld reserves one call and fails unless the calls in flight hold it
// back (a *DelayError of at most a second, nothing reserved).
func reserveHeld(t *testing.T, l *Limiter, method, what string) {
	t.Helper()
	_, err := l.Reserve(context.Background(), portal, method)
	var de *DelayError
	if !errors.As(err, &de) || de.Delay <= 0 || de.Delay > time.Second {
		t.Fatalf("%s: Reserve = %v, want a *DelayError of at most 1s", what, err)
	}
}

func TestInflightCallsHoldBackGrantsNearTheBudget(t *testing.T) {
	t.Parallel()
	b := setup(t, inflightCfg)
	other := b.newLimiter(t, inflightCfg) // a second process
	ctx := context.Background()
	const method = "department.add"
	reset := b.clock.Now().Add(time.Minute)
	report := func(l *Limiter, operating time.Duration) {
		t.Helper()
		if err := l.ObserveCall(ctx, portal, method, Report{Operating: operating, ResetAt: reset, Processing: 4 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}

	// Before any report with a processing time nothing is tracked: calls
	// are not counted, however many.
	if err := b.lim.Observe(ctx, portal, method, 80*time.Second, reset); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		reserveOK(t, b.lim, method, "untracked grant "+string(rune('1'+i)))
	}
	if b.lim.Tracked(portal, method) {
		t.Fatal("Tracked before any report carried a processing time")
	}

	// 80 s used, 4 s a call: 80, 84, 88 are below 90, so three calls may be
	// in flight at once; the fourth waits, in either process.
	report(other, 80*time.Second)
	reserveOK(t, b.lim, method, "1st in flight")
	if !b.lim.Tracked(portal, method) {
		t.Fatal("not Tracked after a grant that saw the report")
	}
	reserveOK(t, other, method, "2nd in flight")
	reserveOK(t, b.lim, method, "3rd in flight")
	reserveHeld(t, b.lim, method, "4th in flight")
	reserveHeld(t, other, method, "4th in flight, other process")
	// Other methods are not concerned.
	reserveOK(t, b.lim, "user.get", "another method")

	// An answer reports 84 s: two in flight, 84 + 2×4 ≥ 90: still held.
	report(other, 84*time.Second)
	reserveHeld(t, b.lim, method, "after one answer")
	// A failed call ends without a report: one in flight, 84 + 4 < 90.
	if err := b.lim.Done(ctx, portal, method); err != nil {
		t.Fatal(err)
	}
	reserveOK(t, b.lim, method, "after a failed call")
	reserveHeld(t, b.lim, method, "two in flight again")

	// Calls that never report stop counting after the in-flight TTL.
	// (The report's reset has passed by then, so this is the one call that
	// measures the window; held if the stale calls still counted.)
	b.clock.Advance(inflightTTL + time.Second)
	reserveOK(t, b.lim, method, "after the in-flight TTL")
}

func TestInflightOneCallAtATimeAfterTheReset(t *testing.T) {
	t.Parallel()
	b := setup(t, inflightCfg)
	ctx := context.Background()
	const method = "department.add"
	now := b.clock.Now()
	if err := b.lim.ObserveCall(ctx, portal, method, Report{Operating: 50 * time.Second, ResetAt: now.Add(10 * time.Second), Processing: time.Second}); err != nil {
		t.Fatal(err)
	}
	reserveOK(t, b.lim, method, "before the reset")
	reserveOK(t, b.lim, method, "before the reset, 2nd")
	if err := b.lim.Done(ctx, portal, method); err != nil {
		t.Fatal(err)
	}
	if err := b.lim.Done(ctx, portal, method); err != nil {
		t.Fatal(err)
	}

	// The window has moved by an unknown amount: one call measures it.
	b.clock.Advance(11 * time.Second)
	reserveOK(t, b.lim, method, "the probe")
	reserveHeld(t, b.lim, method, "while the probe is out")
	// Its answer says where the window stands: calls go on in parallel.
	if err := b.lim.ObserveCall(ctx, portal, method, Report{Operating: 10 * time.Second, ResetAt: b.clock.Now().Add(time.Minute), Processing: time.Second}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		reserveOK(t, b.lim, method, "after the probe's report "+string(rune('1'+i)))
	}
}

func TestInflightWaitSleepsUntilAnAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, inflightCfg)
	ctx := context.Background()
	const method = "department.add"
	reset := b.clock.Now().Add(time.Minute)
	if err := b.lim.ObserveCall(ctx, portal, method, Report{Operating: 85 * time.Second, ResetAt: reset, Processing: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := b.lim.Wait(ctx, portal, method); err != nil {
		t.Fatalf("first Wait: %v", err)
	}
	// 85 s + one call of 0.1 s in flight ... until 49 more are out.
	for range 49 {
		if _, err := b.lim.Reserve(ctx, portal, method); err != nil {
			t.Fatalf("Reserve: %v", err)
		}
	}
	reserveHeld(t, b.lim, method, "50 in flight")

	answered := make(chan time.Time, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		answered <- time.Now()
		_ = b.lim.Done(ctx, portal, method)
	}()
	if err := b.lim.Wait(ctx, portal, method); err != nil {
		t.Fatalf("Wait while calls are in flight: %v", err)
	}
	if at := <-answered; time.Now().Before(at) {
		t.Fatal("Wait returned before any call in flight had ended")
	}

	// A caller that may not wait that long is told so at once.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	var de *DelayError
	if err := b.lim.Wait(short, portal, method); !errors.As(err, &de) {
		t.Fatalf("Wait with a 10 ms deadline = %v, want *DelayError", err)
	}
}

func TestInflightLateReportDoesNotLowerTheOperatingTime(t *testing.T) {
	t.Parallel()
	b := setup(t, inflightCfg)
	ctx := context.Background()
	const method = "department.add"
	reset := b.clock.Now().Add(time.Minute)
	for _, op := range []time.Duration{84 * time.Second, 80 * time.Second} { // the older answer arrives last
		if err := b.lim.ObserveCall(ctx, portal, method, Report{Operating: op, ResetAt: reset, Processing: 4 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	// 84 s used: 84 and 88 are below 90, the third call waits.
	reserveOK(t, b.lim, method, "1st")
	reserveOK(t, b.lim, method, "2nd")
	reserveHeld(t, b.lim, method, "3rd (a late report of 80 s must not count)")

	// A report of an earlier window is older still: its figure is ignored,
	// but it is one call fewer in flight (84 + 4 < 90: one more call).
	if err := b.lim.ObserveCall(ctx, portal, method, Report{Operating: 10 * time.Second, ResetAt: reset.Add(-30 * time.Second), Processing: 4 * time.Second}); err != nil {
		t.Fatal(err)
	}
	reserveOK(t, b.lim, method, "after a report of an earlier window")
	reserveHeld(t, b.lim, method, "two in flight again")
}
