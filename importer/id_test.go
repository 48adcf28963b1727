package importer

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

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

func TestValidateID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"imp-0123456789abcdef", true},
		{ID([]byte("departments: []")), true},
		{genTree(3, 1).ID() + "-acme", true},
		{"org_2024.v2", true},
		{"", false},
		{"-lead", false},
		{"a:b", false},
		{"a{b}", false},
		{"a b", false},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
	} {
		err := ValidateID(tt.id)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidID)) {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}
