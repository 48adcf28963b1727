package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The index lists imports newest first, pages through them, counts them,
// and forgets an import whose state is gone.
func TestListNewestFirstPaged(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	createFive(t, s)
	if _, err := s.Complete(ctx, "imp-4", "root", 10); err != nil {
		t.Fatal(err)
	}

	first, err := s.List(ctx, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(first); !slices.Equal(got, []string{"imp-4", "imp-3"}) || first.Total != 5 || first.Offset != 0 {
		t.Fatalf("page 1 = %v (total %d)", got, first.Total)
	}
	top := first.Imports[0]
	want := Counts{Total: 6, Created: 1, Pending: 1, Waiting: 4}
	if top.Portal != "default" || top.Counts != want || top.Done || time.Since(top.CreatedAt) > time.Minute {
		t.Errorf("summary = %+v, want counts %+v", top, want)
	}
	last, err := s.List(ctx, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(last); !slices.Equal(got, []string{"imp-0"}) || last.Offset != 4 {
		t.Fatalf("page 3 = %v", got)
	}

}

// A resubmission is not a new entry; a deleted import leaves the index
// when a page meets it.
func TestListForgetsDeleted(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := context.Background()
	createFive(t, s)
	if existing, err := s.Create(ctx, "imp-2", "default", "digest-imp-2", sampleFile()); err != nil || !existing {
		t.Fatalf("resubmit = %v, %v", existing, err)
	}
	if err := s.Delete(ctx, "imp-3"); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !slices.Equal(got, []string{"imp-4", "imp-2", "imp-1", "imp-0"}) || all.Total != 4 {
		t.Fatalf("after delete = %v (total %d)", got, all.Total)
	}
	if n := rdb.ZCard(ctx, s.space.Imports()).Val(); n != 4 {
		t.Errorf("index holds %d entries, want 4", n)
	}
}

func TestListEmpty(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	p, err := s.List(context.Background(), 0, 10)
	if err != nil || p.Total != 0 || len(p.Imports) != 0 {
		t.Fatalf("List = %+v, %v", p, err)
	}
}

// The index drops entries older than the state TTL when an import is added.
func TestIndexDropsExpired(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := context.Background()
	old := float64(time.Now().Add(-DefaultStateTTL - time.Hour).UnixMilli())
	rdb.ZAdd(ctx, s.space.Imports(), redisZ(old, "ancient"))
	mustCreate(t, s, "imp-new", sampleFile())
	if got := rdb.ZRange(ctx, s.space.Imports(), 0, -1).Val(); !slices.Equal(got, []string{"imp-new"}) {
		t.Fatalf("index = %v", got)
	}
}

// Items come in tree order with state, portal ID and reason.
func TestItems(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	mustCreate(t, s, "imp-i", sampleFile())
	if _, err := s.Complete(ctx, "imp-i", "root", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fail(ctx, "imp-i", "a", "permanent failure: b24: department.add: ERROR_CORE: boom (HTTP 400)"); err != nil {
		t.Fatal(err)
	}
	items, err := s.Items(ctx, "imp-i")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		key   string
		depth int
		state ItemState
		id    int64
	}
	var got []row
	for _, it := range items {
		got = append(got, row{it.Key, it.Depth, it.State, it.PortalID})
	}
	want := []row{
		{"root", 0, ItemCreated, 10},
		{"a", 1, ItemFailed, 0},
		{"a1", 2, ItemFailed, 0},
		{"a2", 2, ItemFailed, 0},
		{"b", 1, ItemWaiting, 0}, // released, not yet marked queued
		{"w", 0, ItemPending, 0},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("items =\n%v\nwant\n%v", got, want)
	}
	root, a, a1, w := items[0], items[1], items[2], items[5]
	if root.Name != "Root" || root.ParentID != 1 || root.Kind != KindDepartment {
		t.Errorf("root = %+v", root)
	}
	if a.Parent != "root" || a.Reason != "permanent failure: b24: department.add: ERROR_CORE: boom (HTTP 400)" {
		t.Errorf("a = %+v", a)
	}
	if a1.Reason != "parent a failed: "+a.Reason {
		t.Errorf("a1 reason = %q", a1.Reason)
	}
	if w.Kind != KindWorkplace || w.Name != "HR" {
		t.Errorf("w = %+v", w)
	}

	if _, err := s.Items(ctx, "imp-nope"); err == nil || !isNotFound(err) {
		t.Errorf("Items of an unknown import = %v, want ErrNotFound", err)
	}
}

func ids(p Page) []string {
	var out []string
	for _, s := range p.Imports {
		out = append(out, s.ID)
	}
	return out
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// createFive creates imp-0 to imp-4, in this order.
func createFive(t *testing.T, s *Store) {
	t.Helper()
	for i := range 5 {
		mustCreate(t, s, fmt.Sprintf("imp-%d", i), sampleFile())
		time.Sleep(2 * time.Millisecond) // distinct scores
	}
}
