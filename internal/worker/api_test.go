package worker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/testutil"
)

// An import posted to the worker's own side port is processed by the worker
// with its import state kept: the children are created under their parents
// and the status reports every ID.
func TestImportThroughTheSidePortIsTrackedEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{Rate: 50, Burst: 50}, nil)
	stop := b.run(t)
	t.Cleanup(func() { stop() })

	body := `{"departments":[{"key":"sales","name":"Sales","parent_id":1},{"key":"eu","name":"Sales EU","parent":"sales"}],` +
		`"workplaces":[{"key":"hr","title":"HR"}]}`
	id := "api-" + testutil.RandomHex(4)
	req := httptest.NewRequest(http.MethodPost, "/v1/imports?portal="+b.portal+"&id="+id, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	b.w.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /v1/imports: %d %s", rec.Code, rec.Body)
	}

	var st struct {
		Done    bool             `json:"done"`
		Created map[string]int64 `json:"created"`
		Failed  map[string]string
	}
	deadline := time.Now().Add(20 * time.Second)
	for !st.Done {
		if time.Now().After(deadline) {
			t.Fatalf("import not done: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
		code, out := get(t, b.w.Handler(), "/v1/imports/"+id, "", "")
		if code != http.StatusOK {
			t.Fatalf("GET status: %d %s", code, out)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.Created) != 3 || len(st.Failed) != 0 {
		t.Fatalf("status = %+v, want 3 created", st)
	}
	var parentOfEU int64
	for _, d := range b.sim.Departments() {
		if d.Name == "Sales EU" {
			parentOfEU = d.Parent
		}
	}
	if parentOfEU != st.Created["sales"] {
		t.Errorf("Sales EU has parent %d, want Sales (%d)", parentOfEU, st.Created["sales"])
	}
}

// POST /v1/imports?plan=1 answers the plan a worker made against the
// portal, creating nothing.
func TestPlanThroughTheSidePort(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{Rate: 50, Burst: 50}, nil)
	sales := b.sim.SeedDepartment("Sales", 1, 0, 0)
	stop := b.run(t)
	t.Cleanup(func() { stop() })

	body := `{"departments":[{"key":"sales","name":"Sales","parent_id":1},{"key":"eu","name":"Sales EU","parent":"sales"}]}`
	req := httptest.NewRequest(http.MethodPost, "/v1/imports?plan=1&portal="+b.portal, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	b.w.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /v1/imports?plan=1: %d %s", rec.Code, rec.Body)
	}
	var plan struct {
		Items []struct {
			Key, Action string
			ID          int64
		} `json:"items"`
		Totals map[string]int `json:"totals"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Items) != 2 || plan.Items[0].Action != "exists" || plan.Items[0].ID != sales || plan.Items[1].Action != "create" {
		t.Errorf("plan %s", rec.Body)
	}
	if s := b.sim.Stats(); s.DepartmentsCreated != 0 {
		t.Errorf("the plan created %d departments", s.DepartmentsCreated)
	}
}
