package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzLimits keep each fuzz input cheap.
var fuzzLimits = Limits{MaxBytes: 1 << 20, MaxRows: 2_000, MaxDepth: 1_000}

func seed(f *testing.F, exts ...string) {
	for _, dir := range []string{"testdata/good", "testdata/bad", "../examples"} {
		for _, ext := range exts {
			paths, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
			for _, p := range paths {
				b, err := os.ReadFile(p)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
	}
}

// checkParse is the property every parser must have: no panic (also none
// turned into an "internal error" by ParseBytes' recover), only
// *ValidationError errors, and for a valid file an Order that holds every
// department, each after its parent.
func checkParse(t *testing.T, format Format, data []byte) {
	file, err := fuzzLimits.ParseBytes(format, data)
	if err == nil {
		err = file.Validate()
		_ = file.Plan().String()
		_ = file.ID()
		if err == nil {
			order := file.Order()
			if len(order) != len(file.Departments) {
				t.Fatalf("valid file: Order has %d of %d departments", len(order), len(file.Departments))
			}
			done := map[string]bool{}
			for _, d := range order {
				if d.Parent != "" && !done[d.Parent] {
					t.Fatalf("valid file: %q ordered before its parent %q", d.Key, d.Parent)
				}
				done[d.Key] = true
			}
		}
	}
	if err == nil {
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) == 0 {
		t.Fatalf("error %v (%T) is not a *ValidationError with problems", err, err)
	}
	for _, p := range ve.Problems {
		if strings.HasPrefix(p.Message, "cannot parse ") {
			t.Fatalf("parser panicked: %s", p.Message)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	seed(f, ".json")
	f.Add([]byte(`{"departments":[{"name":"a","parent_id":1,"children":[{"name":"b"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, JSON, data) })
}

func FuzzParseYAML(f *testing.F) {
	seed(f, ".yaml", ".yml", ".json")
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, YAML, data) })
}

func FuzzParseCSV(f *testing.F) {
	seed(f, ".csv")
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, CSV, data) })
}
