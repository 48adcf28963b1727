package importer

// Reconciling a file with what a portal already holds, before anything is
// created: which rows exist already (adopt them), which differ (adopt, and
// with --update change them), which are ambiguous (conflict), which are new.
// Pure: the caller reads the portal and passes what it found.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ExistingDepartment is a department the portal holds.
type ExistingDepartment struct {
	ID, Parent int64
	Name       string
	Sort       int
	Head       int64
}

// ExistingWorkplace is a digital workplace the portal holds.
type ExistingWorkplace struct {
	ID      int64
	Title   string
	TypeIDs []int64
}

// Existing is what the portal holds where a file writes.
type Existing struct {
	Departments []ExistingDepartment
	Workplaces  []ExistingWorkplace
}

// OnConflict says what an import does with a row that matches more than one
// existing object, or one only when case is ignored.
type OnConflict string

// The conflict policies of `enqueue import --on-conflict`.
const (
	// ConflictFail fails the row (and its subtree) with a reason naming the
	// IDs: a person decides.
	ConflictFail OnConflict = "fail"
	// ConflictFirst adopts the lowest ID.
	ConflictFirst OnConflict = "first"
)

// ParseOnConflict checks a policy name ("" means ConflictFail).
func ParseOnConflict(s string) (OnConflict, error) {
	switch OnConflict(s) {
	case "", ConflictFail:
		return ConflictFail, nil
	case ConflictFirst:
		return ConflictFirst, nil
	}
	return "", fmt.Errorf("on-conflict %q: want fail or first", s)
}

// Action is what an import does with one row.
type Action string

// The actions of a plan.
const (
	ActionCreate   Action = "create"   // nothing matches: create it
	ActionExists   Action = "exists"   // one object matches and has the row's values: adopt it
	ActionDiffers  Action = "differs"  // one object matches with other values: adopt it (--update changes them)
	ActionConflict Action = "conflict" // several match, or one only when case is ignored
)

// Change is one field an adopted object has with another value than the
// row asks for.
type Change struct {
	Field string `json:"field"` // "sort", "head" or "type_ids"
	From  string `json:"from"`
	To    string `json:"to"`
}

// PlannedItem is what an import does with one row.
type PlannedItem struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"` // "department" or "workplace"
	Name   string `json:"name"`
	Action Action `json:"action"`
	// ID is the object adopted (exists, differs, or a conflict resolved by
	// --on-conflict first); 0 otherwise.
	ID int64 `json:"id,omitempty"`
	// Candidates are the IDs of a conflict, lowest first.
	Candidates []int64 `json:"candidates,omitempty"`
	// Changes are the differences of a differs row.
	Changes []Change `json:"changes,omitempty"`
	// Reason explains a conflict.
	Reason string `json:"reason,omitempty"`
}

// Reconciliation is the plan of a file against a portal: one item per row,
// departments parents first, then workplaces.
type Reconciliation struct {
	Items  []PlannedItem   `json:"items"`
	Totals map[Action]int  `json:"totals"`
	byKey  map[string]int  // index into Items
	parent map[string]bool // rows whose parent is in conflict
}

// Item returns the plan of the row key (also of a plan decoded from JSON).
func (r *Reconciliation) Item(key string) (PlannedItem, bool) {
	if r.byKey == nil {
		for _, it := range r.Items {
			if it.Key == key {
				return it, true
			}
		}
		return PlannedItem{}, false
	}
	i, ok := r.byKey[key]
	if !ok {
		return PlannedItem{}, false
	}
	return r.Items[i], true
}

// Conflicts reports whether any row is in conflict.
func (r *Reconciliation) Conflicts() bool { return r.Totals[ActionConflict] > 0 }

