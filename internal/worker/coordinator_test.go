package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/tasks"
	"github.com/hibiken/asynq"
)

// call sends method path with a JSON body to the worker's side port.
func call(t *testing.T, b *bundle, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	b.w.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// A portal registered through the API while the worker runs is served
// without a restart: its first call follows the enqueue within 2 s; its
// queue stops once it has no work left and runs again when a task arrives
// unmarked (the sweep); removing it refuses while it has work, and a forced
// removal stops its queue and makes it unknown. Its secret is in no answer.
func TestRegisteredPortalServedWithoutRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, nil)
	b.run(t)
	waitLog(t, b, `"msg":"processing tasks"`)

	other := b24test.NewServer(t, b24test.Config{})
	name := "reg" + testutil.RandomHex(6)
	t.Cleanup(func() { _ = b.insp.DeleteQueue(tasks.QueueName(name), true) })
	secret := other.WebhookURL()[strings.LastIndex(strings.TrimSuffix(other.WebhookURL(), "/"), "/")+1:]
	code, body := call(t, b, http.MethodPost, "/v1/portals", `{"name":"`+name+`","webhook_url":"`+other.WebhookURL()+`","rate":20}`)
	if code != http.StatusCreated || strings.Contains(body, strings.TrimSuffix(secret, "/")) {
		t.Fatalf("register: %d %s\n%s", code, body, b.logs.String())
	}

	start := time.Now()
	code, body = call(t, b, http.MethodPost, "/v1/departments", `{"portal":"`+name+`","name":"Registered","parent_id":1}`)
	if code != http.StatusAccepted {
		t.Fatalf("enqueue on the registered portal: %d %s", code, body)
	}
	testutil.WaitFor(t, 10*time.Second, "the registered portal's department", func() (bool, string) {
		return len(other.Departments()) > 1, ""
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("enqueue to the department on a quiet registered portal took %s, want <= 2s", took)
	}
	if !slices.Contains(b.w.coord.Held(), name) {
		t.Errorf("the worker does not show the registered portal as held: %v", b.w.coord.Held())
	}
	testutil.WaitFor(t, 3*settleEvery, "the idle queue to stop", func() (bool, string) {
		return !slices.Contains(b.w.coord.Held(), name), strings.Join(b.w.coord.Held(), ",")
	})

	code, body = call(t, b, http.MethodGet, "/v1/portals/"+name, "")
	var st struct {
		Source    string `json:"source"`
		Active    bool   `json:"active"`
		Available bool   `json:"available"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Source != "registered" || st.Active || !st.Available {
		t.Errorf("GET /v1/portals/%s: %d %s", name, code, body)
	}
	code, body = call(t, b, http.MethodGet, "/v1/portals", "")
	if code != http.StatusOK || !strings.Contains(body, `"name":"`+name+`"`) || !strings.Contains(body, `"name":"`+b.portal+`","source":"config"`) ||
		strings.Contains(body, strings.TrimSuffix(secret, "/")) {
		t.Errorf("GET /v1/portals: %d %s", code, body)
	}

	// Work waiting (the simulator refuses nothing, so park a task for later).
	task, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{Portal: name, Name: "Later", Parent: 1}, asynq.ProcessIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	// Enqueued with a bare asynq client (no activity mark): the sweep finds
	// it and the queue runs again.
	testutil.WaitFor(t, 5*time.Second, "the sweep to find the bare task", func() (bool, string) {
		return slices.Contains(b.w.coord.Held(), name), strings.Join(b.w.coord.Held(), ",")
	})
	if code, body = call(t, b, http.MethodDelete, "/v1/portals/"+name, ""); code != http.StatusConflict {
		t.Errorf("remove with a task waiting: %d %s, want 409", code, body)
	}
	if code, body = call(t, b, http.MethodDelete, "/v1/portals/"+name+"?force=maybe", ""); code != http.StatusBadRequest {
		t.Errorf("force=maybe: %d %s, want 400", code, body)
	}
	if code, body = call(t, b, http.MethodDelete, "/v1/portals/"+name+"?force=1", ""); code != http.StatusOK || !strings.Contains(body, `"deleted_tasks":1`) {
		t.Errorf("forced remove: %d %s", code, body)
	}
	testutil.WaitFor(t, 3*time.Second, "the removed portal's queue to stop", func() (bool, string) {
		return !slices.Contains(b.w.coord.Held(), name), strings.Join(b.w.coord.Held(), ",")
	})
	if code, body = call(t, b, http.MethodPost, "/v1/departments", `{"portal":"`+name+`","name":"Gone","parent_id":1}`); code != http.StatusBadRequest {
		t.Errorf("enqueue on a removed portal: %d %s, want 400", code, body)
	}
	if code, _ = call(t, b, http.MethodGet, "/v1/portals/"+name, ""); code != http.StatusNotFound {
		t.Errorf("status of a removed portal: %d, want 404", code)
	}
	if code, body = call(t, b, http.MethodDelete, "/v1/portals/"+b.portal, ""); code != http.StatusConflict {
		t.Errorf("remove a configured portal: %d %s, want 409", code, body)
	}
	if n, _ := requireRedis(t).Exists(context.Background(), "b24q:{"+name+"}:credential", b.prefix+":{"+name+"}:credential").Result(); n != 0 {
		t.Errorf("the removed portal's credential is still stored")
	}
}

// waitLog waits until the worker logged s.
func waitLog(t *testing.T, b *bundle, s string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, s, func() (bool, string) { return strings.Contains(b.logs.String(), s), "" })
}

// A revoked webhook makes the portal unavailable: GET /v1/portals/NAME and
// /metrics say why while its task waits (none fails); after the webhook is
// restored, POST /v1/portals/NAME/resume runs the task at once instead of
// at the next probe.
func TestUnavailablePortalShownAndResumed(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, nil)
	b.run(t)
	waitLog(t, b, `"msg":"processing tasks"`)
	b.sim.SetWebhookRevoked(true)
	code, body := call(t, b, http.MethodPost, "/v1/departments", `{"portal":"`+b.portal+`","name":"Waits","parent_id":1}`)
	if code != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", code, body)
	}
	var st struct {
		Available   bool `json:"available"`
		Unavailable *struct {
			Code string `json:"code"`
			Fix  string `json:"fix"`
		} `json:"unavailable"`
	}
	testutil.WaitFor(t, 10*time.Second, "the portal shown unavailable", func() (bool, string) {
		_, body = call(t, b, http.MethodGet, "/v1/portals/"+b.portal, "")
		return json.Unmarshal([]byte(body), &st) == nil && !st.Available && st.Unavailable != nil, body
	})
	if st.Unavailable.Code != "INVALID_CREDENTIALS" || st.Unavailable.Fix == "" {
		t.Errorf("unavailable = %+v, want INVALID_CREDENTIALS with a fix", st.Unavailable)
	}
	if _, m := get(t, b.w.Handler(), "/metrics", "", ""); !strings.Contains(m, `b24q_portal_unavailable{code="INVALID_CREDENTIALS",portal="`+b.portal+`"} 1`) {
		t.Errorf("/metrics lacks the unavailable portal")
	}
	if n := len(b.sim.Departments()); n != 1 {
		t.Fatalf("%d departments while the webhook is revoked", n)
	}

	b.sim.SetWebhookRevoked(false)
	resumed := time.Now()
	if code, body = call(t, b, http.MethodPost, "/v1/portals/"+b.portal+"/resume", ""); code != http.StatusOK || !strings.Contains(body, `"was_unavailable":true`) {
		t.Fatalf("resume: %d %s", code, body)
	}
	testutil.WaitFor(t, 5*time.Second, "the waiting department", func() (bool, string) { return len(b.sim.Departments()) == 2, "" })
	t.Logf("created %v after the resume", time.Since(resumed).Round(time.Millisecond))
	if _, body = call(t, b, http.MethodGet, "/v1/portals/"+b.portal, ""); !strings.Contains(body, `"available":true`) {
		t.Errorf("after resume: %s", body)
	}
}
