package importer

import (
	"encoding/json"
	"reflect"
	"testing"
)

func pidOf(n int64) *int64 { return &n }

func TestReconcilePlansEveryRow(t *testing.T) {
	t.Parallel()
	f := &File{
		Departments: []Department{
			{Key: "sales", Name: "Sales", ParentID: pidOf(1), Sort: 100},
			{Key: "eu", Name: "Sales EU", Parent: "sales", Sort: 200, Head: 9},
			{Key: "eu-north", Name: "North", Parent: "eu"},
			{Key: "new", Name: "New Dept", ParentID: pidOf(1)},
			{Key: "new-kid", Name: "Kid", Parent: "new"},
			{Key: "ops", Name: "Ops", ParentID: pidOf(1)},
			{Key: "ops-kid", Name: "Ops kid", Parent: "ops"},
			{Key: "hr", Name: "HR", ParentID: pidOf(1)},
		},
		Workplaces: []Workplace{
			{Key: "w1", Title: "Board", TypeIDs: []int64{2, 1}},
			{Key: "w2", Title: "Hiring", TypeIDs: []int64{3}},
			{Key: "w3", Title: "Fresh"},
		},
	}
	ex := Existing{
		Departments: []ExistingDepartment{
			{ID: 1, Name: "Company"},
			{ID: 12, Parent: 1, Name: "Sales", Sort: 100},
			{ID: 13, Parent: 12, Name: " Sales EU ", Sort: 100, Head: 7},
			{ID: 14, Parent: 1, Name: "Ops"},
			{ID: 15, Parent: 1, Name: "Ops"},
			{ID: 16, Parent: 1, Name: "hr"},
			{ID: 17, Parent: 99, Name: "Sales EU"}, // another parent: no match
		},
		Workplaces: []ExistingWorkplace{{ID: 3, Title: "Board", TypeIDs: []int64{1, 2}}, {ID: 4, Title: "Hiring", TypeIDs: []int64{1}}},
	}
	r := f.Reconcile(ex, ConflictFail, nil)
	want := map[string]PlannedItem{
		"sales":    {Key: "sales", Kind: "department", Name: "Sales", Action: ActionExists, ID: 12},
		"eu":       {Key: "eu", Kind: "department", Name: "Sales EU", Action: ActionDiffers, ID: 13, Changes: []Change{{"sort", "100", "200"}, {"head", "7", "9"}}},
		"eu-north": {Key: "eu-north", Kind: "department", Name: "North", Action: ActionCreate},
		"new":      {Key: "new", Kind: "department", Name: "New Dept", Action: ActionCreate},
		"new-kid":  {Key: "new-kid", Kind: "department", Name: "Kid", Action: ActionCreate},
		"w1":       {Key: "w1", Kind: "workplace", Name: "Board", Action: ActionExists, ID: 3},
		"w2":       {Key: "w2", Kind: "workplace", Name: "Hiring", Action: ActionDiffers, ID: 4, Changes: []Change{{"type_ids", "1", "3"}}},
		"w3":       {Key: "w3", Kind: "workplace", Name: "Fresh", Action: ActionCreate},
	}
	for k, w := range want {
		if got, _ := r.Item(k); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: got %+v\n want %+v", k, got, w)
		}
	}
	ops, _ := r.Item("ops")
	if ops.Action != ActionConflict || !reflect.DeepEqual(ops.Candidates, []int64{14, 15}) || ops.ID != 0 {
		t.Errorf("ops: %+v, want a conflict between 14 and 15", ops)
	}
	if kid, _ := r.Item("ops-kid"); kid.Action != ActionConflict {
		t.Errorf("child of a conflict: %+v", kid)
	}
	hr, _ := r.Item("hr")
	if hr.Action != ActionConflict || !reflect.DeepEqual(hr.Candidates, []int64{16}) {
		t.Errorf("hr (only a case-insensitive match): %+v", hr)
	}
	if !r.Conflicts() || r.Totals[ActionCreate] != 4 || r.Totals[ActionConflict] != 3 || r.Totals[ActionExists] != 2 || r.Totals[ActionDiffers] != 2 {
		t.Errorf("totals %v", r.Totals)
	}
	if got := eu(r).String(); got != `differs   eu "Sales EU" (ID 13: sort 100 -> 200, head 7 -> 9)` {
		t.Errorf("String = %q", got)
	}

	// --on-conflict first adopts the lowest ID and matches children under it.
	ex.Departments = append(ex.Departments, ExistingDepartment{ID: 20, Parent: 14, Name: "Ops kid"})
	r = f.Reconcile(ex, ConflictFirst, nil)
	if ops, _ := r.Item("ops"); ops.Action != ActionConflict || ops.ID != 14 {
		t.Errorf("ops with first: %+v", ops)
	}
	if kid, _ := r.Item("ops-kid"); kid.Action != ActionExists || kid.ID != 20 {
		t.Errorf("ops-kid with first: %+v", kid)
	}
	if hr, _ := r.Item("hr"); hr.ID != 16 {
		t.Errorf("hr with first: %+v", hr)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Error(err)
	}
}

func eu(r *Reconciliation) PlannedItem { it, _ := r.Item("eu"); return it }

func TestParseOnConflict(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]OnConflict{"": ConflictFail, "fail": ConflictFail, "first": ConflictFirst} {
		if got, err := ParseOnConflict(in); err != nil || got != want {
			t.Errorf("ParseOnConflict(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseOnConflict("last"); err == nil {
		t.Error("last accepted")
	}
}

// Rows an earlier run gave an ID are compared with that object, not
// matched by name; a recorded ID the portal no longer holds is a conflict.
func TestReconcileKnownRows(t *testing.T) {
	t.Parallel()
	f := &File{Departments: []Department{
		{Key: "a", Name: "A", ParentID: pidOf(1), Sort: 300},
		{Key: "b", Name: "B", Parent: "a"},
		{Key: "gone", Name: "Gone", ParentID: pidOf(1)},
	}}
	ex := Existing{Departments: []ExistingDepartment{{ID: 1, Name: "Company"}, {ID: 40, Parent: 1, Name: "A renamed", Sort: 100}, {ID: 41, Parent: 40, Name: "B"}}}
	r := f.Reconcile(ex, ConflictFail, map[string]int64{"a": 40, "gone": 77})
	if a, _ := r.Item("a"); a.Action != ActionDiffers || a.ID != 40 || len(a.Changes) != 1 {
		t.Errorf("a: %+v", a)
	}
	if b, _ := r.Item("b"); b.Action != ActionExists || b.ID != 41 {
		t.Errorf("b (matched under a's recorded ID): %+v", b)
	}
	if g, _ := r.Item("gone"); g.Action != ActionConflict || g.ID != 0 {
		t.Errorf("gone: %+v", g)
	}
}

// A file rendered with JSON parses back to the same rows.
func TestFileJSONRoundTrip(t *testing.T) {
	t.Parallel()
	f := &File{
		Departments: []Department{{Key: "a", Name: "A", ParentID: pidOf(1), Sort: 5, Head: 7}, {Key: "b", Name: "B", Parent: "a"}},
		Workplaces:  []Workplace{{Key: "w", Title: "W", TypeIDs: []int64{1, 2}}},
	}
	raw, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	g, err := DefaultLimits.ParseBytes(JSON, raw)
	if err == nil {
		err = g.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	if g.ID() != f.ID() || len(g.Departments) != 2 || g.Departments[1].Parent != "a" || *g.Departments[0].ParentID != 1 || g.Workplaces[0].TypeIDs[1] != 2 {
		t.Errorf("round trip: %+v %+v", g.Departments, g.Workplaces)
	}
}
