package claim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

// testRedisDB is this package's database on the shared test Redis.
const testRedisDB = 11

func TestTakeCheckSettleLifecycle(t *testing.T) {
	t.Parallel()
	rdb := testutil.Redis(t, testRedisDB)
	prefix := testutil.KeyPrefix(t, rdb)
	ctx := context.Background()
	key := prefix + ":{p}:obj:d:x"
	a1 := Claim{Key: key, Owner: "task-a", Token: "run1"}
	a2 := Claim{Key: key, Owner: "task-a", Token: "run2"}
	b := Claim{Key: key, Owner: "task-b", Token: "run1"}
	take := func(c Claim) Taken {
		t.Helper()
		got, err := Take(ctx, rdb, time.Minute, []Claim{c})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	check := func(c Claim) bool {
		t.Helper()
		bad, err := Check(ctx, rdb, time.Minute, []Claim{c})
		if err != nil {
			t.Fatal(err)
		}
		return len(bad) == 0
	}

	if got := take(a1); got.State != Fresh {
		t.Fatalf("first take = %v, want fresh", got.State)
	}
	if got := take(b); got.State != Busy {
		t.Fatalf("another owner's take = %v, want busy", got.State)
	}
	if !check(a1) || check(b) {
		t.Fatal("check: the holder must pass, another owner must not")
	}
	// A second run of the same task takes over: the first is superseded.
	if got := take(a2); got.State != Resumed {
		t.Fatalf("same owner's second run = %v, want resumed", got.State)
	}
	if check(a1) {
		t.Error("the superseded run still passes the check")
	}
	if !check(a2) {
		t.Error("the run that took over fails the check")
	}
	// Settling by a run that no longer holds the claim does nothing.
	if err := Settle(ctx, rdb, time.Minute, []Settlement{{Claim: a1, Outcome: Free}}); err != nil {
		t.Fatal(err)
	}
	if got := take(b); got.State != Busy {
		t.Fatalf("a stale settle freed the claim: take = %v", got.State)
	}
	// Known: whoever comes next looks first.
	if err := Settle(ctx, rdb, time.Minute, []Settlement{{Claim: a2, Outcome: Known}}); err != nil {
		t.Fatal(err)
	}
	if got := take(b); got.State != Look {
		t.Fatalf("take after a known outcome = %v, want look", got.State)
	}
	// Free: the next may create at once.
	if err := Settle(ctx, rdb, time.Minute, []Settlement{{Claim: b, Outcome: Free}}); err != nil {
		t.Fatal(err)
	}
	if got := take(a1); got.State != Fresh {
		t.Fatalf("take after a free outcome = %v, want fresh", got.State)
	}
}

func TestLuaNamesEveryState(t *testing.T) {
	t.Parallel()
	for _, want := range []string{"local CLAIM_FRESH = 1", "local CLAIM_SUPERSEDED = 6", "local CLAIM_KNOWN = 1", "local CLAIM_FREE = 2"} {
		if !strings.Contains(Lua, want) {
			t.Errorf("Lua lacks %q", want)
		}
	}
	for _, line := range strings.Split(Lua, "\n") {
		if strings.Contains(line, "return") && strings.ContainsAny(strings.TrimPrefix(strings.TrimSpace(line), "return"), "0123456789") &&
			!strings.Contains(line, "CLAIM_") {
			t.Errorf("a return with a literal code: %q", line)
		}
	}
}
