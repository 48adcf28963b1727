package importer

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadFiles holds one file per validation rule. Each must produce exactly
// one problem (no cascades), at the given line, containing the substring.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		line int
		want string
	}{
		{"empty_name.yaml", 2, `department "sales": name is empty`},
		{"empty_title.json", 3, `workplace "hr": title is empty`},
		{"long_name.json", 2, "name is 256 characters long; the limit is 255"},
		{"control_char.json", 2, "name contains the control character U+0007"},
		{"control_char_key.yaml", 2, `department "sa\tles": key contains the control character U+0009`},
		{"control_char_raw.csv", 2, "name contains the control character U+0001"},
		{"control_char_raw.yaml", 3, "YAML syntax: control characters are not allowed"},
		{"invalid_utf8.csv", 3, "invalid UTF-8"},
		{"empty_key.csv", 3, "key is empty"},
		{"empty_key.json", 2, "key is empty"},
		{"duplicate_key.yaml", 6, `workplace "hr": duplicate key (first used by the department at line 2)`},
		{"unknown_parent.yaml", 5, `department "sales-eu": unknown parent "salez"`},
		{"parent_is_workplace.yaml", 2, `parent "hr" is a workplace (line 6), not a department`},
		{"both_parents.json", 3, `has both parent "sales" and parent_id 5`},
		{"neither_parent.yaml", 2, "has neither parent nor parent_id"},
		{"negative_parent_id.json", 2, "parent_id must be a positive integer (an existing department's ID), not -3"},
		{"zero_parent_id.yaml", 5, `department "other": parent_id 0: every Bitrix24 portal already has its root department`},
		{"sibling_duplicate.yaml", 5, `department "sales-2": same name as department sales at line 2 under the same parent (parent_id 1)`},
		{"duplicate_title.json", 4, `workplace "hr-2": same title as workplace hr at line 2: the portal compares titles case-insensitively`},
		{"non_numeric_parent_id.json", 3, `parent_id: "abc" is not an integer`},
		{"non_numeric_sort.csv", 3, `department "eu": sort: "ten" is not an integer`},
		{"non_numeric_head.yaml", 5, `head: "boss" is not an integer`},
		{"float_type_ids.json", 2, `type_ids: "2.5" is not an integer`},
		{"bool_parent_id.yaml", 4, "parent_id must be an integer, not true"},
		{"negative_head.json", 2, "head must be a user ID"},
		{"zero_type_id.yaml", 2, "type_ids: 0 is not a positive integer"},
		{"unknown_field.json", 3, `department "eu": unknown field "parnet"`},
		{"unknown_top_field.yaml", 3, `unknown field "department"`},
		{"duplicate_field.yaml", 5, `field "name" given twice (first at line 3)`},
		{"unknown_column.csv", 1, `unknown column "manager"`},
		{"duplicate_column.csv", 1, `column "name" given twice (columns 2 and 4)`},
		{"missing_column.csv", 1, `missing column "name"`},
		{"short_row.csv", 3, "has 2 cells, the header has 4"},
		{"cycle.yaml", 5, `department "b": cycle: b → c → a → b`},
		{"self_parent.json", 2, "cycle: x → x"},
		{"empty.yaml", 0, "the file has no departments and no workplaces"},
		{"empty_lists.json", 0, "the file has no departments and no workplaces"},
		{"syntax.json", 3, "JSON syntax: invalid character '{' after array element"},
		{"syntax.yaml", 4, "YAML syntax: did not find expected '-' indicator"},
		{"syntax.csv", 3, `CSV syntax: bare " in non-quoted-field`},
		{"trailing_data.json", 2, "unexpected data after the end of the top-level value"},
		{"unclosed.json", 3, "unexpected end of input (unclosed [ from line 1)"},
		{"multi_doc.yaml", 3, "more than one YAML document"},
		{"top_level_list.json", 1, `must be a mapping with "departments" and "workplaces", not a list`},
		{"nested_with_parent.yaml", 6, `department "eu": is nested under "sales" and must not set parent or parent_id`},
		{"children_not_list.yaml", 5, "children must be a list, not a mapping"},
		{"name_list.yaml", 3, `department "sales": name must be text, not a list`},
		{"alias.yaml", 6, "name must be text, not a YAML alias"},
		{"underivable_key.yaml", 2, `none can be derived from name "!!!"`},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			f, _, err := ParseFile(filepath.Join("testdata", "bad", tt.file))
			if err == nil {
				err = f.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			probs := problems(t, err)
			if len(probs) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(probs), err)
			}
			p := probs[0]
			if p.Line != tt.line || !strings.Contains(p.String(), tt.want) {
				t.Errorf("problem %q at line %d, want line %d containing %q", p.String(), p.Line, tt.line, tt.want)
			}
		})
	}
	// Every file in testdata/bad is in the table: a new file without an
	// expectation would otherwise test nothing.
	paths, err := filepath.Glob("testdata/bad/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if !seen[filepath.Base(p)] {
			t.Errorf("%s has no entry in the table", p)
		}
	}
}

