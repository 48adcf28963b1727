package limiter

import (
	"context"
	"errors"
	"testing"
)

// An unavailable portal refuses every grant, fleet-wide, and hands out one
// probe at a time, backing off; a resume lets everyone through again.
func TestUnavailablePortalRefusesGrantsAndHandsOutProbes(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rate: 100, Burst: 100})
	other := b.newLimiter(t, Config{Rate: 100, Burst: 100}) // another process
	ctx := context.Background()
	const method = "department.add"

	changed, err := b.lim.MarkUnavailable(ctx, portal, method, "INVALID_CREDENTIALS", "Invalid request credentials")
	if err != nil || !changed {
		t.Fatalf("MarkUnavailable = %v, %v; want a change", changed, err)
	}
	if changed, _ := other.MarkUnavailable(ctx, portal, method, "INVALID_CREDENTIALS", "again"); changed {
		t.Error("the same code again counts as a change: every worker would log it")
	}
	unavailable := func(l *Limiter) *UnavailableError {
		t.Helper()
		var ue *UnavailableError
		if err := l.Wait(ctx, portal, method); !errors.As(err, &ue) {
			t.Fatalf("Wait = %v, want *UnavailableError", err)
		}
		return ue
	}
	ue := unavailable(other)
	if ue.Probe || ue.Code != "INVALID_CREDENTIALS" || !ue.Until.Equal(b.clock.Now().Add(FirstProbeDelay)) {
		t.Fatalf("before the first probe is due: %+v", ue)
	}

	b.clock.Advance(FirstProbeDelay)
	first, second := unavailable(b.lim), unavailable(other)
	if !first.Probe || second.Probe {
		t.Fatalf("probes handed out: %v, %v; want exactly the first caller", first.Probe, second.Probe)
	}
	if want := b.clock.Now().Add(2 * FirstProbeDelay); !second.Until.Equal(want) {
		t.Errorf("next probe %v, want %v (doubled)", second.Until, want)
	}
	if err := b.lim.WaitProbe(ctx, portal, "department.get"); err != nil {
		t.Fatalf("WaitProbe = %v", err)
	}
	u, ok, err := other.Availability(ctx, portal)
	if err != nil || !ok || u.Code != "INVALID_CREDENTIALS" || u.Probes != 1 || u.Method != method {
		t.Fatalf("Availability = %+v, %v, %v", u, ok, err)
	}

	// Backoff is capped.
	for range 10 {
		b.clock.Advance(MaxProbeDelay)
		unavailable(b.lim)
	}
	if u, _, _ := b.lim.Availability(ctx, portal); u.NextProbe.Sub(b.clock.Now()) != MaxProbeDelay {
		t.Errorf("next probe in %v, want the cap %v", u.NextProbe.Sub(b.clock.Now()), MaxProbeDelay)
	}

	if was, err := other.Resume(ctx, portal); err != nil || !was {
		t.Fatalf("Resume = %v, %v", was, err)
	}
	if err := b.lim.Wait(ctx, portal, method); err != nil {
		t.Fatalf("Wait after Resume = %v", err)
	}
	if _, ok, _ := b.lim.Availability(ctx, portal); ok {
		t.Error("still unavailable after Resume")
	}
}
