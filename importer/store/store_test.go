package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/testutil"
)

// storeTestDB is the Redis database of this package's tests.
const storeTestDB = 3

// newStore returns a Store on DB 3 with a prefix unique to the test whose
// keys are deleted at the end, or skips when Redis does not answer and CI is
// unset.
func newStore(t testing.TB) (*Store, *redis.Client) {
	t.Helper()
	rdb := testutil.Redis(t, storeTestDB)
	return New(rdb, testutil.KeyPrefix(t, rdb)), rdb
}

func pid(n int64) *int64 { return &n }

// sampleFile is: root(parent_id 1) → a → a1, a2; root → b; workplace w.
func sampleFile() *importer.File {
	return &importer.File{
		Departments: []importer.Department{
			{Key: "root", Name: "Root", ParentID: pid(1), Sort: 10, Head: 7},
			{Key: "a", Name: "A", Parent: "root"},
			{Key: "a1", Name: "A1", Parent: "a"},
			{Key: "a2", Name: "A2", Parent: "a"},
			{Key: "b", Name: "B", Parent: "root"},
		},
		Workplaces: []importer.Workplace{{Key: "w", Title: "HR", TypeIDs: []int64{1, 2}}},
	}
}

func mustCreate(t *testing.T, s *Store, id string, f *importer.File) {
	t.Helper()
	existing, err := s.Create(context.Background(), id, "default", "digest-"+id, f)
	if err != nil || existing {
		t.Fatalf("Create = %v, %v; want new import", existing, err)
	}
}

func keysOf(items []Item) []string {
	var ks []string
	for _, it := range items {
		ks = append(ks, it.Key)
	}
	slices.Sort(ks)
	return ks
}

func wantCounts(t *testing.T, s *Store, id string, want Counts) Status {
	t.Helper()
	st, err := s.Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts != want {
		t.Fatalf("counts = %+v, want %+v", st.Counts, want)
	}
	return st
}

func TestCreateStatusAndConflict(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	f := sampleFile()
	mustCreate(t, s, "imp-1", f)
	st := wantCounts(t, s, "imp-1", Counts{Total: 6, Pending: 2, Waiting: 4})
	if st.Done || st.Portal != "default" || st.ID != "imp-1" || len(st.Created) != 0 || len(st.Failed) != 0 {
		t.Errorf("status = %+v", st)
	}
	if time.Since(st.CreatedAt) > time.Minute {
		t.Errorf("created_at = %v", st.CreatedAt)
	}

	existing, err := s.Create(ctx, "imp-1", "default", "digest-imp-1", f)
	if err != nil || !existing {
		t.Errorf("second Create = %v, %v; want existing", existing, err)
	}
	for _, tt := range []struct{ portal, digest string }{{"default", "other"}, {"acme", "digest-imp-1"}} {
		if _, err := s.Create(ctx, "imp-1", tt.portal, tt.digest, f); !errors.Is(err, ErrConflict) {
			t.Errorf("Create(%s, %s) = %v, want ErrConflict", tt.portal, tt.digest, err)
		}
	}
	if _, err := s.Status(ctx, "imp-none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status of unknown import = %v, want ErrNotFound", err)
	}
}

func TestCreateOverwritesHalfWrittenImport(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := context.Background()
	k := s.keys("imp-half")
	// A Create that died before its meta: stale items and a stale ID.
	rdb.HSet(ctx, k.State, "stale", "c", "root", "c")
	rdb.HSet(ctx, k.IDs, "root", "99")
	if _, err := s.Status(ctx, "imp-half"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half-written import visible: %v", err)
	}
	mustCreate(t, s, "imp-half", sampleFile())
	st := wantCounts(t, s, "imp-half", Counts{Total: 6, Pending: 2, Waiting: 4})
	if len(st.Created) != 0 {
		t.Errorf("stale IDs survived: %v", st.Created)
	}
	if n, _ := rdb.HLen(ctx, k.State).Result(); n != 6 {
		t.Errorf("state has %d items, want 6", n)
	}
}

