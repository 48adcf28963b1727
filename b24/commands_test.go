package b24

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// A create result is an ID exactly: an integer, a numeric string or a JSON
// number with an integral value. Truncating 7.5 to 7 would hang children
// under someone else's department.
func TestDecodeDepartmentAddIsStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`18`, 18, true}, {`"18"`, 18, true}, {`18.0`, 18, true}, {`"1.8e1"`, 18, true},
		{`7.5`, 0, false}, {`null`, 0, false}, {`""`, 0, false}, {`"x"`, 0, false}, {`{}`, 0, false},
		{`0`, 0, false}, {`-3`, 0, false}, {`true`, 0, false},
	}
	for _, tt := range tests {
		got, err := DecodeDepartmentAdd(json.RawMessage(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("DecodeDepartmentAdd(%s) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestDecodeAutomatedSolutionAdd(t *testing.T) {
	t.Parallel()
	got, err := DecodeAutomatedSolutionAdd(json.RawMessage(`{"automatedSolution":{"id":"4","title":"HR","typeIds":["1",2]}}`))
	if want := (AutomatedSolution{ID: 4, Title: "HR", TypeIDs: []int64{1, 2}}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{`{"automatedSolution":{"id":4.5}}`, `{"automatedSolution":null}`, `{}`, `[]`, `"x"`} {
		if _, err := DecodeAutomatedSolutionAdd(json.RawMessage(bad)); err == nil {
			t.Errorf("DecodeAutomatedSolutionAdd(%s) succeeded", bad)
		}
	}
}

// List results arrive as PHP arrays: a list, or an object keyed by index.
func TestDecodeDepartmentsPHPShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{`[{"ID":"2"},{"ID":"3"}]`, "[2 3]"},
		{`{"1":{"ID":"3"},"0":{"ID":"2"},"10":{"ID":"9"}}`, "[2 3 9]"},
		{`[]`, "[]"},
	}
	for _, tt := range tests {
		got, err := DecodeDepartments(json.RawMessage(tt.in))
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		ids := make([]int64, len(got))
		for i, d := range got {
			ids[i] = d.ID
		}
		if s := fmt.Sprint(ids); s != tt.want {
			t.Errorf("%s → %s, want %s", tt.in, s, tt.want)
		}
	}
	// A missing or null list is not an empty one: the lookup is retried.
	for _, bad := range []string{`"x"`, `null`, ``, ` null `} {
		if got, err := DecodeDepartments(json.RawMessage(bad)); err == nil {
			t.Errorf("DecodeDepartments(%q) = %v, want an error", bad, got)
		}
	}
}

func TestDecodeAutomatedSolutionsNullIsNotEmpty(t *testing.T) {
	t.Parallel()
	got, err := DecodeAutomatedSolutions(json.RawMessage(`{"automatedSolutions":[]}`))
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty list: %v, %v", got, err)
	}
	for _, bad := range []string{`{}`, `{"automatedSolutions":null}`, `null`, `[]`, `{"automatedSolutions":"x"}`} {
		if got, err := DecodeAutomatedSolutions(json.RawMessage(bad)); err == nil {
			t.Errorf("DecodeAutomatedSolutions(%s) = %v, want an error", bad, got)
		}
	}
}

// The batch commands carry the same parameters as the plain calls.
func TestCommandsMatchPlainCallParams(t *testing.T) {
	t.Parallel()
	d := DepartmentFields{Name: "Sales", Parent: 1, Sort: 100, Head: 7}
	if c := DepartmentAddCommand("c0", d); c.Key != "c0" || c.Method != MethodDepartmentAdd || !reflect.DeepEqual(c.Params, d.params()) {
		t.Errorf("department command %+v", c)
	}
	w := AutomatedSolutionFields{Title: "HR", TypeIDs: []int64{1}}
	if c := AutomatedSolutionAddCommand("c1", w); c.Method != MethodAutomatedSolutionAdd || !reflect.DeepEqual(c.Params, w.params()) {
		t.Errorf("workplace command %+v", c)
	}
	if c := AutomatedSolutionListCommand("c2", map[string]any{"title": "HR"}, 50); EncodeQuery(c.Params) != "filter[title]=HR&order[id]=ASC&start=50" {
		t.Errorf("list command query %q", EncodeQuery(c.Params))
	}
	// The portal reads the offset from lowercase start only.
	if c := DepartmentGetCommand("c3", map[string]any{"PARENT": 1}, 50); EncodeQuery(c.Params) != "PARENT=1&start=50" {
		t.Errorf("department.get command query %q", EncodeQuery(c.Params))
	}
	if c := DepartmentGetCommand("c4", map[string]any{"PARENT": 1}, 0); EncodeQuery(c.Params) != "PARENT=1" {
		t.Errorf("department.get command query %q", EncodeQuery(c.Params))
	}
}
