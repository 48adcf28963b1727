package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/internal/api"
	"github.com/b24queue/b24queue/tasks"
)

// The deprecated "parent" is accepted for one release, with a Warning
// header (code 299) and a "warnings" list in the answer; parent_id is not
// warned about. Names are trimmed like import rows.
func TestDeprecatedParentWarns(t *testing.T) {
	t.Parallel()
	f := setup(t)
	w := f.do("POST", "/v1/departments", "application/json", []byte(`{"portal":"`+f.portal+`","name":"  Sales EU ","parent":12}`))
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got, want := w.Header().Get("Warning"), `299 - "\"parent\" is deprecated and will be removed in the next release; use \"parent_id\""`; got != want {
		t.Errorf("Warning header %q, want %q", got, want)
	}
	var ok api.TaskAccepted
	if err := json.Unmarshal(w.Body.Bytes(), &ok); err != nil || len(ok.Warnings) != 1 || ok.Warnings[0] != api.DeprecatedParent {
		t.Errorf("answer %s: want warnings [%q] (%v)", w.Body, api.DeprecatedParent, err)
	}
	info, err := f.insp.GetTaskInfo(f.queue, ok.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	var p tasks.DepartmentPayload
	if err := json.Unmarshal(info.Payload, &p); err != nil || p.Parent != 12 || p.Name != "Sales EU" {
		t.Errorf("payload %s: want parent 12 and the name trimmed (%v)", info.Payload, err)
	}

	w = f.do("POST", "/v1/departments", "application/json", []byte(`{"portal":"`+f.portal+`","name":"Sales","parent_id":12}`))
	if w.Code != http.StatusAccepted || w.Header().Get("Warning") != "" || strings.Contains(w.Body.String(), "warnings") {
		t.Errorf("parent_id: %d, Warning %q, body %s; want 202 without warnings", w.Code, w.Header().Get("Warning"), w.Body)
	}
}

// With known portals, a portal no worker serves is refused with 400 naming
// the served ones, for single tasks and imports alike.
func TestUnservedPortalIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	client := asynq.NewClientFromRedisClient(f.rdb)
	known := func(context.Context) ([]string, error) { return []string{"acme", "beta"}, nil }
	h := api.New(tasks.NewImports(f.rdb, client, f.prefix, nil), client, nil, api.WithKnownPortals(known))
	for _, req := range []struct{ path, body string }{
		{"/v1/departments", `{"portal":"` + f.portal + `","name":"Sales","parent_id":1}`},
		{"/v1/workplaces", `{"portal":"` + f.portal + `","title":"HR"}`},
		{"/v1/imports?portal=" + f.portal, `{"departments":[{"key":"a","name":"A","parent_id":1}]}`},
	} {
		f.handler = h
		w := f.do("POST", req.path, "application/json", []byte(req.body))
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", req.path, w.Code, w.Body)
			continue
		}
		e := decodeError(t, w)
		want := `portal "` + f.portal + `": no worker serves it; the portals served now are acme, beta`
		if len(e.Problems) != 1 || e.Problems[0] != want {
			t.Errorf("%s: problems %q, want [%q]", req.path, e.Problems, want)
		}
	}
	if n := f.queued(); n != 0 {
		t.Errorf("%d tasks enqueued for an unserved portal", n)
	}
}

// GET /v1/tasks/{id} finds a task by its ID alone; unknown IDs are 404.
func TestTaskStatus(t *testing.T) {
	t.Parallel()
	f := setup(t)
	w := f.do("POST", "/v1/workplaces", "application/json", []byte(`{"portal":"`+f.portal+`","title":"HR"}`))
	var ok api.TaskAccepted
	if err := json.Unmarshal(w.Body.Bytes(), &ok); err != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = f.do("GET", "/v1/tasks/"+ok.TaskID, "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET task: %d %s", w.Code, w.Body)
	}
	var st tasks.TaskStatus
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != ok.TaskID || st.State != "pending" || st.Portal != f.portal || st.Type != tasks.TypeWorkplaceCreate || st.MaxRetry != tasks.DefaultMaxRetry {
		t.Errorf("task status %+v", st)
	}
	for _, id := range []string{"no-such-task", strings.Repeat("x", 600)} {
		w = f.do("GET", "/v1/tasks/"+id, "", nil)
		if w.Code != http.StatusNotFound || !strings.Contains(decodeError(t, w).Error, "no task") {
			t.Errorf("unknown task %.20s: %d %s", id, w.Code, w.Body)
		}
	}
	if w = f.do("DELETE", "/v1/tasks/"+ok.TaskID, "", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE task: %d, want 405", w.Code)
	}
}