// TestValidateReportsEveryProblem checks that Validate does not stop at the
// first problem and orders problems by line.
func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	src := `departments:
  - {key: a, name: A, parent_id: 1}
  - {key: a, name: "", parent: zz}
  - {key: b, name: B, parent_id: x}
  - {key: c, name: C, parent: a, parnet: a}
  - {key: d, name: D, parent: e}
  - {key: e, name: E, parent: d}
workplaces:
  - {key: w, title: "  ", type_ids: [1, "two"]}
`
	_, err := load(YAML, []byte(src))
	probs := problems(t, err)
	want := []struct {
		line int
		msg  string
	}{
		{3, "duplicate key"},
		{3, "name is empty"},
		{3, `unknown parent "zz"`},
		{4, `parent_id: "x" is not an integer`},
		{5, `unknown field "parnet"`},
		{6, "cycle: d → e → d"},
		{9, `type_ids: "two" is not an integer`},
		{9, "title is empty"},
	}
	if len(probs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(probs), len(want), err)
	}
	for _, w := range want {
		found := false
		for _, p := range probs {
			if p.Line == w.line && strings.Contains(p.Message, w.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem at line %d containing %q in:\n%v", w.line, w.msg, err)
		}
	}
	for i := 1; i < len(probs); i++ {
		if probs[i].Line < probs[i-1].Line {
			t.Errorf("problems not ordered by line: %v before %v", probs[i-1], probs[i])
		}
	}
	// Error() lists them all, one per line after the heading.
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want)+1 || !strings.Contains(lines[0], "8 problems") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestProblemString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Line: 12, Kind: "department", Key: "sales-eu", Message: `unknown parent "salez"`}, `line 12: department "sales-eu": unknown parent "salez"`},
		{Problem{Message: "the file has no departments and no workplaces"}, "the file has no departments and no workplaces"},
		{Problem{Line: 1, Message: `unknown column "x"`}, `line 1: unknown column "x"`},
		{Problem{Line: 3, Kind: "department", Message: "key is empty"}, "line 3: department: key is empty"},
		{Problem{Line: 3, Kind: "workplace", Key: "a\x1b[31m\xff", Message: "m"}, `line 3: workplace "a\x1b[31m\xff": m`},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	one := &ValidationError{Problems: []Problem{tests[0].p}}
	if got := one.Error(); got != "invalid import file: "+tests[0].want {
		t.Errorf("Error() = %q", got)
	}
}

// TestValidateHandBuilt covers rules that parsed files cannot reach
// (Parse trims and checks encoding) but hand-built Files can.
func TestValidateHandBuilt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    Department
		want string
	}{
		{"invalid UTF-8 name", Department{Key: "a", Name: "bad \xff", ParentID: ptr(1)}, "name is not valid UTF-8"},
		{"invalid UTF-8 key", Department{Key: "a\xffb", Name: "A", ParentID: ptr(1)}, "key is not valid UTF-8"},
		{"newline in name", Department{Key: "a", Name: "A\nB", ParentID: ptr(1)}, "control character U+000A"},
		{"blank name", Department{Key: "a", Name: " \t ", ParentID: ptr(1)}, "name is empty"},
		{"long key", Department{Key: strings.Repeat("k", 256), Name: "A", ParentID: ptr(1)}, "key is 256 characters long"},
		{"negative sort", Department{Key: "a", Name: "A", ParentID: ptr(1), Sort: -1}, "sort must be 0 or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.d.Line = 7
			err := (&File{Departments: []Department{tt.d}}).Validate()
			probs := problems(t, err)
			if len(probs) != 1 || probs[0].Line != 7 || !strings.Contains(probs[0].Message, tt.want) {
				t.Errorf("got %v, want one problem at line 7 containing %q", err, tt.want)
			}
		})
	}
	// 255 characters of a 2-byte script are fine: the limit counts characters.
	ok := &File{Departments: []Department{{Key: "a", Name: strings.Repeat("ж", 255), ParentID: ptr(1)}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("255 Cyrillic characters: %v", err)
	}
}

