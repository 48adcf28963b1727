package limiter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/claim"
)

// A fresh claim is taken in the grant's own round trip; a claim that is not
// fresh consumes no slot and says what was found.
func TestWaitClaimTakesTheClaimWithTheGrant(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rate: 100, Burst: 100})
	ctx := context.Background()
	key := b.prefix + ":{" + portal + "}:obj:d:x"
	a := claim.Claim{Key: key, Owner: "task-a", Token: "r1"}
	other := claim.Claim{Key: key, Owner: "task-b", Token: "r1"}

	got, err := b.lim.WaitClaim(ctx, portal, "department.add", a, time.Hour)
	if err != nil || got.State != claim.Fresh {
		t.Fatalf("first WaitClaim = %+v, %v; want fresh", got, err)
	}
	if ttl := b.rdb.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("claim PTTL %v, want about 1h", ttl)
	}
	if at, _ := b.rdb.HGet(ctx, key, "at").Int64(); at != b.clock.Now().UnixMicro() {
		t.Errorf("claim send time %d, want the slot %d", at, b.clock.Now().UnixMicro())
	}
	tat := func() string { return b.rdb.HGet(ctx, b.lim.keys.Bucket(portal), "tat").Val() }
	before := tat()

	got, err = b.lim.WaitClaim(ctx, portal, "department.add", other, time.Hour)
	if err != nil || got.State != claim.Busy {
		t.Fatalf("WaitClaim of another owner = %+v, %v; want busy", got, err)
	}
	again := claim.Claim{Key: key, Owner: "task-a", Token: "r2"}
	got, err = b.lim.WaitClaim(ctx, portal, "department.add", again, time.Hour)
	if err != nil || got.State != claim.Resumed || !got.Since.Equal(time.UnixMicro(b.clock.Now().UnixMicro())) {
		t.Fatalf("WaitClaim of the same owner = %+v, %v; want resumed since the first slot", got, err)
	}
	// Neither consumed a slot: the bucket did not move.
	if after := tat(); after != before || before == "" {
		t.Errorf("claims that were not fresh consumed slots: tat %s → %s", before, after)
	}

	// Refused: the claim is not touched.
	fresh := claim.Claim{Key: b.prefix + ":{" + portal + "}:obj:d:y", Owner: "task-c", Token: "r1"}
	if err := b.lim.Block(ctx, portal, "department.add", b.clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var be *BlockedError
	if _, err := b.lim.WaitClaim(ctx, portal, "department.add", fresh, time.Hour); !errors.As(err, &be) {
		t.Fatalf("WaitClaim of a blocked method = %v, want *BlockedError", err)
	}
	if n := b.rdb.Exists(ctx, fresh.Key).Val(); n != 0 {
		t.Fatal("a refused WaitClaim took its claim")
	}
	// A key outside the portal's hash slot, or without a TTL, is refused.
	for _, bad := range []claim.Claim{{Key: "obj:d:z", Owner: "o", Token: "t"}, {Key: fresh.Key, Owner: "o"}} {
		if _, err := b.lim.WaitClaim(ctx, portal, "user.get", bad, time.Hour); err == nil {
			t.Errorf("WaitClaim(%+v) accepted", bad)
		}
	}
}

// A run whose claims were taken over by another run of the same work is
// not granted a slot (fencing).
func TestWaitCheckedRefusesASupersededRun(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rate: 100, Burst: 100})
	ctx := context.Background()
	k1, k2 := b.prefix+":{"+portal+"}:obj:d:1", b.prefix+":{"+portal+"}:obj:d:2"
	mine := []claim.Claim{{Key: k1, Owner: "item-1", Token: "batch-a"}, {Key: k2, Owner: "item-2", Token: "batch-a"}}
	if _, err := claim.Take(ctx, b.rdb, time.Hour, mine); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Second)
	if err := b.lim.WaitChecked(ctx, portal, "batch", mine, time.Hour); err != nil {
		t.Fatalf("WaitChecked of held claims = %v", err)
	}
	if at, _ := b.rdb.HGet(ctx, k2, "at").Int64(); at != b.clock.Now().UnixMicro() {
		t.Errorf("claim send time %d, want the slot %d", at, b.clock.Now().UnixMicro())
	}
	// Item 2 is taken over by another run (its lease expired here).
	if _, err := claim.Take(ctx, b.rdb, time.Hour, []claim.Claim{{Key: k2, Owner: "item-2", Token: "batch-b"}}); err != nil {
		t.Fatal(err)
	}
	var se *SupersededError
	if err := b.lim.WaitChecked(ctx, portal, "batch", mine, time.Hour); !errors.As(err, &se) || len(se.Indexes) != 1 || se.Indexes[0] != 1 {
		t.Fatalf("WaitChecked after a takeover = %v, want *SupersededError for index 1", err)
	}
}
