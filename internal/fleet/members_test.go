package fleet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func members(n int, configured ...string) []Member {
	out := make([]Member, n)
	for i := range out {
		out[i] = Member{ID: fmt.Sprintf("w%d", i), Portals: configured}
	}
	return out
}

// Owners spreads portals evenly, gives each the asked number of replicas,
// and when a member leaves moves only the portals it owned.
func TestOwnersSpreadAndMoveLittle(t *testing.T) {
	t.Parallel()
	all := members(3)
	count := map[string]int{}
	moved := 0
	const portals = 3000
	for i := range portals {
		p := fmt.Sprintf("portal%d", i)
		owners := Owners(p, true, all, 2)
		if len(owners) != 2 || owners[0] == owners[1] {
			t.Fatalf("Owners(%s) = %v, want 2 distinct", p, owners)
		}
		if again := Owners(p, true, all, 2); !slices.Equal(again, owners) {
			t.Fatalf("Owners is not stable: %v then %v", owners, again)
		}
		for _, o := range owners {
			count[o]++
		}
		// w2 leaves: a portal it did not own keeps its owners.
		after := Owners(p, true, all[:2], 2)
		if !slices.Contains(owners, "w2") && !slices.Equal(after, owners) {
			moved++
		}
	}
	for id, n := range count {
		if n < portals*2/3*9/10 || n > portals*2/3*11/10 {
			t.Errorf("%s owns %d of %d portal replicas, want about %d", id, n, portals*2, portals*2/3)
		}
	}
	if moved != 0 {
		t.Errorf("%d portals moved although their owners stayed", moved)
	}
	if got := Owners("p", true, all, 0); len(got) != 3 {
		t.Errorf("replicas 0: %v, want every member", got)
	}
	// A configured portal goes only to members that have it.
	mixed := append(members(2), Member{ID: "w9", Portals: []string{"acme"}})
	if got := Owners("acme", false, mixed, 2); !slices.Equal(got, []string{"w9"}) {
		t.Errorf("configured portal owners = %v, want [w9]", got)
	}
}

// A member counts while its heartbeat lasts; an expired one is dropped
// (and deleted), one that leaves is gone at once.
func TestMembersLive(t *testing.T) {
	t.Parallel()
	rdb, prefix := keySpace(t)
	ms := NewMembers(rdb, prefix)
	ctx := context.Background()
	now := time.Now()
	for _, m := range []Member{
		{ID: "b", Expires: now.Add(time.Minute), Portals: []string{"zeta", "acme"}},
		{ID: "a", Expires: now.Add(time.Minute)},
		{ID: "dead", Expires: now.Add(-time.Second)},
	} {
		if err := ms.Beat(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	live, err := ms.Live(ctx, now)
	if err != nil || len(live) != 2 || live[0].ID != "a" || live[1].ID != "b" || !live[1].Configured("acme") || live[1].Configured("beta") {
		t.Fatalf("Live = %+v, %v", live, err)
	}
	if n, _ := rdb.HLen(ctx, prefix+":workers").Result(); n != 2 {
		t.Errorf("the expired member was not deleted: %d fields", n)
	}
	if err := ms.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if live, _ = ms.Live(ctx, now); len(live) != 1 {
		t.Errorf("after Leave: %+v", live)
	}
}