func TestHugeNames(t *testing.T) {
	t.Parallel()
	name := strings.Repeat("N", 10_000)
	src := `{"departments": [{"key": "a", "name": "` + name + `", "parent_id": 1}],
"workplaces": [{"key": "w", "title": "` + name + `"}]}`
	_, err := load(JSON, []byte(src))
	probs := problems(t, err)
	if len(probs) != 2 || !strings.Contains(probs[0].Message, "10000 characters long") || !strings.Contains(probs[1].Message, "title is 10000 characters long") {
		t.Errorf("got %v", err)
	}
	// The message does not repeat the 10,000 characters.
	if len(err.Error()) > 500 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
}

// TestOneMegabyteLine: a minified JSON file of more than 1 MB on one line
// parses, and a problem in it is reported on line 1.
func TestOneMegabyteLine(t *testing.T) {
	t.Parallel()
	// Long names keep the token count (the parse cost) low.
	pad := strings.Repeat("x", 200)
	raw := []byte(strings.ReplaceAll(strings.ReplaceAll(string(genJSON(5_000, 4)), "\n", ""), `", "parent`, pad+`", "parent`))
	if len(raw) < 1<<20 {
		t.Fatalf("test input is only %d bytes", len(raw))
	}
	f, err := load(JSON, raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Departments) != 5_000 || f.Departments[4_999].Line != 1 {
		t.Errorf("got %d departments, last at line %d", len(f.Departments), f.Departments[4_999].Line)
	}
	bad := []byte(strings.Replace(string(raw), `"parent": "d7"`, `"parent": "nope"`, 1))
	_, err = load(JSON, bad)
	if probs := problems(t, err); len(probs) != 1 || probs[0].Line != 1 || !strings.Contains(probs[0].Message, `unknown parent "nope"`) {
		t.Errorf("got %v", err)
	}
	// A single 1 MB name on one line: one clear problem, not a crash.
	huge := `{"departments": [{"key": "a", "name": "` + strings.Repeat("x", 1<<20) + `", "parent_id": 1}]}`
	_, err = load(JSON, []byte(huge))
	if probs := problems(t, err); len(probs) != 1 || !strings.Contains(probs[0].Message, "1048576 characters long") {
		t.Errorf("got %d problems", len(probs))
	}
}

func TestDeepChain(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{1_000, 20_000} {
		f := genTree(depth, 1)
		if err := f.Validate(); err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		p := f.Plan()
		if p.MaxDepth != depth-1 || len(p.ByDepth) != depth || p.Roots != 1 {
			t.Errorf("depth %d: plan %+v", depth, p.MaxDepth)
		}
		if o := f.Order(); len(o) != depth || o[depth-1].Key != f.Departments[depth-1].Key {
			t.Errorf("depth %d: order wrong", depth)
		}
	}
	// A 1,000-long cycle is one problem naming all members.
	f := genTree(1_000, 1)
	f.Departments[0].ParentID = nil
	f.Departments[0].Parent = "d999"
	probs := problems(t, f.Validate())
	if len(probs) != 1 || !strings.HasPrefix(probs[0].Message, "cycle: d0 → d999 → d998") || !strings.Contains(probs[0].Message, "d1 → d0 (") {
		t.Errorf("got %d problems: %.200s", len(probs), probs[0].Message)
	}
}