func TestConcurrentCreateWritesOnce(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 8 {
		wg.Go(func() {
			existing, err := s.Create(context.Background(), "imp-c", "default", "d", sampleFile())
			if err != nil {
				t.Error(err)
				return
			}
			if !existing {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fresh != 1 {
		t.Errorf("%d Creates wrote the import, want 1", fresh)
	}
	wantCounts(t, s, "imp-c", Counts{Total: 6, Pending: 2, Waiting: 4})
}

func TestCompleteReleasesChildrenOnce(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	mustCreate(t, s, "imp-2", sampleFile())

	kids, err := s.Complete(ctx, "imp-2", "root", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(kids); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("children = %v, want [a b]", got)
	}
	for _, k := range kids {
		if k.ParentID != 10 || k.Kind != KindDepartment || k.Parent != "root" {
			t.Errorf("child %+v: want ParentID 10, department, parent root", k)
		}
	}
	// A crash before the children were enqueued: the retried parent gets
	// them again.
	again, err := s.Complete(ctx, "imp-2", "root", 10)
	if err != nil || !slices.Equal(keysOf(again), []string{"a", "b"}) {
		t.Fatalf("Complete again = %v, %v; want the same children", keysOf(again), err)
	}
	wantCounts(t, s, "imp-2", Counts{Total: 6, Created: 1, Pending: 1, Waiting: 4})
	if n, err := s.MarkQueued(ctx, "imp-2", "a", "b"); err != nil || n != 2 {
		t.Fatalf("MarkQueued = %d, %v", n, err)
	}
	if n, _ := s.MarkQueued(ctx, "imp-2", "a", "b"); n != 0 {
		t.Errorf("second MarkQueued moved %d", n)
	}
	wantCounts(t, s, "imp-2", Counts{Total: 6, Created: 1, Pending: 3, Waiting: 2})
	if again, _ := s.Complete(ctx, "imp-2", "root", 10); len(again) != 0 {
		t.Errorf("after MarkQueued, Complete released %v again", keysOf(again))
	}

	// A second ID for the same item keeps the first.
	kids, err = s.Complete(ctx, "imp-2", "a", 20)
	if err != nil || len(kids) != 2 {
		t.Fatalf("Complete a = %v, %v", kids, err)
	}
	kids, err = s.Complete(ctx, "imp-2", "a", 21)
	if err != nil || len(kids) != 2 || kids[0].ParentID != 20 {
		t.Fatalf("Complete a with another ID = %+v, %v; want children under 20", kids, err)
	}
	if id, ok, err := s.Existing(ctx, "imp-2", "a"); err != nil || !ok || id != 20 {
		t.Errorf("Existing(a) = %d, %v, %v; want 20", id, ok, err)
	}
	if _, ok, err := s.Existing(ctx, "imp-2", "a1"); err != nil || ok {
		t.Errorf("Existing(a1) = %v, %v; want not found", ok, err)
	}
	st := wantCounts(t, s, "imp-2", Counts{Total: 6, Created: 2, Pending: 2, Waiting: 2})
	if st.Created["root"] != 10 || st.Created["a"] != 20 {
		t.Errorf("created = %v", st.Created)
	}
}

func TestConcurrentCompleteFirstWriterWins(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	mustCreate(t, s, "imp-cc", sampleFile())
	parents := make([]int64, 10)
	var wg sync.WaitGroup
	for i := range parents {
		wg.Go(func() {
			kids, err := s.Complete(context.Background(), "imp-cc", "root", int64(100+i))
			if err != nil || len(kids) == 0 {
				t.Errorf("Complete = %v, %v", kids, err)
				return
			}
			parents[i] = kids[0].ParentID
		})
	}
	wg.Wait()
	for _, p := range parents {
		if p != parents[0] {
			t.Fatalf("children released under different IDs: %v", parents)
		}
	}
	wantCounts(t, s, "imp-cc", Counts{Total: 6, Created: 1, Pending: 1, Waiting: 4})
}

func TestFailFailsSubtree(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	mustCreate(t, s, "imp-3", sampleFile())
	if _, err := s.Complete(ctx, "imp-3", "root", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Complete(ctx, "imp-3", "b", 11); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkQueued(ctx, "imp-3", "a"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Fail(ctx, "imp-3", "a", "ERROR_CORE: bad")
	if err != nil || n != 3 {
		t.Fatalf("Fail = %d, %v; want 3 (a, a1, a2)", n, err)
	}
	st := wantCounts(t, s, "imp-3", Counts{Total: 6, Created: 2, Pending: 1, Failed: 3})
	want := map[string]string{"a": "ERROR_CORE: bad", "a1": "parent a failed: ERROR_CORE: bad", "a2": "parent a failed: ERROR_CORE: bad"}
	for k, v := range want {
		if st.Failed[k] != v {
			t.Errorf("failed[%s] = %q, want %q", k, st.Failed[k], v)
		}
	}
	if st.Done {
		t.Error("done with the workplace still pending")
	}
	// Idempotent, keeps the first reason; a created item is never failed.
	for _, tt := range []struct{ key, reason string }{{"a", "other"}, {"a1", "other"}, {"root", "late"}} {
		if n, err := s.Fail(ctx, "imp-3", tt.key, tt.reason); err != nil || n != 0 {
			t.Errorf("Fail(%s) = %d, %v; want 0", tt.key, n, err)
		}
	}
	if _, err := s.Complete(ctx, "imp-3", "w", 5); err != nil {
		t.Fatal(err)
	}
	st = wantCounts(t, s, "imp-3", Counts{Total: 6, Created: 3, Failed: 3})
	if !st.Done || st.Failed["a"] != "ERROR_CORE: bad" {
		t.Errorf("status = %+v; want done with the first reason", st)
	}
}

func TestFailDeepChainIsIterative(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	// A chain of 5,000: a recursive walk would overflow Lua's C stack.
	f := &importer.File{Departments: []importer.Department{{Key: "d0", Name: "D0", ParentID: pid(1)}}}
	for i := 1; i < 5000; i++ {
		f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprint("d", i), Name: fmt.Sprint("D", i), Parent: fmt.Sprint("d", i-1)})
	}
	mustCreate(t, s, "imp-deep", f)
	if n, err := s.Fail(ctx, "imp-deep", "d0", "boom"); err != nil || n != 5000 {
		t.Fatalf("Fail = %d, %v; want 5000", n, err)
	}
	st := wantCounts(t, s, "imp-deep", Counts{Total: 5000, Failed: 5000})
	if st.Failed["d4999"] != "parent d0 failed: boom" || !st.Done {
		t.Errorf("leaf reason = %q, done = %v", st.Failed["d4999"], st.Done)
	}
}

func TestReleasableAndResetFailed(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	mustCreate(t, s, "imp-4", sampleFile())
	items, err := s.Releasable(ctx, "imp-4")
	if err != nil || !slices.Equal(keysOf(items), []string{"root", "w"}) {
		t.Fatalf("Releasable = %v, %v; want [root w]", keysOf(items), err)
	}
	for _, it := range items {
		switch it.Key {
		case "root":
			if it.ParentID != 1 || it.Sort != 10 || it.Head != 7 || it.Name != "Root" {
				t.Errorf("root = %+v", it)
			}
		case "w":
			if it.Kind != KindWorkplace || it.Name != "HR" || !slices.Equal(it.TypeIDs, []int64{1, 2}) {
				t.Errorf("w = %+v", it)
			}
		}
	}
	// root created but its children never marked queued (a crashed release):
	// they are releasable, under root's ID; w created: not releasable.
	if _, err := s.Complete(ctx, "imp-4", "root", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Complete(ctx, "imp-4", "w", 3); err != nil {
		t.Fatal(err)
	}
	items, _ = s.Releasable(ctx, "imp-4")
	if !slices.Equal(keysOf(items), []string{"a", "b"}) || items[0].ParentID != 10 {
		t.Fatalf("Releasable = %+v; want a, b under 10", items)
	}

	if _, err := s.Fail(ctx, "imp-4", "a", "boom"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.Failures(ctx, "imp-4"); len(keys) != 3 {
		t.Fatalf("failures = %v", keys)
	}
	reset, err := s.ResetFailed(ctx, "imp-4")
	slices.Sort(reset)
	if err != nil || !slices.Equal(reset, []string{"a", "a1", "a2"}) {
		t.Fatalf("ResetFailed = %v, %v", reset, err)
	}
	// a is queued again (its parent is created); a1, a2 wait for a.
	wantCounts(t, s, "imp-4", Counts{Total: 6, Created: 2, Pending: 1, Waiting: 3})
	items, _ = s.Releasable(ctx, "imp-4")
	if !slices.Equal(keysOf(items), []string{"a", "b"}) {
		t.Errorf("Releasable after reset = %v", keysOf(items))
	}
}

func TestUnknownImportAndItem(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Complete(ctx, "nope", "k", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Complete: %v", err)
	}
	if _, err := s.Fail(ctx, "nope", "k", "r"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fail: %v", err)
	}
	if _, _, err := s.Existing(ctx, "nope", "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Existing: %v", err)
	}
	if _, err := s.Releasable(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Releasable: %v", err)
	}
	if _, err := s.MarkQueued(ctx, "nope", "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkQueued: %v", err)
	}
	mustCreate(t, s, "imp-5", sampleFile())
	if _, err := s.Complete(ctx, "imp-5", "zzz", 1); !errors.Is(err, ErrUnknownItem) {
		t.Errorf("Complete unknown key: %v", err)
	}
	if _, err := s.Fail(ctx, "imp-5", "zzz", "r"); !errors.Is(err, ErrUnknownItem) {
		t.Errorf("Fail unknown key: %v", err)
	}
}

func TestEveryKeyHasTTL(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	s.ttl = time.Hour
	ctx := context.Background()
	mustCreate(t, s, "imp-ttl", sampleFile())
	if _, err := s.Complete(ctx, "imp-ttl", "root", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fail(ctx, "imp-ttl", "a", "x"); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, s.space.Prefix()+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 8 {
		t.Errorf("keys = %v, want the 7 state keys (no lock left) and the index", keys)
	}
	for _, k := range keys {
		ttl := rdb.PTTL(ctx, k).Val()
		if ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s: TTL %v, want (0, 1h]", k, ttl)
		}
		if k != s.space.Imports() && !strings.Contains(k, ":imp:{imp-ttl}:") {
			t.Errorf("%s: not under the import's hash tag", k)
		}
	}
}

func TestCreate10kIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("large import")
	}
	t.Parallel()
	s, _ := newStore(t)
	f := &importer.File{Departments: []importer.Department{{Key: "d0", Name: "D0", ParentID: pid(1)}}}
	for i := 1; i < 10_000; i++ {
		f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprint("d", i), Name: fmt.Sprint("D", i), Parent: fmt.Sprint("d", (i-1)/10)})
	}
	start := time.Now()
	mustCreate(t, s, "imp-10k", f)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Create of 10,000 items took %v", d)
	}
	wantCounts(t, s, "imp-10k", Counts{Total: 10_000, Pending: 1, Waiting: 9_999})
	kids, err := s.Complete(context.Background(), "imp-10k", "d0", 5)
	if err != nil || len(kids) != 10 {
		t.Errorf("Complete d0 = %d children, %v; want 10", len(kids), err)
	}
}
