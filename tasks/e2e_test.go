package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
)

func pid(n int64) *int64 { return &n }

// treeFile generates a tree of n departments under the portal's root
// department (ID 1) in levels of the given sizes (len(levels) is the depth;
// the sizes must add up to n and the first must be 1), each department under
// a department of the level above, plus nWP workplaces.
func treeFile(levels []int, nWP int) *importer.File {
	f := &importer.File{}
	var prev []string
	i := 0
	for depth, size := range levels {
		var cur []string
		for j := range size {
			d := importer.Department{Key: fmt.Sprintf("d%d", i), Name: fmt.Sprintf("Dept %d (level %d)", i, depth+1), Sort: 10 * (j + 1)}
			if depth == 0 {
				d.ParentID = pid(1)
			} else {
				d.Parent = prev[j%len(prev)]
			}
			f.Departments = append(f.Departments, d)
			cur = append(cur, d.Key)
			i++
		}
		prev = cur
	}
	for w := range nWP {
		f.Workplaces = append(f.Workplaces, importer.Workplace{Key: fmt.Sprintf("w%d", w), Title: fmt.Sprintf("Workplace %d", w), TypeIDs: []int64{int64(w + 1)}})
	}
	return f
}

// checkSimulator asserts that every department and workplace of f exists in
// the simulator exactly once, under the ID the status records, with the
// right name and the right parent.
func checkSimulator(t *testing.T, b *bundle, f *importer.File, st store.Status) {
	t.Helper()
	depts := map[int64]struct {
		name   string
		parent int64
	}{}
	for _, d := range b.sim.Departments() {
		depts[d.ID] = struct {
			name   string
			parent int64
		}{d.Name, d.Parent}
	}
	if got, want := len(depts), len(f.Departments)+1; got != want { // +1: the portal's own root
		t.Errorf("simulator has %d departments, want %d", got, want)
	}
	for _, d := range f.Departments {
		id, ok := st.Created[d.Key]
		if !ok {
			t.Errorf("%s: not created", d.Key)
			continue
		}
		got, ok := depts[id]
		if !ok {
			t.Errorf("%s: ID %d not in the simulator", d.Key, id)
			continue
		}
		wantParent := st.Created[d.Parent]
		if d.ParentID != nil {
			wantParent = *d.ParentID
		}
		if got.name != d.Name || got.parent != wantParent {
			t.Errorf("%s: simulator has %q under %d, want %q under %d", d.Key, got.name, got.parent, d.Name, wantParent)
		}
	}
	wps := map[int64]string{}
	for _, w := range b.sim.Workplaces() {
		wps[w.ID] = w.Title
	}
	if len(wps) != len(f.Workplaces) {
		t.Errorf("simulator has %d workplaces, want %d", len(wps), len(f.Workplaces))
	}
	for _, w := range f.Workplaces {
		if id := st.Created[w.Key]; wps[id] != w.Title {
			t.Errorf("%s: simulator has %q at %d, want %q", w.Key, wps[id], id, w.Title)
		}
	}
	if s := b.sim.Stats(); s.DuplicateDepartments != 0 || s.DuplicateWorkplaces != 0 {
		t.Errorf("duplicates: %d departments, %d workplaces", s.DuplicateDepartments, s.DuplicateWorkplaces)
	}
}

func TestImportTreeEndToEndAndAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t, nil)
	ctx := context.Background()
	f := treeFile([]int{1, 4, 20, 75, 150, 250}, 5) // 500 departments, depth 6

	res, err := b.imports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	// One task: the reconcile step, which releases the roots.
	wantRes := SubmitResult{ID: f.ID() + "-" + b.portal, Total: 505, Enqueued: 1, Reconciling: true}
	if res != wantRes {
		t.Fatalf("Submit = %+v, want %+v", res, wantRes)
	}
	st := b.waitDone(t, res.ID, 45*time.Second)
	if st.Counts != (store.Counts{Total: 505, Created: 505}) || len(st.Failed) != 0 {
		t.Fatalf("status = %+v, failed %v", st.Counts, st.Failed)
	}
	checkSimulator(t, b, f, st)
	before := b.sim.Stats()

	// The same file again: nothing new.
	res, err = b.imports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	if want := (SubmitResult{ID: wantRes.ID, Total: 505, AlreadyCreated: 505, Existing: true}); res != want {
		t.Errorf("second Submit = %+v, want %+v", res, want)
	}
	// Nothing was queued: no task of this import may still run.
	if q, err := b.inspector.GetQueueInfo(b.queue); err != nil || q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating != 0 {
		t.Errorf("second run queued work: %+v, %v", q, err)
	}
	after := b.sim.Stats()
	if after.DepartmentsCreated != before.DepartmentsCreated || after.WorkplacesCreated != before.WorkplacesCreated || after.Requests != before.Requests {
		t.Errorf("second run reached the portal: before %+v, after %+v", before, after)
	}
	if st2, _ := b.imports.Status(ctx, res.ID); !maps.Equal(st2.Created, st.Created) {
		t.Error("created map changed on the second run")
	}
}

