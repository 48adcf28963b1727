package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/testutil"
)

// halfTree is a 300-item tree (3 roots, 3 levels, 60 workplaces) of which
// the portal already holds half: the first 120 departments (parents before
// children) and 30 workplaces, every tenth department with another SORT and
// every seventh with another head, every fifth workplace with other types.
type halfTree struct {
	f                             *importer.File
	exists, differs, create       []string
	seededDepts, seededWorkplaces int
}

func seedHalfTree(b *bundle) halfTree {
	var h halfTree
	h.f = treeFile([]int{3, 57, 180}, 60)
	ids := map[string]int64{}
	for i, d := range h.f.Departments {
		d.Head = int64(500 + i)
		h.f.Departments[i] = d
		if i >= 120 {
			h.create = append(h.create, d.Key)
			continue
		}
		parent := int64(1)
		if d.Parent != "" {
			parent = ids[d.Parent]
		}
		sort, head := d.Sort, d.Head
		switch {
		case i%10 == 0:
			sort += 5
			h.differs = append(h.differs, d.Key)
		case i%7 == 0:
			head = 9
			h.differs = append(h.differs, d.Key)
		default:
			h.exists = append(h.exists, d.Key)
		}
		ids[d.Key] = b.sim.SeedDepartment(d.Name, parent, sort, head)
		h.seededDepts++
	}
	for i, w := range h.f.Workplaces {
		if i >= 30 {
			h.create = append(h.create, w.Key)
			continue
		}
		types := w.TypeIDs
		if i%5 == 0 {
			types = []int64{99}
			h.differs = append(h.differs, w.Key)
		} else {
			h.exists = append(h.exists, w.Key)
		}
		b.sim.SeedWorkplace(w.Title, types...)
		h.seededWorkplaces++
	}
	return h
}

// plan runs an import:plan task for f through the bundle's server and
// returns its result.
func (b *bundle) plan(t *testing.T, f *importer.File) Plan {
	t.Helper()
	raw, err := json.Marshal(fileJSON(f))
	if err != nil {
		t.Fatal(err)
	}
	task, err := NewPlanTask(b.portal, importer.ConflictFail, raw, asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the plan", func() (bool, string) {
		info, err = b.inspector.GetTaskInfo(b.queue, info.ID)
		return err == nil && info.State == asynq.TaskStateCompleted, fmt.Sprintf("%+v %v", info, err)
	})
	var p Plan
	if err := json.Unmarshal(info.Result, &p); err != nil {
		t.Fatalf("plan result %q: %v", info.Result, err)
	}
	return p
}

// fileJSON is f in the import file format.
func fileJSON(f *importer.File) map[string]any {
	var depts []map[string]any
	for _, d := range f.Departments {
		m := map[string]any{"key": d.Key, "name": d.Name, "sort": d.Sort, "head": d.Head}
		if d.ParentID != nil {
			m["parent_id"] = *d.ParentID
		} else {
			m["parent"] = d.Parent
		}
		depts = append(depts, m)
	}
	var wps []map[string]any
	for _, w := range f.Workplaces {
		wps = append(wps, map[string]any{"key": w.Key, "title": w.Title, "type_ids": w.TypeIDs})
	}
	return map[string]any{"departments": depts, "workplaces": wps}
}

