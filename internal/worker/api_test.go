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
