package b24test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
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

func TestFloatIDs(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Faults: Faults{FloatIDRate: 1}})
	a := call(t, s, "batch", map[string]any{"cmd": []string{"department.add?NAME=A&PARENT=1", "department.add?NAME=B&PARENT=1"}})
	wantOK(t, a)
	if !bytes.Contains(a.raw, []byte(`"result":[2.5,3.5]`)) {
		t.Errorf("want float IDs: %s", a.raw)
	}
	// The departments have their real integer IDs.
	if d := s.Departments(); len(d) != 3 || d[1].ID != 2 || d[2].ID != 3 {
		t.Errorf("departments %+v", d)
	}
	// A single call is not a batch's create result.
	if a := call(t, s, "department.add", map[string]any{"NAME": "C", "PARENT": 1}); a.body["result"] != float64(4) {
		t.Errorf("single call %s", a.raw)
	}
}

func TestDuplicateIDs(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Faults: Faults{DuplicateIDRate: 1}})
	a := call(t, s, "batch", map[string]any{"cmd": []string{
		"department.get?ID=1",
		"department.add?NAME=A&PARENT=1",
		"department.add?NAME=B&PARENT=1",
		"department.add?NAME=C&PARENT=1",
	}})
	res := batchResult(t, a)["result"].([]any)
	if res[1] != float64(2) || res[2] != float64(2) || res[3] != float64(2) {
		t.Errorf("want every create to answer 2: %v", res)
	}
	if d := s.Departments(); len(d) != 4 || d[3].Name != "C" || d[3].ID != 4 {
		t.Errorf("every department is created with its own ID: %+v", d)
	}
	if s.Stats().Faults["duplicate_ids"] != 1 {
		t.Errorf("faults %v", s.Stats().Faults)
	}
}

func TestNullAndMissingResults(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		faults Faults
		single string // must be in the single call's body
	}{
		{"null", Faults{NullResultRate: 1}, `"result":null`},
		{"missing", Faults{MissingResultRate: 1}, ``},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := setup(t, Config{Faults: tt.faults})
			for _, m := range []string{"department.get", "crm.automatedsolution.list"} {
				a := call(t, s, m, nil)
				wantOK(t, a)
				if _, has := a.body["result"]; has != (tt.single != "") || !bytes.Contains(a.raw, []byte(tt.single)) ||
					a.body["total"] != nil || a.body["time"] == nil {
					t.Errorf("%s: %s", m, a.raw)
				}
			}
			// Creates are not lists: not affected.
			wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "A", "PARENT": 1}))
			a := call(t, s, "batch", map[string]any{"cmd": map[string]string{"g": "department.get", "add": "department.add?NAME=B&PARENT=1"}})
			res := batchResult(t, a)
			results := res["result"].(map[string]any)
			g, has := results["g"]
			if has != (tt.name == "null") || g != nil || results["add"] != float64(3) {
				t.Errorf("batch result %v", results)
			}
			if len(res["result_error"].([]any)) != 0 || len(res["result_total"].([]any)) != 0 {
				t.Errorf("no error and no total for g: %s", a.raw)
			}
		})
	}
}

func TestAbsurdReset(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Faults: Faults{AbsurdResetRate: 1}})
	tenYears := t0.Add(absurdReset).Unix()
	a := call(t, s, "department.add", map[string]any{"NAME": "A", "PARENT": 1})
	wantError(t, a, http.StatusTooManyRequests, "OPERATION_TIME_LIMIT")
	if got := int64(num(t, a.timeBlock(t)["operating_reset_at"])); got != tenYears || time.Unix(got, 0).Sub(t0) < 9*365*24*time.Hour {
		t.Errorf("operating_reset_at %d, want %d (ten years ahead)", got, tenYears)
	}
	res := batchResult(t, call(t, s, "batch", map[string]any{"cmd": map[string]string{"a": "department.add?NAME=B&PARENT=1"}}))
	if e := res["result_error"].(map[string]any)["a"].(map[string]any); e["error"] != "OPERATION_TIME_LIMIT" {
		t.Errorf("batch command error %v", e)
	}
	if tb := res["result_time"].(map[string]any)["a"].(map[string]any); int64(num(t, tb["operating_reset_at"])) != tenYears {
		t.Errorf("batch command time %v", tb)
	}
	if st := s.Stats(); st.DepartmentsCreated != 0 || st.Rejected429 != 2 {
		t.Errorf("created %d, 429s %d; want 0 and 2", st.DepartmentsCreated, st.Rejected429)
	}
}