func TestFailedParentFailsSubtree(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t, nil)
	f := &importer.File{
		Departments: []importer.Department{
			{Key: "bad", Name: "Bad root", ParentID: pid(987654)}, // no such department: ERROR_CORE
			{Key: "c1", Name: "C1", Parent: "bad"},
			{Key: "c2", Name: "C2", Parent: "bad"},
			{Key: "c1a", Name: "C1a", Parent: "c1"},
			{Key: "good", Name: "Good", ParentID: pid(1)},
			{Key: "g1", Name: "G1", Parent: "good"},
		},
		Workplaces: []importer.Workplace{{Key: "w", Title: "HR"}},
	}
	res, err := b.imports.Submit(context.Background(), b.portal, "fail-1", f)
	if err != nil {
		t.Fatal(err)
	}
	st := b.waitDone(t, res.ID, 20*time.Second)
	if st.Counts != (store.Counts{Total: 7, Created: 3, Failed: 4}) {
		t.Fatalf("counts = %+v, failed = %v", st.Counts, st.Failed)
	}
	if r := st.Failed["bad"]; !strings.Contains(r, "ERROR_CORE") {
		t.Errorf("reason of bad = %q, want the portal's ERROR_CORE", r)
	}
	for _, k := range []string{"c1", "c2", "c1a"} {
		if r := st.Failed[k]; !strings.HasPrefix(r, "parent bad failed: ") || !strings.Contains(r, "ERROR_CORE") {
			t.Errorf("reason of %s = %q, want \"parent bad failed: ...ERROR_CORE...\"", k, r)
		}
	}
	if got := slices.Sorted(maps.Keys(st.Created)); !slices.Equal(got, []string{"g1", "good", "w"}) {
		t.Errorf("created = %v", got)
	}
	if n := b.sim.Stats().Calls["department.add"]["ok"]; n != 2 {
		t.Errorf("department.add succeeded %d times, want 2", n)
	}
}

// crashingTracker records the parent's ID like a worker would and then
// "dies" before releasing the children, once.
type crashingTracker struct {
	*Imports
	key     string
	crashed atomic.Bool
}

func (c *crashingTracker) Created(ctx context.Context, importID, key string, id int64) error {
	if key == c.key && !c.crashed.Swap(true) {
		if _, err := c.Store().Complete(ctx, importID, key, id); err != nil {
			return err
		}
		return errors.New("simulated crash between recording the parent and releasing its children")
	}
	return c.Imports.Created(ctx, importID, key, id)
}

func TestCrashBetweenCreateAndReleaseLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tracker := &crashingTracker{Imports: b.imports, key: "mid"}
	b.start(t, b.newHandler(t, tracker))
	f := &importer.File{Departments: []importer.Department{
		{Key: "top", Name: "Top", ParentID: pid(1)},
		{Key: "mid", Name: "Mid", Parent: "top"},
		{Key: "k1", Name: "K1", Parent: "mid"},
		{Key: "k2", Name: "K2", Parent: "mid"},
		{Key: "k3", Name: "K3", Parent: "k1"},
	}}
	res, err := b.imports.Submit(context.Background(), b.portal, "crash-1", f)
	if err != nil {
		t.Fatal(err)
	}
	st := b.waitDone(t, res.ID, 30*time.Second)
	if !tracker.crashed.Load() {
		t.Fatal("the crash was not simulated")
	}
	if st.Counts != (store.Counts{Total: 5, Created: 5}) {
		t.Fatalf("counts = %+v, failed %v", st.Counts, st.Failed)
	}
	checkSimulator(t, b, f, st)
	if n := b.sim.Stats().Calls["department.add"]["ok"]; n != 5 {
		t.Errorf("department.add succeeded %d times, want 5 (the retried parent must not create again)", n)
	}
	// The parent's task really ran twice, and its second run found the ID
	// in the import state without asking the portal.
	info, err := b.inspector.GetTaskInfo(b.queue, ImportTaskID(res.ID, "mid"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Retried != 1 {
		t.Errorf("parent task retried %d times, want 1", info.Retried)
	}
	// One department.get: the reconcile step's read of the portal; no lookup.
	if n := b.sim.Stats().Calls["department.get"]["ok"]; n != 1 {
		t.Errorf("department.get called: %v, want once (the reconcile read)", b.sim.Stats().Calls["department.get"])
	}
}

func TestSubmitRetriesFailedItems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := treeFile([]int{1, 2, 3}, 1)
	res, err := b.imports.Submit(ctx, b.portal, "retry-1", f)
	if err != nil {
		t.Fatal(err)
	}
	reconciled(t, b.imports, b.portal, res.ID)
	// The root's task failed for good (as the error middleware records it);
	// its pending task stands in for the archived one.
	if err := b.imports.Failed(ctx, res.ID, "d0", "permanent failure: ACCESS_DENIED"); err != nil {
		t.Fatal(err)
	}
	st, _ := b.imports.Status(ctx, res.ID)
	if st.Counts != (store.Counts{Total: 7, Pending: 1, Failed: 6}) {
		t.Fatalf("counts after failure = %+v", st.Counts)
	}
	res, err = b.imports.Submit(ctx, b.portal, "retry-1", f)
	if err != nil {
		t.Fatal(err)
	}
	if want := (SubmitResult{ID: "retry-1", Total: 7, Enqueued: 1, Existing: true, Retried: 6}); res != want {
		t.Fatalf("second Submit = %+v, want %+v", res, want)
	}
	b.start(t, nil)
	st = b.waitDone(t, res.ID, 20*time.Second)
	if st.Counts != (store.Counts{Total: 7, Created: 7}) || len(st.Failed) != 0 {
		t.Fatalf("counts = %+v, failed %v", st.Counts, st.Failed)
	}
	checkSimulator(t, b, f, st)
}

// A failed item may exist in the portal after all (its batch's retries
// ran out on lost answers): submitting the import again looks it up before
// creating it, so it is adopted, not created twice.
func TestSubmitRetriesFailedItemsLookingUpFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	ctx := context.Background()
	f := treeFile([]int{1, 2}, 0)
	res, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	reconciled(t, bs.bimports, b.portal, res.ID)
	// The root was created, but its answer was lost for good.
	c, err := b24.NewWebhook(b.sim.WebhookURL())
	if err != nil {
		t.Fatal(err)
	}
	rootID, _, err := c.AddDepartment(ctx, b24.DepartmentFields{Name: f.Departments[0].Name, Parent: 1, Sort: f.Departments[0].Sort})
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.imports.Failed(ctx, res.ID, "d0", "batch failed: lost answer"); err != nil {
		t.Fatal(err)
	}
	res, err = bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Retried != 3 {
		t.Fatalf("second Submit retried %d items, want 3", res.Retried)
	}
	bs.startBatch(t, BatchServerConfig(true), 1)
	st := bs.waitBatchDone(t, res.ID, 20*time.Second)
	// The verify group's lookup finds the root in the portal and records
	// it with the portal's ID; it counts as created, since this import's
	// earlier attempt created it (only the reconcile step, which ran
	// before anything was created, marks items adopted).
	if st.Counts != (store.Counts{Total: 3, Created: 3}) {
		t.Fatalf("counts = %+v, failed %v", st.Counts, st.Failed)
	}
	if st.Created["d0"] != rootID {
		t.Errorf("root recorded as %d, want the existing %d", st.Created["d0"], rootID)
	}
	checkSimulator(t, b, f, st)
}

func TestSubmitRejectsInvalidFileAndWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := &importer.File{Departments: []importer.Department{{Key: "a", Name: " ", ParentID: pid(1)}, {Key: "b", Name: "B", Parent: "zzz"}}}
	_, err := b.imports.Submit(ctx, b.portal, "bad-1", f)
	verr, ok := err.(*importer.ValidationError)
	if !ok || len(verr.Problems) != 2 {
		t.Fatalf("Submit = %#v, want the *importer.ValidationError with 2 problems", err)
	}
	if _, err := b.imports.Status(ctx, "bad-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Status after a rejected file = %v, want ErrNotFound", err)
	}
	good := treeFile([]int{1}, 0)
	for _, tt := range []struct{ portal, id string }{{"Bad Portal", "x"}, {b.portal, "bad:id"}} {
		if _, err := b.imports.Submit(ctx, tt.portal, tt.id, good); err == nil {
			t.Errorf("Submit(%q, %q) accepted", tt.portal, tt.id)
		}
	}
	if _, err := b.imports.Submit(ctx, b.portal, "same-id", good); err != nil {
		t.Fatal(err)
	}
	if _, err := b.imports.Submit(ctx, b.portal, "same-id", treeFile([]int{1}, 1)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same ID, other content: %v, want ErrConflict", err)
	}
}

