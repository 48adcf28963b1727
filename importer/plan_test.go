package importer

import (
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
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
			d := Department{Key: "k" + strconv.Itoa(i), Name: "N", Line: i}
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

var idRE = regexp.MustCompile(`^imp-[0-9a-f]{16}$`)

func TestID(t *testing.T) {
	t.Parallel()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	jsonRaw, yamlRaw := read("testdata/good/flat.json"), read("testdata/good/flat.yaml")

	// Raw ID: same bytes, same ID; any byte changes it.
	if ID(jsonRaw) != ID(append([]byte(nil), jsonRaw...)) || !idRE.MatchString(ID(jsonRaw)) {
		t.Errorf("ID(raw) = %q", ID(jsonRaw))
	}
	if ID(jsonRaw) == ID(append(jsonRaw, ' ')) {
		t.Error("raw ID ignores a trailing space")
	}

	// Content ID: the same structure in JSON and YAML (different bytes,
	// comments, derived vs explicit keys) has one ID; a change of any value
	// gives another.
	fj, err := load(JSON, jsonRaw)
	if err != nil {
		t.Fatal(err)
	}
	fy, err := load(YAML, yamlRaw)
	if err != nil {
		t.Fatal(err)
	}
	if fj.ID() != fy.ID() || !idRE.MatchString(fj.ID()) {
		t.Errorf("JSON ID %s != YAML ID %s", fj.ID(), fy.ID())
	}
	if again, _ := load(JSON, jsonRaw); again.ID() != fj.ID() {
		t.Error("content ID not stable")
	}
	base := fj.ID()
	mutations := map[string]func(f *File){
		"name":      func(f *File) { f.Departments[1].Name += "x" },
		"key":       func(f *File) { f.Departments[1].Key += "x" },
		"parent":    func(f *File) { f.Departments[2].Parent = "sales" },
		"parent_id": func(f *File) { *f.Departments[0].ParentID = 2 },
		"parent_id nil": func(f *File) {
			f.Departments[0].ParentID = nil
		},
		"sort":      func(f *File) { f.Departments[0].Sort++ },
		"head":      func(f *File) { f.Departments[0].Head++ },
		"title":     func(f *File) { f.Workplaces[0].Title = "HR2" },
		"type_ids":  func(f *File) { f.Workplaces[0].TypeIDs = []int64{1, 2, 3} },
		"order":     func(f *File) { f.Departments[1], f.Departments[2] = f.Departments[2], f.Departments[1] },
		"no wp":     func(f *File) { f.Workplaces = nil },
		"split ids": func(f *File) { f.Workplaces[0].TypeIDs = []int64{12} },
		"field shift": func(f *File) {
			// "Sales"+"" vs "Sale"+"s": length prefixes keep fields apart.
			f.Departments[0].Name, f.Departments[0].Parent = "Sale", "s"
		},
	}
	seen := map[string]string{base: "base"}
	for name, mutate := range mutations {
		g, _ := load(JSON, jsonRaw)
		mutate(g)
		id := g.ID()
		if prev, dup := seen[id]; dup {
			t.Errorf("mutation %q gives the same ID as %q", name, prev)
		}
		seen[id] = name
	}
	// Lines do not count.
	g, _ := load(JSON, jsonRaw)
	g.Departments[0].Line = 99
	if g.ID() != base {
		t.Error("content ID depends on line numbers")
	}
}
