package b24

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestAddDepartmentOmitsZeroFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fields DepartmentFields
		want   string
	}{
		{"all", DepartmentFields{Name: "Отдел изучения маглов", Parent: 15, Sort: 450, Head: 1}, `{"NAME":"Отдел изучения маглов","PARENT":15,"SORT":450,"UF_HEAD":1}`},
		{"name and parent", DepartmentFields{Name: "Sales", Parent: 1}, `{"NAME":"Sales","PARENT":1}`},
		{"root", DepartmentFields{Name: "Company"}, `{"NAME":"Company"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			f.handle(t, "department.add", func(w http.ResponseWriter, body map[string]any) {
				jsonEqual(t, body, tt.want)
				reply(w, 200, readTestdata(t, "department.add.json"))
			})
			id, meta, err := f.client.AddDepartment(t.Context(), tt.fields)
			if err != nil || id != 18 || meta.Time.Operating != 0.1704881191253662 {
				t.Fatalf("id %d meta %+v err %v", id, meta, err)
			}
		})
	}
}

func TestAddDepartmentStringID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "department.add", func(w http.ResponseWriter, _ map[string]any) { reply(w, 200, `{"result":"18"}`) })
	if id, _, err := f.client.AddDepartment(t.Context(), DepartmentFields{Name: "S", Parent: 1}); err != nil || id != 18 {
		t.Fatalf("id %d err %v", id, err)
	}
}

func TestAddAutomatedSolution(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var bodies []string
	f.handle(t, "crm.automatedsolution.add", func(w http.ResponseWriter, body map[string]any) {
		b, _ := json.Marshal(body)
		bodies = append(bodies, string(b))
		reply(w, 200, readTestdata(t, "crm.automatedsolution.add.json"))
	})
	got, meta, err := f.client.AddAutomatedSolution(t.Context(), AutomatedSolutionFields{Title: "HR", TypeIDs: []int64{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (AutomatedSolution{ID: 1, Title: "HR", TypeIDs: []int64{1, 2, 3}}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if meta.Time.OperatingResetAt != 1715849996 {
		t.Errorf("meta %+v", meta)
	}
	if _, _, err := f.client.AddAutomatedSolution(t.Context(), AutomatedSolutionFields{Title: "HR"}); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"fields":{"title":"HR","typeIds":[1,2,3]}}`, `{"fields":{"title":"HR"}}`}
	if !reflect.DeepEqual(bodies, want) {
		t.Errorf("bodies %v, want %v", bodies, want)
	}
}

func TestAddAutomatedSolutionLimitExceeded(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "crm.automatedsolution.add", func(w http.ResponseWriter, _ map[string]any) {
		reply(w, 400, readTestdata(t, "errors/LIMIT_EXCEEDED.json"))
	})
	_, _, err := f.client.AddAutomatedSolution(t.Context(), AutomatedSolutionFields{Title: "HR"})
	if Classify(err) != Permanent || IsAmbiguous(err) {
		t.Fatalf("err %v: class %v", err, Classify(err))
	}
}

// departmentPortal serves department.get over n departments with IDs 1..n,
// 50 per page, the way the portal does: string values, LIKE on NAME, total
// and next.
func departmentPortal(t *testing.T, f *fixture, deps []map[string]string) *[]map[string]any {
	var reqs []map[string]any
	f.handle(t, "department.get", func(w http.ResponseWriter, body map[string]any) {
		reqs = append(reqs, body)
		var match []map[string]string
		for _, d := range deps {
			if n, ok := body["NAME"].(string); ok && !strings.Contains(strings.ToLower(d["NAME"]), strings.ToLower(n)) {
				continue
			}
			if p, ok := body["PARENT"].(float64); ok && d["PARENT"] != fmt.Sprint(p) {
				continue
			}
			match = append(match, d)
		}
		start := 0
		if s, ok := body["START"].(float64); ok {
			start = int(s)
		}
		end := min(start+pageSize, len(match))
		ans := map[string]any{"result": match[start:end], "total": len(match),
			"time": map[string]any{"start": 1736927311.5, "operating": 0.01}}
		if end < len(match) {
			ans["next"] = end
		}
		b, _ := json.Marshal(ans)
		reply(w, 200, string(b))
	})
	return &reqs
}

