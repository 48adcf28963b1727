package b24test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// batchResult is the "result" object of a batch answer.
func batchResult(t *testing.T, a answer) map[string]any {
	t.Helper()
	wantOK(t, a)
	return a.body["result"].(map[string]any)
}

func TestHeadFailureLeavesTheDepartment(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Faults: Faults{HeadErrorRate: 1}})
	a := call(t, s, "department.add", map[string]any{"NAME": "Sales", "PARENT": 1, "UF_HEAD": 7})
	wantError(t, a, http.StatusBadRequest, "ERROR_CORE")
	if a.desc() != DescHeadFailed {
		t.Errorf("description %q, want %q", a.desc(), DescHeadFailed)
	}
	// The department exists, without a head: a lookup finds it.
	g := call(t, s, "department.get", map[string]any{"NAME": "Sales", "PARENT": 1})
	want := []any{map[string]any{"ID": "2", "NAME": "Sales", "PARENT": "1", "SORT": float64(500)}}
	if !reflect.DeepEqual(g.body["result"], want) {
		t.Errorf("lookup after the failed head: %s", g.raw)
	}
	// Without a head there is no second step to fail.
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "EU", "PARENT": 2}))
	// In a batch the command fails the same way, the department is saved.
	res := batchResult(t, call(t, s, "batch", map[string]any{"cmd": map[string]string{"us": "department.add?NAME=US&PARENT=2&UF_HEAD=3"}}))
	if e := res["result_error"].(map[string]any)["us"].(map[string]any); e["error_description"] != DescHeadFailed {
		t.Errorf("batch command error %v", e)
	}
	st := s.Stats()
	if st.DepartmentsCreated != 3 || st.Faults["head_error"] != 2 {
		t.Errorf("created %d, head errors %d; want 3 and 2", st.DepartmentsCreated, st.Faults["head_error"])
	}
}

func TestDBErrorBeforeTheWork(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Faults: Faults{DBErrorRate: 1}})
	a := call(t, s, "department.add", map[string]any{"NAME": "Sales", "PARENT": 1})
	wantError(t, a, http.StatusBadRequest, "ERROR_CORE")
	if a.desc() != DescDeadlock || !strings.Contains(a.desc(), "Deadlock found when trying to get lock; try restarting transaction") {
		t.Errorf("description %q", a.desc())
	}
	res := batchResult(t, call(t, s, "batch", map[string]any{"cmd": map[string]string{"add": "department.add?NAME=EU&PARENT=1", "get": "department.get"}}))
	if e := res["result_error"].(map[string]any)["add"].(map[string]any); e["error_description"] != DescDeadlock {
		t.Errorf("batch command error %v", e)
	}
	if len(res["result"].(map[string]any)) != 1 {
		t.Errorf("department.get is not affected: %v", res["result"])
	}
	if n := len(s.Departments()); n != 1 {
		t.Errorf("%d departments, want only the root: nothing saved", n)
	}
}