// TestDeepNesting: nested form 1,000 levels deep, in JSON and YAML.
func TestDeepNesting(t *testing.T) {
	t.Parallel()
	const depth = 1_000
	raw := nestedJSON(depth)
	for _, format := range []Format{JSON, YAML} { // JSON is valid flow YAML
		f, err := load(format, raw)
		if err != nil {
			t.Fatalf("%v: %v", format, err)
		}
		if len(f.Departments) != depth || f.Plan().MaxDepth != depth-1 {
			t.Fatalf("%v: %d departments, max depth %d", format, len(f.Departments), f.Plan().MaxDepth)
		}
		// Derived keys are paths until they would pass 255 characters, then
		// a hash of the path keeps them short and distinct.
		if k := f.Departments[3].Key; k != "l0/l1/l2/l3" {
			t.Errorf("%v: key %q", format, k)
		}
		last := f.Departments[depth-1]
		if !strings.HasPrefix(last.Key, "~") || !strings.HasSuffix(last.Key, "/l998/l999") || last.Line != depth {
			t.Errorf("%v: last key %.40s... at line %d", format, last.Key, last.Line)
		}
		for _, d := range f.Departments {
			if len(d.Key) > MaxNameLen {
				t.Fatalf("%v: key of %d bytes", format, len(d.Key))
			}
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	small := Limits{MaxBytes: 1 << 10, MaxRows: 3, MaxDepth: 6}
	tests := []struct {
		name   string
		format Format
		raw    []byte
		line   int
		want   string
	}{
		{"bytes", JSON, genJSON(100, 2), 0, "larger than the limit of 1 KiB"},
		{"rows json", JSON, genJSON(4, 2), 5, "too many rows: the limit is 3"},
		{"rows yaml", YAML, genYAML(5, 2), 5, "too many rows: the limit is 3"},
		{"rows csv", CSV, genCSV(5, 2), 5, "too many rows: the limit is 3"},
		{"depth json", JSON, nestedJSON(3), 3, "nesting deeper than the limit of 6 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := small.ParseBytes(tt.format, tt.raw)
			probs := problems(t, err)
			if len(probs) != 1 || probs[0].Line != tt.line || !strings.Contains(probs[0].Message, tt.want) {
				t.Errorf("got %v, want line %d %q", err, tt.line, tt.want)
			}
		})
	}
	// Through a reader, the size limit stops reading.
	_, err := small.Parse(JSON, strings.NewReader(strings.Repeat(" ", 1<<20)))
	if probs := problems(t, err); !strings.Contains(probs[0].Message, "larger than") {
		t.Errorf("got %v", err)
	}
	// MaxBytes itself is accepted.
	if _, err := small.Parse(JSON, strings.NewReader(`{}`+strings.Repeat(" ", 1<<10-2))); err != nil {
		t.Errorf("file of exactly MaxBytes: %v", err)
	}
}

// TestValidate10kUnderOneSecond asserts the performance requirement
// with a wide margin (it takes milliseconds; the race detector slows it ~10×).
func TestValidate10kUnderOneSecond(t *testing.T) {
	t.Parallel()
	budget := time.Second
	if raceEnabled {
		budget *= 10 // the race detector slows this code ~10-20×
	}
	raw := genJSON(10_000, 5)
	start := time.Now()
	f, err := load(JSON, raw)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > budget {
		t.Errorf("parse+validate of 10,000 JSON departments took %v", el)
	}
	start = time.Now()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	_ = f.Order()
	if el := time.Since(start); el > budget {
		t.Errorf("validate+order of 10,000 departments took %v", el)
	}
}

func Test100kRows(t *testing.T) {
	if testing.Short() {
		t.Skip("100k rows: skipped with -short")
	}
	t.Parallel()
	type input struct {
		format Format
		raw    []byte
	}
	inputs := []input{{CSV, genCSV(100_000, 7)}}
	if !raceEnabled {
		// ~1 s each normally, ~25 s each under the race detector: there the
		// CSV run covers Validate, Plan and Order at this size.
		inputs = append(inputs, input{JSON, genJSON(100_000, 7)}, input{YAML, genYAML(100_000, 7)})
	}
	for _, tt := range inputs {
		start := time.Now()
		f, err := load(tt.format, tt.raw)
		if err != nil {
			t.Fatalf("%v: %v", tt.format, err)
		}
		if p := f.Plan(); p.Departments != 100_000 || p.Roots != 1 {
			t.Errorf("%v: plan %+v", tt.format, p)
		}
		t.Logf("%v: %d bytes parsed and validated in %v", tt.format, len(tt.raw), time.Since(start))
	}
}

func BenchmarkValidate10k(b *testing.B) {
	f := genTree(10_000, 5)
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseValidate10k(b *testing.B) {
	for _, tt := range []struct {
		format Format
		raw    []byte
	}{{JSON, genJSON(10_000, 5)}, {YAML, genYAML(10_000, 5)}, {CSV, genCSV(10_000, 5)}} {
		b.Run(tt.format.String(), func(b *testing.B) {
			b.SetBytes(int64(len(tt.raw)))
			for b.Loop() {
				if _, err := load(tt.format, tt.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestExamples: the sample files shipped in examples/ are valid.
func TestExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path                    string
		departments, workplaces int
		maxDepth, roots         int
	}{
		{"../examples/org.yaml", 40, 3, 3, 5},
		{"../examples/org.csv", 10, 0, 2, 1},
	}
	for _, tt := range tests {
		f, _, err := ParseFile(tt.path)
		if err == nil {
			err = f.Validate()
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		p := f.Plan()
		if p.Departments != tt.departments || p.Workplaces != tt.workplaces || p.MaxDepth != tt.maxDepth || p.Roots != tt.roots {
			t.Errorf("%s: plan\n%s", tt.path, p)
		}
		for _, d := range f.Roots() {
			if *d.ParentID != 1 {
				t.Errorf("%s: root %s has parent_id %d, want 1", tt.path, d.Key, *d.ParentID)
			}
		}
	}
}

// TestSharedRules: the rules single tasks share with import rows
// (tasks.DepartmentPayload.Validate calls them) say the same as Validate.
func TestSharedRules(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"Sales", ""},
		{"  ", "name is empty"},
		{"Sales\x07", "name contains the control character U+0007; remove it"},
		{"Sales\u0085", "name contains the control character U+0085; remove it"},
		{"Caf\xe9", "name is not valid UTF-8"}, // Latin-1 é
		{strings.Repeat("я", MaxNameLen), ""},
		{strings.Repeat("я", MaxNameLen+1), "name is 256 characters long; the limit is 255"},
	} {
		if got := TextProblem("name", tt.in); got != tt.want {
			t.Errorf("TextProblem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := TrimName(" \t Sales EU \n"); got != "Sales EU" {
		t.Errorf("TrimName = %q", got)
	}
	for id, want := range map[int64]string{1: "", 12: "", 0: "every Bitrix24 portal already has its root department", -3: "not -3"} {
		if got := ParentIDProblem(id); (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("ParentIDProblem(%d) = %q, want %q", id, got, want)
		}
	}
	if !SameName(" Sales ", "sALES") || SameName("Sales", "Sales EU") {
		t.Error("SameName compares trimmed names case-insensitively")
	}
}

// TestSiblingDuplicates: the same name under the same parent is refused
// wherever the rows are (nested or flat), naming both rows; the same name
// under different parents, or as a department and a workplace, is fine.
func TestSiblingDuplicates(t *testing.T) {
	t.Parallel()
	src := `departments:
  - key: sales
    name: Sales
    parent_id: 1
    children:
      - {key: eu, name: EU}
      - {key: eu-again, name: eu}
  - {key: ops, name: Operations, parent_id: 1}
  - {key: ops-eu, name: EU, parent: ops}
  - {key: ops-2, name: OPERATIONS, parent_id: 1}
workplaces:
  - {key: w-sales, title: Sales}
`
	_, err := load(YAML, []byte(src))
	probs := problems(t, err)
	want := []string{
		`line 7: department "eu-again": same name as department eu at line 6 under the same parent (parent sales)`,
		`line 10: department "ops-2": same name as department ops at line 8 under the same parent (parent_id 1)`,
	}
	if len(probs) != len(want) {
		t.Fatalf("got %v, want %d problems", err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(probs[i].String(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, probs[i], w)
		}
	}
}