func TestGetDepartmentsPages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	deps := []map[string]string{{"ID": "1", "NAME": "Company", "SORT": "500", "UF_HEAD": "1"}}
	for i := 2; i <= 120; i++ {
		deps = append(deps, map[string]string{"ID": fmt.Sprint(i), "NAME": fmt.Sprint("Dept ", i), "SORT": "500", "PARENT": "1", "UF_HEAD": ""})
	}
	reqs := departmentPortal(t, f, deps)
	got, err := f.client.GetDepartments(t.Context(), map[string]any{"PARENT": 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 119 || got[0] != (Department{ID: 2, Parent: 1, Name: "Dept 2", Sort: 500}) || got[118].ID != 120 {
		t.Errorf("got %d departments, first %+v", len(got), got[0])
	}
	var starts []any
	for _, r := range *reqs {
		starts = append(starts, r["START"])
		if r["PARENT"] != float64(1) {
			t.Errorf("filter lost: %v", r)
		}
	}
	if want := []any{nil, float64(50), float64(100)}; !reflect.DeepEqual(starts, want) {
		t.Errorf("START sent %v, want %v", starts, want)
	}
	if n := len(f.observed()); n != 3 {
		t.Errorf("observer told %d times, want one per page", n)
	}

	all, err := f.client.GetDepartments(t.Context(), nil)
	if err != nil || len(all) != 120 || all[0] != (Department{ID: 1, Name: "Company", Sort: 500, Head: 1}) {
		t.Errorf("all: %d %v, first %+v", len(all), err, all[0])
	}
}

func TestFindDepartmentComparesExactly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	deps := []map[string]string{
		{"ID": "1", "NAME": "Company"},
		{"ID": "5", "NAME": "sales", "PARENT": "1"},
		{"ID": "6", "NAME": "Sales EU", "PARENT": "1"},
		{"ID": "9", "NAME": "Sales", "PARENT": "1"},
		{"ID": "7", "NAME": "Sales", "PARENT": "1"},
		{"ID": "8", "NAME": "Sales", "PARENT": "3"},
	}
	reqs := departmentPortal(t, f, deps)
	tests := []struct {
		name   string
		parent int64
		wantID int64 // 0 = not found
	}{
		{"Sales", 1, 7},
		{"Sales", 3, 8},
		{"sales", 1, 5},
		{"Sales E", 1, 0},
		{"SALES", 1, 0},
		{"Company", 0, 1},
		{"Sales", 0, 0},
	}
	for _, tt := range tests {
		d, ok, err := f.client.FindDepartment(t.Context(), tt.name, tt.parent)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (tt.wantID != 0) || d.ID != tt.wantID {
			t.Errorf("FindDepartment(%q, %d) = %+v %v, want ID %d", tt.name, tt.parent, d, ok, tt.wantID)
		}
	}
	first := (*reqs)[0]
	if !reflect.DeepEqual(first, map[string]any{"NAME": "Sales", "PARENT": float64(1)}) {
		t.Errorf("request %v, want NAME and PARENT", first)
	}
	if root := (*reqs)[5]; !reflect.DeepEqual(root, map[string]any{"NAME": "Company"}) {
		t.Errorf("root request %v, want NAME only", root)
	}
}

func TestListAndFindAutomatedSolutions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var all []map[string]any
	for i := 1; i <= 60; i++ {
		all = append(all, map[string]any{"id": i, "title": fmt.Sprint("WP ", i), "typeIds": []int{i}})
	}
	all = append(all, map[string]any{"id": 61, "title": "hr", "typeIds": []int{}}, map[string]any{"id": 62, "title": "HR", "typeIds": []int{1, 2}})
	var starts []any
	f.handle(t, "crm.automatedsolution.list", func(w http.ResponseWriter, body map[string]any) {
		starts = append(starts, body["start"])
		if !reflect.DeepEqual(body["order"], map[string]any{"id": "ASC"}) {
			t.Errorf("order %v", body["order"])
		}
		match := all
		if filter, ok := body["filter"].(map[string]any); ok {
			match = nil
			for _, s := range all {
				// Case-insensitive on purpose: the client must compare itself.
				if strings.EqualFold(s["title"].(string), filter["title"].(string)) {
					match = append(match, s)
				}
			}
		}
		start := 0
		if s, ok := body["start"].(float64); ok {
			start = int(s)
		}
		end := min(start+pageSize, len(match))
		ans := map[string]any{"result": map[string]any{"automatedSolutions": match[start:end]}, "total": len(match)}
		if end < len(match) {
			ans["next"] = end
		}
		b, _ := json.Marshal(ans)
		reply(w, 200, string(b))
	})
	list, err := f.client.ListAutomatedSolutions(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 62 || !reflect.DeepEqual(list[0], AutomatedSolution{ID: 1, Title: "WP 1", TypeIDs: []int64{1}}) {
		t.Errorf("%d solutions, first %+v", len(list), list[0])
	}
	if want := []any{nil, float64(50)}; !reflect.DeepEqual(starts, want) {
		t.Errorf("start sent %v, want %v", starts, want)
	}
	got, ok, err := f.client.FindAutomatedSolution(t.Context(), "HR")
	if err != nil || !ok || !reflect.DeepEqual(got, AutomatedSolution{ID: 62, Title: "HR", TypeIDs: []int64{1, 2}}) {
		t.Errorf("Find HR = %+v %v %v", got, ok, err)
	}
	if _, ok, err := f.client.FindAutomatedSolution(t.Context(), "Hr"); ok || err != nil {
		t.Errorf("Find Hr found %v, %v", ok, err)
	}
}

func TestPagingStopsOnNonAdvancingNext(t *testing.T) {
	t.Parallel()
	f := setup(t)
	calls := 0
	f.handle(t, "department.get", func(w http.ResponseWriter, _ map[string]any) {
		calls++
		reply(w, 200, `{"result":[{"ID":"1","NAME":"A"}],"total":100,"next":0}`)
	})
	if _, err := f.client.GetDepartments(t.Context(), nil); err != nil || calls != 1 {
		t.Errorf("calls %d err %v", calls, err)
	}
}
