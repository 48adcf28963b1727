package importer

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	f, _, err := ParseFile("testdata/good/nested.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := f.Plan()
	want := Plan{Departments: 5, Workplaces: 1, Roots: 2, ByDepth: []int{2, 2, 1}, MaxDepth: 2}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Plan() = %+v, want %+v", p, want)
	}
	wantText := "5 departments, 1 workplaces\nroots (with parent_id): 2\ndepth 0: 2\ndepth 1: 2\ndepth 2: 1\nmax depth: 2"
	if p.String() != wantText {
		t.Errorf("String() =\n%s\nwant\n%s", p, wantText)
	}
	// Only workplaces: no depths.
	w := &File{Workplaces: []Workplace{{Key: "w", Title: "W"}}}
	if p := w.Plan(); p.Roots != 0 || p.ByDepth != nil || p.MaxDepth != 0 || p.Workplaces != 1 {
		t.Errorf("workplaces only: %+v", p)
	}
}

func TestPlanInvalidFileLeavesOutUnplaceable(t *testing.T) {
	t.Parallel()
	f := &File{Departments: []Department{
		{Key: "r", Name: "R", ParentID: ptr(1)},
		{Key: "a", Name: "A", Parent: "r"},
		{Key: "x", Name: "X", Parent: "y"}, // cycle x ↔ y
		{Key: "y", Name: "Y", Parent: "x"},
		{Key: "u", Name: "U", Parent: "nope"},
		{Key: "under-u", Name: "V", Parent: "u"},
		{Key: "n", Name: "N"}, // neither
	}}
	p := f.Plan()
	if p.Departments != 7 || !reflect.DeepEqual(p.ByDepth, []int{1, 1}) {
		t.Errorf("Plan() = %+v", p)
	}
	if o := f.Order(); len(o) != 2 || o[0].Key != "r" || o[1].Key != "a" {
		t.Errorf("Order() = %+v", o)
	}
}

// TestOrderParentsFirst shuffles random trees and checks that Order puts
// every parent before its children, is grouped by depth, and keeps file order
// within a depth.
func TestOrderParentsFirst(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := 1 + rng.IntN(300)
		f := &File{}
		for i := range n {
			d := Department{Key: "k" + strconv.Itoa(i), Name: "N" + strconv.Itoa(i), Line: i}
			if i == 0 || rng.IntN(10) == 0 {
				d.ParentID = ptr(1)
			} else {
				d.Parent = "k" + strconv.Itoa(rng.IntN(i))
			}
			f.Departments = append(f.Departments, d)
		}
		rng.Shuffle(n, func(i, j int) { f.Departments[i], f.Departments[j] = f.Departments[j], f.Departments[i] })
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		order := f.Order()
		if len(order) != n {
			t.Fatalf("round %d: %d of %d departments ordered", round, len(order), n)
		}
		pos := map[string]int{}
		filePos := map[string]int{}
		for i, d := range f.Departments {
			filePos[d.Key] = i
		}
		depth := map[string]int{}
		for i, d := range order {
			pos[d.Key] = i
			if d.Parent != "" {
				pp, ok := pos[d.Parent]
				if !ok {
					t.Fatalf("round %d: %s before its parent %s", round, d.Key, d.Parent)
				}
				depth[d.Key] = depth[order[pp].Key] + 1
			}
			if i > 0 {
				prev := order[i-1]
				if depth[prev.Key] > depth[d.Key] || (depth[prev.Key] == depth[d.Key] && filePos[prev.Key] > filePos[d.Key]) {
					t.Fatalf("round %d: %s (depth %d) before %s (depth %d): not stable by depth", round, prev.Key, depth[prev.Key], d.Key, depth[d.Key])
				}
			}
		}
	}
}

func TestRootsAndChildren(t *testing.T) {
	t.Parallel()
	f, _, err := ParseFile("testdata/good/nested.yaml")
	if err != nil {
		t.Fatal(err)
	}
	roots := f.Roots()
	if len(roots) != 2 || roots[0].Key != "sales" || roots[1].Key != "research-development" {
		t.Errorf("Roots() = %+v", roots)
	}
	ch := f.Children()
	keys := func(ds []Department) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Key)
		}
		return out
	}
	if got := keys(ch["sales"]); !reflect.DeepEqual(got, []string{"sales/eu", "us"}) {
		t.Errorf("children of sales: %v", got)
	}
	if got := keys(ch["sales/eu"]); !reflect.DeepEqual(got, []string{"sales/eu/germany"}) {
		t.Errorf("children of sales/eu: %v", got)
	}
	if len(ch) != 2 {
		t.Errorf("Children() has %d parents, want 2", len(ch))
	}
}
