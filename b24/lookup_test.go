package b24

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
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

// likePattern compiles a department.get NAME filter the way the portal
// applies it: SQL LIKE on the whole value, case-insensitive, with % (any
// run) and _ (any one character) as wildcards and no implied %.
func likePattern(name string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?is)^`)
	for _, r := range name {
		switch r {
		case '%':
			b.WriteString(`.*`)
		case '_':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// pageAt returns the page of match at start as the portal does: 50 items,
// the offset read from lowercase start only, an offset past the end giving
// page 1 again; next only when more items follow.
func pageAt[T any](body map[string]any, match []T) (page []T, total int, next int) {
	start := 0
	if s, ok := body["start"].(float64); ok {
		start = int(s)
	}
	if start >= len(match) || start < 0 {
		start = 0 // past the end: page 1 again, never an empty page
	}
	end := min(start+pageSize, len(match))
	if end < len(match) {
		next = end
	}
	return append([]T{}, match[start:end]...), len(match), next
}

// departmentPortal serves department.get over deps, 50 per page, the way
// the portal does: string values, LIKE on NAME, lowercase start, total and
// next.
func departmentPortal(t *testing.T, f *fixture, deps []map[string]string) *[]map[string]any {
	var reqs []map[string]any
	f.handle(t, "department.get", func(w http.ResponseWriter, body map[string]any) {
		reqs = append(reqs, body)
		var match []map[string]string
		for _, d := range deps {
			if n, ok := body["NAME"].(string); ok && !likePattern(n).MatchString(d["NAME"]) {
				continue
			}
			if p, ok := body["PARENT"].(float64); ok && d["PARENT"] != fmt.Sprint(p) {
				continue
			}
			match = append(match, d)
		}
		page, total, next := pageAt(body, match)
		ans := map[string]any{"result": page, "total": total,
			"time": map[string]any{"start": 1736927311.5, "operating": 0.01}}
		if next > 0 {
			ans["next"] = next
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
		if _, upper := r["START"]; upper {
			t.Errorf("request %v sends START, which the portal ignores", r)
		}
		starts = append(starts, r["start"])
		if r["PARENT"] != float64(1) {
			t.Errorf("filter lost: %v", r)
		}
	}
	if want := []any{nil, float64(50), float64(100)}; !reflect.DeepEqual(starts, want) {
		t.Errorf("start sent %v, want %v", starts, want)
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
		page, total, next := pageAt(body, match)
		ans := map[string]any{"result": map[string]any{"automatedSolutions": page}, "total": total}
		if next > 0 {
			ans["next"] = next
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

// TestFindDepartmentWildcardsAcrossPages: the portal reads % and _ in NAME
// as LIKE wildcards, so "50%_off" matches many departments; the one named
// exactly so is on the third page, with a case variant before it.
func TestFindDepartmentWildcardsAcrossPages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	deps := []map[string]string{{"ID": "1", "NAME": "Company"}}
	for i := 2; i <= 130; i++ {
		deps = append(deps, map[string]string{"ID": fmt.Sprint(i), "NAME": fmt.Sprintf("50%% %d off", i), "PARENT": "1"})
	}
	deps = append(deps,
		map[string]string{"ID": "140", "NAME": "50%_OFF", "PARENT": "1"},
		map[string]string{"ID": "150", "NAME": "50%_off", "PARENT": "1"},
		map[string]string{"ID": "160", "NAME": "50%_off", "PARENT": "2"},
	)
	reqs := departmentPortal(t, f, deps)
	d, ok, err := f.client.FindDepartment(t.Context(), "50%_off", 1)
	if err != nil || !ok || d.ID != 150 {
		t.Fatalf("FindDepartment = %+v %v %v, want ID 150", d, ok, err)
	}
	var starts []any
	for _, r := range *reqs {
		starts = append(starts, r["start"])
	}
	if want := []any{nil, float64(50), float64(100)}; !reflect.DeepEqual(starts, want) {
		t.Errorf("start sent %v, want %v (every page read)", starts, want)
	}
}

// TestPagingStopsAtTotal: a next at or past total is not followed (the
// portal would answer page 1 again).
func TestPagingStopsAtTotal(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var starts []any
	f.handle(t, "department.get", func(w http.ResponseWriter, body map[string]any) {
		starts = append(starts, body["start"])
		if body["start"] == nil {
			reply(w, 200, `{"result":[{"ID":"1","NAME":"A"}],"total":"60","next":"50"}`)
			return
		}
		reply(w, 200, `{"result":[{"ID":"2","NAME":"B"}],"total":"60","next":"60"}`)
	})
	got, err := f.client.GetDepartments(t.Context(), nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if want := []any{nil, float64(50)}; !reflect.DeepEqual(starts, want) {
		t.Errorf("start sent %v, want %v", starts, want)
	}
}

// TestPagingCap: a portal that keeps answering next is read up to the cap,
// then the lookup fails with an error that says so.
func TestPagingCap(t *testing.T) {
	t.Parallel()
	f := setup(t)
	calls := 0
	f.handle(t, "department.get", func(w http.ResponseWriter, body map[string]any) {
		calls++
		start, _ := body["start"].(float64)
		fmt.Fprintf(w, `{"result":[{"ID":"%d","NAME":"A"}],"total":1000000,"next":%d}`, calls, int(start)+pageSize)
	})
	params := func(start int) map[string]any { return departmentGetParams(nil, start) }
	_, err := listAll(t.Context(), f.client, MethodDepartmentGet, 3, params, DecodeDepartments)
	if err == nil || !strings.Contains(err.Error(), "3 pages") || calls != 3 {
		t.Fatalf("err %v after %d calls, want a page-cap error after 3", err, calls)
	}
	if Classify(err) != Transient {
		t.Errorf("Classify = %v, want transient", Classify(err))
	}
}

// TestLookupOfNullListFails: a null or missing list in a lookup's answer
// says nothing about what exists; it is an error, never "not found".
func TestLookupOfNullListFails(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "department.get", func(w http.ResponseWriter, _ map[string]any) { reply(w, 200, `{"result":null,"total":0}`) })
	f.handle(t, "crm.automatedsolution.list", func(w http.ResponseWriter, _ map[string]any) { reply(w, 200, `{"result":{},"total":0}`) })
	if d, ok, err := f.client.FindDepartment(t.Context(), "Sales", 1); err == nil || ok || Classify(err) != Transient {
		t.Errorf("FindDepartment over a null list = %+v %v %v, want a transient error", d, ok, err)
	}
	if s, ok, err := f.client.FindAutomatedSolution(t.Context(), "HR"); err == nil || ok || Classify(err) != Transient {
		t.Errorf("FindAutomatedSolution without a list = %+v %v %v, want a transient error", s, ok, err)
	}
}