func TestEchoURL(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{WebhookSecret: "sekret-123", OAuth: OAuthConfig{AccessToken: "tok-456"}, Faults: Faults{EchoURLRate: 1}})
	a := call(t, s, "department.add", map[string]any{"NAME": "A", "PARENT": 1})
	wantError(t, a, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR")
	if a.desc() != "Method failed at "+s.WebhookURL()+"department.add" {
		t.Errorf("description %q", a.desc())
	}
	res := batchResult(t, call(t, s, "batch", map[string]any{"cmd": map[string]string{"g": "department.get?ID=1"}}))
	e := res["result_error"].(map[string]any)["g"].(map[string]any)
	if d, _ := e["error_description"].(string); !strings.Contains(d, "/rest/1/sekret-123/department.get") {
		t.Errorf("batch command error %v", e)
	}
	o := postJSON(t, s.OAuthPortalURL()+"rest/department.get", map[string]any{"auth": "tok-456"})
	if !strings.Contains(o.desc(), "auth=tok-456") {
		t.Errorf("OAuth: %s", o.raw)
	}
	if n := len(s.Departments()); n != 1 {
		t.Errorf("%d departments: the echoed call must not run", n)
	}
}

func TestHeldRequestRunsAfterTheClientLeft(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Faults: Faults{HoldRate: 1, HoldDelay: 300 * time.Millisecond}})
	client := &http.Client{Timeout: 50 * time.Millisecond}
	b, _ := json.Marshal(map[string]any{"NAME": "Sales", "PARENT": 1})
	resp, err := client.Post(s.WebhookURL()+"department.add", "application/json", bytes.NewReader(b))
	var ne interface{ Timeout() bool }
	if err == nil {
		resp.Body.Close()
		t.Fatalf("want a client timeout, got %d", resp.StatusCode)
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}
	if n := len(s.Departments()); n != 1 {
		t.Fatalf("%d departments before the hold ended", n)
	}
	testutil.WaitFor(t, 5*time.Second, "the held create to run", func() (bool, string) {
		st := s.Stats()
		return st.Held == 1 && st.DepartmentsCreated == 1, ""
	})

	// A patient client gets its answer after the hold.
	s.SetFaults(Faults{HoldRate: 1, HoldDelay: 10 * time.Millisecond})
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "EU", "PARENT": 2}))
	if st := s.Stats(); st.Held != 2 || st.Faults["hold"] != 2 {
		t.Errorf("Held %d, hold faults %d; want 2", st.Held, st.Faults["hold"])
	}
}

func TestNewFaultsJSONAndValidation(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	simPost(t, s, "/_sim/faults", `{"hold_rate":0.5,"hold_delay":"1.5s","echo_url_rate":0.25,"float_id_rate":1}`)
	var f Faults
	getJSON(t, s.URL+"/_sim/faults", &f)
	want := Faults{HoldRate: 0.5, HoldDelay: 1500 * time.Millisecond, EchoURLRate: 0.25, FloatIDRate: 1}
	if f != want {
		t.Errorf("faults %+v, want %+v", f, want)
	}
	simPost(t, s, "/_sim/faults", `{"hold_rate":1}`)
	if got := s.Faults().HoldDelay; got != 40*time.Second {
		t.Errorf("default HoldDelay %v, want 40s", got)
	}
	err := Config{Faults: Faults{DuplicateIDRate: -1, AbsurdResetRate: 2, HoldDelay: -1}}.WithDefaults().Validate()
	for _, field := range []string{"Faults.DuplicateIDRate", "Faults.AbsurdResetRate", "Faults.HoldDelay"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}