// Reconcile plans f (which must be valid) against what the portal holds.
// A department matches an existing one with exactly its name (spaces around
// it ignored) under its parent: the row's parent_id, or the object a parent
// row adopts. Children of a row that will be created are created too. A
// department name that matches only when case is ignored is a conflict (the
// portal's LIKE treats the two as the same name), as are several matches;
// with ConflictFirst such a row adopts the lowest ID and its children are
// matched under it. A workplace matches by title the same way. Values the
// row does not give (sort or head 0, no type_ids) are not compared.
//
// known maps the keys of rows that already have a portal ID (an earlier run
// of the import created or adopted them) to that ID: such a row is not
// matched by name but compared with the object of its ID (exists or
// differs), and is a conflict when the portal no longer holds that ID.
func (f *File) Reconcile(ex Existing, policy OnConflict, known map[string]int64) *Reconciliation {
	r := &Reconciliation{Totals: map[Action]int{}, byKey: map[string]int{}, parent: map[string]bool{}}
	under := map[int64][]ExistingDepartment{}
	deptByID := map[int64]ExistingDepartment{}
	for _, d := range ex.Departments {
		under[d.Parent] = append(under[d.Parent], d)
		deptByID[d.ID] = d
	}
	wpByID := map[int64]ExistingWorkplace{}
	for _, w := range ex.Workplaces {
		wpByID[w.ID] = w
	}
	adopted := map[string]int64{} // department key → adopted ID
	for _, d := range f.Order() {
		if id, ok := known[d.Key]; ok {
			e, held := deptByID[id]
			it := knownItem(d.Key, "department", d.Name, id, held, func() []Change { return departmentChanges(d, e) })
			adopted[d.Key] = id
			r.add(it)
			continue
		}
		parent := int64(0)
		switch {
		case d.Parent == "" && d.ParentID != nil:
			parent = *d.ParentID
		case r.parent[d.Parent]:
			r.add(PlannedItem{Key: d.Key, Kind: "department", Name: d.Name, Action: ActionConflict,
				Reason: fmt.Sprintf("its parent %q is in conflict", d.Parent)})
			r.parent[d.Key] = true
			continue
		default:
			id, ok := adopted[d.Parent]
			if !ok { // the parent will be created: so will its children
				r.add(PlannedItem{Key: d.Key, Kind: "department", Name: d.Name, Action: ActionCreate})
				continue
			}
			parent = id
		}
		it := matchDepartment(d, parent, under[parent], policy)
		if it.ID != 0 {
			adopted[d.Key] = it.ID
		} else if it.Action == ActionConflict {
			r.parent[d.Key] = true
		}
		r.add(it)
	}
	for _, w := range f.Workplaces {
		if id, ok := known[w.Key]; ok {
			e, held := wpByID[id]
			r.add(knownItem(w.Key, "workplace", w.Title, id, held, func() []Change { return workplaceChanges(w, e) }))
			continue
		}
		r.add(matchWorkplace(w, ex.Workplaces, policy))
	}
	return r
}

// knownItem plans a row that has a portal ID already: exists or differs,
// or a conflict when the portal no longer holds the ID.
func knownItem(key, kind, name string, id int64, held bool, changes func() []Change) PlannedItem {
	it := PlannedItem{Key: key, Kind: kind, Name: name, ID: id, Action: ActionExists}
	if !held {
		it.Action, it.ID, it.Candidates = ActionConflict, 0, []int64{id}
		it.Reason = fmt.Sprintf("the import recorded ID %d, which the portal no longer holds", id)
		return it
	}
	if it.Changes = changes(); len(it.Changes) > 0 {
		it.Action = ActionDiffers
	}
	return it
}

func (r *Reconciliation) add(it PlannedItem) {
	r.byKey[it.Key] = len(r.Items)
	r.Items = append(r.Items, it)
	r.Totals[it.Action]++
}

// match is what a row found among candidates: exact matches and matches
// only when case is ignored, each sorted by ID.
func match[T any](name string, cands []T, nameOf func(T) string, idOf func(T) int64) (exact, folded []T) {
	want := strings.TrimSpace(name)
	for _, c := range cands {
		switch have := strings.TrimSpace(nameOf(c)); {
		case have == want:
			exact = append(exact, c)
		case strings.EqualFold(have, want):
			folded = append(folded, c)
		}
	}
	byID := func(a, b T) int { return cmp.Compare(idOf(a), idOf(b)) }
	slices.SortFunc(exact, byID)
	slices.SortFunc(folded, byID)
	return exact, folded
}

// decide turns the matches of one row into its plan item; compare lists
// the differences of an object from the row.
// what names the objects found ("departments under 12", "workplaces") and
// nameOf an object's name, for the reason of a conflict.
func decide[T any](it PlannedItem, what string, exact, folded []T, idOf func(T) int64, nameOf func(T) string, compare func(T) []Change, policy OnConflict) PlannedItem {
	ids := func(ts []T) []int64 {
		out := make([]int64, len(ts))
		for i, t := range ts {
			out[i] = idOf(t)
		}
		return out
	}
	var pick T
	switch {
	case len(exact) == 1:
		pick = exact[0]
	case len(exact) > 1:
		it.Action, it.Candidates = ActionConflict, ids(exact)
		it.Reason = fmt.Sprintf("%d %s hold this name: IDs %s", len(exact), what, joinIDs(it.Candidates))
	case len(folded) > 0:
		it.Action, it.Candidates = ActionConflict, ids(folded)
		var held []string
		for _, f := range folded {
			held = append(held, fmt.Sprintf("%q (ID %d)", strings.TrimSpace(nameOf(f)), idOf(f)))
		}
		it.Reason = fmt.Sprintf("%s: %s differ only in case, which the portal treats as the same name", what, strings.Join(held, ", "))
	default:
		it.Action = ActionCreate
		return it
	}
	if it.Action == ActionConflict {
		if policy != ConflictFirst {
			return it
		}
		if len(exact) > 0 {
			pick = exact[0]
		} else {
			pick = folded[0]
		}
		it.ID = idOf(pick)
		it.Reason += fmt.Sprintf("; --on-conflict first adopts %d", it.ID)
		return it
	}
	it.ID = idOf(pick)
	if it.Changes = compare(pick); len(it.Changes) > 0 {
		it.Action = ActionDiffers
	} else {
		it.Action = ActionExists
	}
	return it
}