// keysOf lists the plan's keys with action a, sorted.
func keysOf(p Plan, a importer.Action) []string {
	var out []string
	for _, it := range p.Items {
		if it.Action == a {
			out = append(out, it.Key)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// A portal that holds half of a 300-item tree: the plan lists exactly what
// exists, differs and is new, and touches nothing; the import creates only
// the missing half and adopts the rest; --update applies the differences;
// a second plan is all "exists".
func TestImportOntoAPortalThatHoldsHalfOfIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := seedHalfTree(b)
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)

	p := b.plan(t, h.f)
	for a, want := range map[importer.Action][]string{importer.ActionExists: h.exists, importer.ActionDiffers: h.differs, importer.ActionCreate: h.create} {
		if got := keysOf(p, a); !slices.Equal(got, sorted(want)) {
			t.Errorf("plan %s: %d keys %v, want %d", a, len(got), got, len(want))
		}
	}
	if p.Conflicts() {
		t.Errorf("plan has conflicts: %v", keysOf(p, importer.ActionConflict))
	}
	s := b.sim.Stats()
	if s.DepartmentsCreated+s.WorkplacesCreated+s.DepartmentsUpdated+s.WorkplacesUpdated != 0 {
		t.Fatalf("the plan changed the portal: %+v", s)
	}

	ctx := context.Background()
	res, err := bs.bimports.SubmitWith(ctx, b.portal, "", h.f, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := bs.waitBatchDone(t, res.ID, time.Minute)
	adopted := len(h.exists) + len(h.differs)
	if st.Counts.Failed != 0 || st.Counts.Adopted != adopted || st.Counts.Created != len(h.create) || st.Counts.Updated != 0 {
		t.Fatalf("counts %+v (want %d adopted, %d created), failed %v", st.Counts, adopted, len(h.create), st.Failed)
	}
	checkOnce(t, b, h.f, st, 0) // the seeded departments are the file's
	if s := b.sim.Stats(); s.DepartmentsCreated != 120 || s.WorkplacesCreated != 30 || s.DuplicateWorkplaces != 0 {
		t.Errorf("created %d departments, %d workplaces (duplicates %d), want 120 and 30", s.DepartmentsCreated, s.WorkplacesCreated, s.DuplicateWorkplaces)
	}

	// The same file with --update: the differences are applied.
	if _, err := bs.bimports.SubmitWith(ctx, b.portal, "", h.f, SubmitOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the updates", func() (bool, string) {
		st, _ = bs.imports.Status(ctx, res.ID)
		return st.Counts.Updated == len(h.differs), fmt.Sprintf("%+v", st.Counts)
	})
	if s := b.sim.Stats(); s.DepartmentsUpdated+s.WorkplacesUpdated != len(h.differs) {
		t.Errorf("%d updates reached the portal, want %d", s.DepartmentsUpdated+s.WorkplacesUpdated, len(h.differs))
	}
	if !slices.Equal(st.Updated, sorted(h.differs)) {
		t.Errorf("updated keys %v, want %v", st.Updated, sorted(h.differs))
	}
	p = b.plan(t, h.f)
	if got := keysOf(p, importer.ActionExists); len(got) != len(p.Items) {
		t.Errorf("second plan: %v, want every item to exist", p.Totals)
	}
}

// Redis loses the import's state in the middle of it; the same file
// submitted again adopts everything the first run created: every
// department exactly once.
func TestResubmitAfterRedisLostTheImport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := treeFile([]int{1, 10, 100, 150}, 10)
	ctx := context.Background()
	res, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "half the import created", func() (bool, string) {
		st, _ := bs.imports.Status(ctx, res.ID)
		return st.Counts.Created > 100, fmt.Sprintf("%+v", st.Counts)
	})
	// The data loss: the import's state, its queue and the claims are gone.
	testutil.DeleteKeys(b.rdb, b.prefix+":*")
	if _, err := b.inspector.DeleteAllPendingTasks(b.queue); err != nil {
		t.Fatal(err)
	}
	groups, _ := b.inspector.Groups(b.queue)
	for _, g := range groups {
		_, _ = b.inspector.DeleteAllAggregatingTasks(b.queue, g.Group)
	}
	bs.waitIdle(t, 30*time.Second)
	before := b.sim.Stats().DepartmentsCreated

	res, err = bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Existing {
		t.Fatal("the import's state survived the loss: the test proves nothing")
	}
	st := bs.waitBatchDone(t, res.ID, time.Minute)
	if st.Counts.Failed != 0 || st.Counts.Adopted < before-1 {
		t.Fatalf("counts %+v after %d created before the loss, failed %v", st.Counts, before, st.Failed)
	}
	checkSimulator(t, b, f, st)
}