func TestStatusJSONShape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := treeFile([]int{1, 1}, 1)
	res, err := b.imports.Submit(ctx, b.portal, "shape-1", f)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.imports.Created(ctx, res.ID, "d0", 42); err != nil {
		t.Fatal(err)
	}
	if err := b.imports.Failed(ctx, res.ID, "w0", "boom"); err != nil {
		t.Fatal(err)
	}
	st, err := b.imports.Status(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"shape-1","portal":"` + b.portal + `","done":false,` +
		`"counts":{"total":3,"created":1,"adopted":0,"updated":0,"pending":1,"waiting":0,"failed":1},` +
		`"created":{"d0":42},"failed":{"w0":"boom"}}`
	if string(data) != want {
		t.Errorf("status JSON =\n%s\nwant\n%s", data, want)
	}
	// The child of d0 was released with d0's ID.
	info, err := b.inspector.GetTaskInfo(b.queue, ImportTaskID(res.ID, "d1"))
	if err != nil {
		t.Fatal(err)
	}
	var p DepartmentPayload
	if err := json.Unmarshal(info.Payload, &p); err != nil || p.Parent != 42 || p.Key != "d1" || p.ImportID != res.ID {
		t.Errorf("released child payload = %+v, %v", p, err)
	}

	// Empty maps are {} (not null) for scripts.
	res2, err := b.imports.Submit(ctx, b.portal, "shape-2", treeFile([]int{1}, 0))
	if err != nil {
		t.Fatal(err)
	}
	st, _ = b.imports.Status(ctx, res2.ID)
	data, _ = json.Marshal(st)
	if !strings.Contains(string(data), `"created":{},"failed":{}`) {
		t.Errorf("empty status JSON = %s", data)
	}
}

func TestImportTaskIDIsDeterministicAndUnambiguous(t *testing.T) {
	t.Parallel()
	if ImportTaskID("imp-1", "a") != ImportTaskID("imp-1", "a") {
		t.Fatal("not deterministic")
	}
	// Import IDs hold no ':', so the ID ends at the first ':' after the
	// prefix, whatever the key holds.
	for _, tt := range []struct{ id, key string }{{"imp-1", "a:b"}, {"imp-1", "a"}, {"x.y_z", "::"}} {
		rest, ok := strings.CutPrefix(ImportTaskID(tt.id, tt.key), "import:")
		id, key, _ := strings.Cut(rest, ":")
		if !ok || id != tt.id || key != tt.key {
			t.Errorf("ImportTaskID(%q, %q) does not split back", tt.id, tt.key)
		}
	}
	if importer.ValidateID("imp-1:a") == nil {
		t.Error("an import ID with ':' is accepted")
	}
}

// tenK is a tree of 10,000 departments, 10 children per department.
func tenK() *importer.File {
	f := &importer.File{Departments: make([]importer.Department, 0, 10_000)}
	f.Departments = append(f.Departments, importer.Department{Key: "d0", Name: "D0", ParentID: pid(1)})
	for i := 1; i < 10_000; i++ {
		f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprint("d", i), Name: fmt.Sprint("Department ", i), Parent: fmt.Sprint("d", (i-1)/10)})
	}
	return f
}

func TestSubmit10kUnder10s(t *testing.T) {
	if testing.Short() {
		t.Skip("large import")
	}
	t.Parallel()
	b := setup(t)
	f := tenK()
	start := time.Now()
	res, err := b.imports.Submit(context.Background(), b.portal, "big-1", f)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("validate+Submit of 10,000 departments took %v, want < 10s", d)
	}
	if res.Total != 10_000 || res.Enqueued != 1 {
		t.Errorf("Submit = %+v", res)
	}
}

func BenchmarkSubmit10k(b *testing.B) {
	bb := setup(b)
	f := tenK()
	ctx := context.Background()
	n := 0
	for b.Loop() {
		n++
		if _, err := bb.imports.Submit(ctx, bb.portal, fmt.Sprintf("bench-%d", n), f); err != nil {
			b.Fatal(err)
		}
	}
	items := float64(n * len(f.Departments))
	b.ReportMetric(items/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/items, "ns/item")
}
