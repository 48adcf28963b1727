package limiter

import (
	"context"
	"math"
	"testing"
	"time"
)

// stateFixture is a portal with 3 grants in one second and 1 two seconds
// later, then a 503 and reports: department.add at 96 s of 100 (blocked),
// department.get sampled at 3 s. State is read by another process.
type stateFixture struct {
	b            *bundle
	start, reset time.Time
	st           State
}

func newStateFixture(t *testing.T) *stateFixture {
	t.Helper()
	cfg := Config{Rate: 2, Burst: 10, Cooldown: 2 * time.Second, OperatingLimit: 100 * time.Second}
	f := &stateFixture{b: setup(t, cfg)}
	b := f.b
	reader := b.newLimiter(t, cfg)
	ctx := context.Background()
	f.start = b.clock.Now()
	for range 3 {
		if _, err := b.lim.Reserve(ctx, portal, "department.add"); err != nil {
			t.Fatal(err)
		}
	}
	b.clock.Advance(2 * time.Second)
	if _, err := b.lim.Reserve(ctx, portal, "department.add"); err != nil {
		t.Fatal(err)
	}
	if err := b.lim.Throttled(ctx, portal); err != nil {
		t.Fatal(err)
	}
	f.reset = b.clock.Now().Add(4 * time.Minute).Truncate(time.Second)
	if err := b.lim.Observe(ctx, portal, "department.add", 96*time.Second, f.reset); err != nil {
		t.Fatal(err)
	}
	if err := b.lim.NoteUsage(ctx, portal, "department.get", Report{Operating: 3 * time.Second, ResetAt: f.reset}); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.st, err = reader.State(ctx, portal, "department.add", "crm.automatedsolution.add"); err != nil {
		t.Fatal(err)
	}
	// Reading changed nothing: the next grant is where it would have been.
	again, err := reader.State(ctx, portal)
	if err != nil || !again.NextSlot.Equal(f.st.NextSlot) || len(again.Methods) != 1 {
		t.Errorf("second State: next slot %v (was %v), %d methods, %v", again.NextSlot, f.st.NextSlot, len(again.Methods), err)
	}
	return f
}

// State reads back the bucket and the 503 that another process wrote.
func TestStateBucketAndCooldown(t *testing.T) {
	t.Parallel()
	f := newStateFixture(t)
	st, now := f.st, f.b.clock.Now()
	if !st.Now.Equal(now) || st.Config.Rate != 2 || st.SharedBurst != 9 {
		t.Errorf("now %v, config %+v, shared burst %d", st.Now, st.Config, st.SharedBurst)
	}
	if math.Abs(st.Rate-1.6) > 1e-9 {
		t.Errorf("rate = %v, want 1.6 after a 503", st.Rate)
	}
	if want := now.Add(2 * time.Second); !st.CooldownUntil.Equal(want) || !st.LastDecrease.Equal(now) {
		t.Errorf("cooldown until %v (want %v), last decrease %v", st.CooldownUntil, want, st.LastDecrease)
	}
	if !st.NextSlot.After(st.CooldownUntil) || st.Level < float64(st.SharedBurst) {
		t.Errorf("next slot %v, level %v: want after the cooldown, bucket full", st.NextSlot, st.Level)
	}
	if st.Unavailable != nil {
		t.Errorf("unavailable = %+v", st.Unavailable)
	}
}

// State counts the grants per second of the last HistoryWindow.
func TestStateHistory(t *testing.T) {
	t.Parallel()
	f := newStateFixture(t)
	st := f.st
	if n := len(st.Requests); n != int(HistoryWindow/time.Second) {
		t.Fatalf("%d seconds of history", n)
	}
	got, total := map[int64]int{}, 0
	for _, s := range st.Requests {
		got[s.At.Unix()] = s.Requests
		total += s.Requests
	}
	if got[f.start.Unix()] != 3 || got[f.start.Unix()+2] != 1 || total != 4 {
		t.Errorf("history: %d at start, %d two seconds later, %d in all; want 3, 1, 4", got[f.start.Unix()], got[f.start.Unix()+2], total)
	}
	if last := st.Requests[len(st.Requests)-1].At; last.Unix() != st.Now.Unix() {
		t.Errorf("history ends at %v, want now %v", last, st.Now)
	}
}

// State lists the methods asked for and those with a sampled report, with
// their operating time, reset and block.
func TestStateMethods(t *testing.T) {
	t.Parallel()
	f := newStateFixture(t)
	byName := map[string]MethodState{}
	for _, m := range f.st.Methods {
		byName[m.Method] = m
	}
	if len(f.st.Methods) != 3 {
		t.Fatalf("methods = %+v, want the two asked for and department.get", f.st.Methods)
	}
	add := byName["department.add"]
	if add.Operating != 96*time.Second || !add.ResetAt.Equal(f.reset) || add.Limit != 100*time.Second ||
		add.Threshold != 95*time.Second || !add.BlockedUntil.Equal(f.reset) {
		t.Errorf("department.add = %+v: want 96 s of 100, blocked until %v", add, f.reset)
	}
	if get := byName["department.get"]; get.Operating != 3*time.Second || !get.BlockedUntil.IsZero() || get.ReportedAt.IsZero() {
		t.Errorf("department.get = %+v", get)
	}
	if crm := byName["crm.automatedsolution.add"]; crm.Operating != 0 || !crm.ReportedAt.IsZero() {
		t.Errorf("crm.automatedsolution.add = %+v", crm)
	}
}

func TestStateUnavailableAndEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := context.Background()
	st, err := b.lim.State(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	if st.Rate != DefaultRate || st.Level != 0 || !st.NextSlot.Equal(st.Now) || !st.CooldownUntil.IsZero() || st.Methods != nil {
		t.Errorf("state of an unused portal = %+v", st)
	}
	if _, err := b.lim.MarkUnavailable(ctx, "quiet", "department.add", "INVALID_CREDENTIALS", "Invalid request credentials"); err != nil {
		t.Fatal(err)
	}
	st, err = b.lim.State(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	if u := st.Unavailable; u == nil || u.Code != "INVALID_CREDENTIALS" || u.NextProbe.IsZero() {
		t.Errorf("unavailable = %+v", u)
	}
	if _, err := b.lim.State(ctx, "bad{name}"); err == nil {
		t.Error("State of an invalid portal name: no error")
	}
}

// NoteUsage writes at most once per UsageEvery per portal and method.
func TestNoteUsageIsSpacedOut(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := context.Background()
	key := b.lim.keys.Usage(portal)
	if err := b.lim.NoteUsage(ctx, portal, "m", Report{Operating: time.Second}); err != nil {
		t.Fatal(err)
	}
	first := b.rdb.HGet(ctx, key, "m").Val()
	if err := b.lim.NoteUsage(ctx, portal, "m", Report{Operating: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := b.rdb.HGet(ctx, key, "m").Val(); got != first {
		t.Errorf("second note within %v was written: %s", UsageEvery, got)
	}
	if err := b.lim.NoteUsage(ctx, portal, "other", Report{Operating: time.Second}); err != nil {
		t.Fatal(err)
	}
	if n := b.rdb.HLen(ctx, key).Val(); n != 2 {
		t.Errorf("usage holds %d methods, want 2", n)
	}
	if ttl := b.rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > DefaultOperatingWindow {
		t.Errorf("usage TTL = %v", ttl)
	}
	// A ring slot of an old turn starts again from zero.
	if got := history(map[string]string{"1": "5000003"}, time.Unix(5+900, 0)); got[len(got)-1].Requests != 0 {
		t.Errorf("an old turn of the ring counted: %+v", got[len(got)-1])
	}
}