func matchDepartment(d Department, parent int64, cands []ExistingDepartment, policy OnConflict) PlannedItem {
	exact, folded := match(d.Name, cands, func(e ExistingDepartment) string { return e.Name }, func(e ExistingDepartment) int64 { return e.ID })
	it := PlannedItem{Key: d.Key, Kind: "department", Name: d.Name}
	what := "departments under " + strconv.FormatInt(parent, 10)
	return decide(it, what, exact, folded, func(e ExistingDepartment) int64 { return e.ID }, func(e ExistingDepartment) string { return e.Name },
		func(e ExistingDepartment) []Change { return departmentChanges(d, e) }, policy)
}

// departmentChanges lists the fields the row gives with another value than e.
func departmentChanges(d Department, e ExistingDepartment) []Change {
	var ch []Change
	if d.Sort != 0 && d.Sort != e.Sort {
		ch = append(ch, Change{Field: "sort", From: strconv.Itoa(e.Sort), To: strconv.Itoa(d.Sort)})
	}
	if d.Head != 0 && d.Head != e.Head {
		ch = append(ch, Change{Field: "head", From: strconv.FormatInt(e.Head, 10), To: strconv.FormatInt(d.Head, 10)})
	}
	return ch
}

func matchWorkplace(w Workplace, cands []ExistingWorkplace, policy OnConflict) PlannedItem {
	exact, folded := match(w.Title, cands, func(e ExistingWorkplace) string { return e.Title }, func(e ExistingWorkplace) int64 { return e.ID })
	it := PlannedItem{Key: w.Key, Kind: "workplace", Name: w.Title}
	return decide(it, "workplaces", exact, folded, func(e ExistingWorkplace) int64 { return e.ID }, func(e ExistingWorkplace) string { return e.Title },
		func(e ExistingWorkplace) []Change { return workplaceChanges(w, e) }, policy)
}

// workplaceChanges lists the fields the row gives with another value than e.
func workplaceChanges(w Workplace, e ExistingWorkplace) []Change {
	if len(w.TypeIDs) == 0 || sameIDs(w.TypeIDs, e.TypeIDs) {
		return nil
	}
	return []Change{{Field: "type_ids", From: joinIDs(e.TypeIDs), To: joinIDs(w.TypeIDs)}}
}

// sameIDs compares two ID lists as sets.
func sameIDs(a, b []int64) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ", ")
}

// displayField names a Change's field as the portal calls it.
var displayField = map[string]string{"sort": "sort", "head": "head", "type_ids": "typeIds"}

// String renders a planned item for people:
//
//	exists    sales     "Sales" (ID 12)
//	differs   sales-eu  "Sales EU" (ID 13: sort 100 -> 200, head 7 -> 9)
//	conflict  ops       "Ops": 2 departments under 1 hold this name: IDs 14, 15
//	create    new       "New"
func (it PlannedItem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %s %q", it.Action, it.Key, it.Name)
	switch it.Action {
	case ActionExists:
		fmt.Fprintf(&b, " (ID %d)", it.ID)
	case ActionDiffers:
		ch := make([]string, len(it.Changes))
		for i, c := range it.Changes {
			ch[i] = fmt.Sprintf("%s %s -> %s", displayField[c.Field], c.From, c.To)
		}
		fmt.Fprintf(&b, " (ID %d: %s)", it.ID, strings.Join(ch, ", "))
	case ActionConflict:
		b.WriteString(": " + it.Reason)
	}
	return b.String()
}

// JSON renders f in the import file format of design.md (flat form: every
// department with its parent or parent_id), so that a validated file can
// travel to a worker that plans it.
func (f *File) JSON() ([]byte, error) {
	type dept struct {
		Key      string `json:"key"`
		Name     string `json:"name"`
		Parent   string `json:"parent,omitempty"`
		ParentID *int64 `json:"parent_id,omitempty"`
		Sort     int    `json:"sort,omitempty"`
		Head     int64  `json:"head,omitempty"`
	}
	type workplace struct {
		Key     string  `json:"key"`
		Title   string  `json:"title"`
		TypeIDs []int64 `json:"type_ids,omitempty"`
	}
	out := struct {
		Departments []dept      `json:"departments"`
		Workplaces  []workplace `json:"workplaces"`
	}{Departments: []dept{}, Workplaces: []workplace{}}
	for _, d := range f.Departments {
		out.Departments = append(out.Departments, dept{Key: d.Key, Name: d.Name, Parent: d.Parent, ParentID: d.ParentID, Sort: d.Sort, Head: d.Head})
	}
	for _, w := range f.Workplaces {
		out.Workplaces = append(out.Workplaces, workplace{Key: w.Key, Title: w.Title, TypeIDs: w.TypeIDs})
	}
	return json.Marshal(out)
}
