package importer

import (
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFormatOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want Format
	}{
		{"org.json", JSON}, {"dir.v2/org.YAML", YAML}, {"org.yml", YAML}, {"/tmp/ORG.Csv", CSV},
		{"org.txt", 0}, {"org", 0}, {"json", 0}, {"org.json.bak", 0},
	}
	for _, tt := range tests {
		got, err := FormatOf(tt.name)
		if got != tt.want || (err != nil) != (tt.want == 0) {
			t.Errorf("FormatOf(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if JSON.String() != "json" || YAML.String() != "yaml" || CSV.String() != "csv" || Format(9).String() != "Format(9)" {
		t.Error("Format.String")
	}
}

func TestGoodFiles(t *testing.T) {
	t.Parallel()
	flat := []Department{
		{Key: "sales", Name: "Sales", ParentID: ptr(1), Sort: 100, Head: 7},
		{Key: "sales-eu", Name: "Sales EU", Parent: "sales"},
		{Key: "sales-eu-de", Name: "Sales Germany ä", Parent: "sales-eu", Sort: 20},
	}
	hr := []Workplace{{Key: "hr", Title: "HR", TypeIDs: []int64{1, 2}, Line: 0}}
	withLines := func(ds []Department, lines ...int) []Department {
		out := append([]Department(nil), ds...)
		for i := range out {
			out[i].Line = lines[i]
		}
		return out
	}
	wpLine := func(ws []Workplace, line int) []Workplace {
		out := append([]Workplace(nil), ws...)
		out[0].Line = line
		return out
	}
	tests := []struct {
		file string
		want File
	}{
		{"flat.json", File{Departments: withLines(flat, 3, 4, 5), Workplaces: wpLine(hr, 13)}},
		{"flat.yaml", File{Departments: withLines(flat, 3, 8, 9), Workplaces: wpLine(hr, 14)}},
		// CSV: BOM, header in another order and case, a blank row skipped; rows are lines.
		{"flat.csv", File{Departments: withLines(flat, 2, 3, 5)}},
		{"nested.yaml", File{
			Departments: []Department{
				{Key: "sales", Name: "Sales", ParentID: ptr(1), Line: 2},
				{Key: "sales/eu", Name: "EU", Parent: "sales", Line: 6},
				{Key: "sales/eu/germany", Name: "Germany", Parent: "sales/eu", Sort: 10, Line: 8},
				{Key: "us", Name: "US", Parent: "sales", Line: 10},
				{Key: "research-development", Name: "Research & Development", ParentID: ptr(1), Line: 12},
			},
			Workplaces: []Workplace{{Key: "human-resources", Title: "Human Resources", Line: 16}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			f, raw, err := ParseFile(filepath.Join("testdata", "good", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(raw) == 0 {
				t.Error("ParseFile returned no raw bytes")
			}
			if !reflect.DeepEqual(f.Departments, tt.want.Departments) {
				t.Errorf("departments\n got %+v\nwant %+v", f.Departments, tt.want.Departments)
			}
			if !reflect.DeepEqual(f.Workplaces, tt.want.Workplaces) {
				t.Errorf("workplaces\n got %+v\nwant %+v", f.Workplaces, tt.want.Workplaces)
			}
		})
	}
}

// TestLenientValues: numbers as text, numeric strings as integers, null and
// "" as absent, surrounding white space trimmed.
func TestLenientValues(t *testing.T) {
	t.Parallel()
	src := `{"departments": [
  {"key": 2024, "name": "  Year 2024 ", "parent_id": " 5 ", "sort": null, "head": ""},
  {"key": "b", "name": "B", "parent": "2024", "parent_id": null, "sort": "7"}
], "workplaces": [{"key": "w", "title": "W", "type_ids": null}]}`
	f, err := load(JSON, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Department{
		{Key: "2024", Name: "Year 2024", ParentID: ptr(5), Line: 2},
		{Key: "b", Name: "B", Parent: "2024", Sort: 7, Line: 3},
	}
	if !reflect.DeepEqual(f.Departments, want) {
		t.Errorf("got %+v", f.Departments)
	}
	// JSON is strict about booleans where text belongs.
	_, err = load(JSON, []byte(`{"departments": [{"key": true, "name": "A", "parent_id": 1}]}`))
	if probs := problems(t, err); len(probs) != 1 || !strings.Contains(probs[0].Message, "key must be text, not true") {
		t.Errorf("got %v", err)
	}
	// Integers out of int64 range are problems, not wrap-arounds.
	_, err = load(JSON, []byte(`{"departments": [{"key": "a", "name": "A", "parent_id": 99999999999999999999}]}`))
	if probs := problems(t, err); len(probs) != 1 || !strings.Contains(probs[0].Message, "out of range") {
		t.Errorf("got %v", err)
	}
}

func TestCSVSemicolonAndQuotes(t *testing.T) {
	t.Parallel()
	src := "key;name;parent_id\r\nrnd;\"R&D; Labs\";1\r\nq;\"Quoted \"\"name\"\"\";1\r\n"
	f, err := load(CSV, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Departments) != 2 || f.Departments[0].Name != "R&D; Labs" || f.Departments[1].Name != `Quoted "name"` || f.Departments[1].Line != 3 {
		t.Errorf("got %+v", f.Departments)
	}
	// A quoted cell spanning lines: rows are counted, not text lines.
	multi := "key,name,parent_id\na,\"two\nlines\",1\nb,B,x\n"
	_, err = load(CSV, []byte(multi))
	if probs := problems(t, err); len(probs) != 2 || probs[0].Line != 2 || probs[1].Line != 3 || !strings.Contains(probs[1].Message, `parent_id: "x"`) {
		t.Errorf("got %v", err)
	}
}

func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, format := range []Format{JSON, YAML, CSV} {
		raw := "key,name\n"
		if format != CSV {
			raw = "{\"departments\": [\n"
		}
		raw += "\n\n\xc3\x28 here\n"
		_, err := Parse(format, strings.NewReader(raw))
		if probs := problems(t, err); len(probs) != 1 || probs[0].Line != 4 || !strings.Contains(probs[0].Message, "invalid UTF-8") {
			t.Errorf("%v: got %v", format, err)
		}
	}
	// A binary file: the report is capped.
	bin := strings.Repeat("\xff\n", 1000)
	_, err := Parse(YAML, strings.NewReader(bin))
	if probs := problems(t, err); len(probs) != maxEncodingProblems+1 {
		t.Errorf("got %d problems", len(probs))
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	// A failing reader is an I/O error, not a ValidationError.
	_, err := Parse(JSON, iotest.ErrReader(io.ErrClosedPipe))
	var ve *ValidationError
	if !errors.Is(err, io.ErrClosedPipe) || errors.As(err, &ve) {
		t.Errorf("got %v", err)
	}
	if _, err := Parse(Format(0), strings.NewReader("{}")); err == nil || errors.As(err, &ve) {
		t.Errorf("unknown format: %v", err)
	}
	if _, _, err := ParseFile("testdata/good/flat.txt"); err == nil {
		t.Error("unknown extension accepted")
	}
	if _, _, err := ParseFile("testdata/good/missing.json"); err == nil || errors.As(err, &ve) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Sales EU":         "sales-eu",
		"R&D / Lab #2":     "r-d-lab-2",
		"Отдел продаж":     "отдел-продаж",
		"  --Edge--  ":     "edge",
		"!!!":              "",
		"":                 "",
		"Ünïcödé_Straße 9": "ünïcödé-straße-9",
	}
	for in, want := range tests {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDerivedKeyCollision: two children with the same name under different
// parents get different keys; the same name twice at the top collides and
// Validate says so.
func TestDerivedKeyCollision(t *testing.T) {
	t.Parallel()
	src := `departments:
  - name: EU
    parent_id: 1
    children: [{name: Sales}]
  - name: US
    parent_id: 1
    children: [{name: Sales}]
  - name: eu
    parent_id: 1
`
	_, err := load(YAML, []byte(src))
	probs := problems(t, err)
	if len(probs) != 1 || probs[0].Line != 8 || probs[0].Key != "eu" || !strings.Contains(probs[0].Message, "duplicate key (first used by the department at line 2)") {
		t.Errorf("got %v", err)
	}
}
