package api_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/api"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/tasks"
)

// testRedisDB is the Redis DB of this package's tests, and testRedisURL the
// same database as a URL.
const (
	testRedisDB  = 5
	testRedisURL = "redis://" + testutil.RedisAddr + "/5"
)

// fixture is an API on its own key prefix and portal (hence queue).
type fixture struct {
	t       *testing.T
	handler http.Handler
	rdb     *redis.Client
	insp    *asynq.Inspector
	prefix  string
	portal  string
	queue   string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	rdb := testutil.Redis(t, testRedisDB)
	f := &fixture{t: t, rdb: rdb, prefix: testutil.Unique("apitest-"), portal: testutil.Unique("api-")}
	f.queue = tasks.QueueName(f.portal)
	client := asynq.NewClientFromRedisClient(rdb)
	f.insp = asynq.NewInspectorFromRedisClient(rdb)
	f.handler = api.New(tasks.NewImports(rdb, client, f.prefix, nil), client, nil)
	t.Cleanup(func() {
		_ = f.insp.DeleteQueue(f.queue, true)
		for _, pattern := range []string{f.prefix + "*", "asynq:{" + f.queue + "}:*"} {
			testutil.DeleteKeys(rdb, pattern)
		}
	})
	return f
}

// do sends a request to the API and returns the recorded answer.
func (f *fixture) do(method, target, contentType string, body []byte) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}

func (f *fixture) queued() int {
	f.t.Helper()
	info, err := f.insp.GetQueueInfo(f.queue)
	if err != nil {
		return 0 // the queue was never used
	}
	return info.Size
}

// decodeError decodes an error answer, failing the test if it is not one.
func decodeError(t *testing.T, w *httptest.ResponseRecorder) api.ErrorBody {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var e api.ErrorBody
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\":...}: %v", w.Body.String(), err)
	}
	return e
}

func TestSingleTasks(t *testing.T) {
	t.Parallel()
	big := `{"name":"` + strings.Repeat("x", api.MaxTaskBody) + `","parent":1}`
	for _, tt := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string // %P is replaced by the fixture's portal
		wantStatus  int
		wantType    string   // task type for 202
		wantInError []string // substrings of error + problems for errors
	}{
		{"department", "POST", "/v1/departments", "application/json", `{"portal":"%P","name":"Sales EU","parent":12,"sort":500,"head":7}`, 202, tasks.TypeDepartmentCreate, nil},
		{"department with charset", "POST", "/v1/departments", "application/json; charset=utf-8", `{"portal":"%P","name":"Top","parent":0}`, 202, tasks.TypeDepartmentCreate, nil},
		{"workplace", "POST", "/v1/workplaces", "application/json", `{"portal":"%P","title":"HR","type_ids":[1,2]}`, 202, tasks.TypeWorkplaceCreate, nil},
		{"every department problem", "POST", "/v1/departments", "application/json", `{"portal":"%P","name":" ","parent":-1,"sort":-5,"head":-2}`, 400, "",
			[]string{"invalid department", "name is empty", "parent -1", "sort -5", "head -2"}},
		{"department without parent", "POST", "/v1/departments", "application/json", `{"portal":"%P","name":"Sales"}`, 400, "", []string{"parent is required"}},
		{"bad portal", "POST", "/v1/workplaces", "application/json", `{"portal":"Not Valid","title":"HR"}`, 400, "", []string{`portal "Not Valid"`}},
		{"bad type id", "POST", "/v1/workplaces", "application/json", `{"portal":"%P","title":"HR","type_ids":[1,0]}`, 400, "", []string{"type_ids[1]"}},
		{"unknown field", "POST", "/v1/workplaces", "application/json", `{"portal":"%P","title":"HR","colour":"red"}`, 400, "", []string{`unknown field "colour"`}},
		{"wrong type", "POST", "/v1/departments", "application/json", `{"portal":"%P","name":"X","parent":"12"}`, 400, "", []string{`field "parent"`}},
		{"syntax", "POST", "/v1/departments", "application/json", `{"name":`, 400, "", []string{"invalid JSON body"}},
		{"empty body", "POST", "/v1/departments", "application/json", ``, 400, "", []string{"empty body"}},
		{"trailing data", "POST", "/v1/workplaces", "application/json", `{"portal":"%P","title":"HR"} {}`, 400, "", []string{"after the JSON object"}},
		{"no content type", "POST", "/v1/departments", "", `{"portal":"%P","name":"X","parent":1}`, 415, "", []string{"application/json"}},
		{"form content type", "POST", "/v1/workplaces", "application/x-www-form-urlencoded", `title=HR`, 415, "", []string{"application/json"}},
		{"too large", "POST", "/v1/departments", "application/json", big, 413, "", []string{"larger than"}},
		{"GET departments", "GET", "/v1/departments", "", ``, 405, "", []string{"not allowed"}},
		{"DELETE import", "DELETE", "/v1/imports/x", "", ``, 405, "", []string{"not allowed"}},
		{"unknown path", "POST", "/v1/teams", "application/json", `{}`, 404, "", []string{"no such endpoint"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			w := f.do(tt.method, tt.path, tt.contentType, []byte(strings.ReplaceAll(tt.body, "%P", f.portal)))
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus != http.StatusAccepted {
				e := decodeError(t, w)
				all := e.Error + "\n" + strings.Join(e.Problems, "\n")
				for _, want := range tt.wantInError {
					if !strings.Contains(all, want) {
						t.Errorf("error %q lacks %q", all, want)
					}
				}
				if w.Code == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
					t.Error("405 without an Allow header")
				}
				if n := f.queued(); n != 0 {
					t.Errorf("%d tasks enqueued by a rejected request", n)
				}
				return
			}
			var ok api.TaskAccepted
			if err := json.Unmarshal(w.Body.Bytes(), &ok); err != nil || ok.TaskID == "" {
				t.Fatalf("answer %s: %v", w.Body, err)
			}
			info, err := f.insp.GetTaskInfo(f.queue, ok.TaskID)
			if err != nil {
				t.Fatalf("task %s not in the queue: %v", ok.TaskID, err)
			}
			if info.Type != tt.wantType {
				t.Errorf("task type %q, want %q", info.Type, tt.wantType)
			}
		})
	}
}

func TestImportThenStatus(t *testing.T) {
	t.Parallel()
	f := setup(t)
	body := []byte(`{
  "departments": [
    {"key": "sales", "name": "Sales", "parent_id": 1, "sort": 100, "head": 7},
    {"key": "sales-eu", "name": "Sales EU", "parent": "sales"}
  ],
  "workplaces": [
    {"key": "hr", "title": "HR", "type_ids": [1, 2]}
  ]
}`)
	w := f.do("POST", "/v1/imports?id=api-1&portal="+f.portal, "application/json", body)
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST /v1/imports: %d %s", w.Code, w.Body)
	}
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "api-1", "total": 3.0, "enqueued": 2.0, "already_created": 0.0, "existing": false}
	if !maps.Equal(raw, want) {
		t.Errorf("answer %v, want %v", raw, want)
	}
	if n := f.queued(); n != 2 {
		t.Errorf("%d tasks in the queue, want 2 (the root and the workplace)", n)
	}

	w = f.do("GET", "/v1/imports/api-1", "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET status: %d %s", w.Code, w.Body)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(st)); !slices.Equal(got, []string{"counts", "created", "done", "failed", "id", "portal"}) {
		t.Errorf("status fields %v", got)
	}
	var counts map[string]int
	if err := json.Unmarshal(st["counts"], &counts); err != nil {
		t.Fatal(err)
	}
	if wantCounts := map[string]int{"total": 3, "created": 0, "adopted": 0, "updated": 0, "pending": 2, "waiting": 1, "failed": 0}; !maps.Equal(counts, wantCounts) {
		t.Errorf("counts %v, want %v", counts, wantCounts)
	}

	// The same content again: nothing new.
	w = f.do("POST", "/v1/imports?id=api-1&portal="+f.portal, "application/json", body)
	if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"existing":true`) || !strings.Contains(w.Body.String(), `"enqueued":0`) {
		t.Errorf("second POST: %d %s", w.Code, w.Body)
	}
	// Other content under the same ID: a conflict.
	w = f.do("POST", "/v1/imports?id=api-1&portal="+f.portal, "application/json", []byte(`{"departments":[{"key":"x","name":"X","parent_id":1}]}`))
	if w.Code != http.StatusConflict {
		t.Errorf("other content, same id: %d %s, want 409", w.Code, w.Body)
	}
}

func TestImportRejections(t *testing.T) {
	t.Parallel()
	good := `{"departments":[{"key":"a","name":"A","parent_id":1}]}`
	for _, tt := range []struct {
		name, target, contentType, body string
		wantStatus                      int
		wantInError                     string
	}{
		{"unknown import", "/v1/imports/imp-0000000000000000", "", "", 404, "no import"},
		{"malformed import id", "/v1/imports/a:b", "", "", 404, "no import"},
		{"bad id", "/v1/imports?id=a:b", "application/json", good, 400, "invalid import ID"},
		{"bad portal", "/v1/imports?portal=Bad!", "application/json", good, 400, `portal "Bad!"`},
		{"plain text", "/v1/imports", "text/plain", good, 415, "Content-Type"},
		{"too large", "/v1/imports", "application/json", `{"departments":[` + strings.Repeat(" ", api.MaxImportBody) + `]}`, 413, "larger than"},
		{"unknown field", "/v1/imports", "application/json", `{"departments":[{"key":"a","name":"A","parent_id":1,"colour":1}]}`, 400, "colour"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			method := "POST"
			if tt.body == "" {
				method = "GET"
			}
			w := f.do(method, tt.target, tt.contentType, []byte(tt.body))
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			e := decodeError(t, w)
			if all := e.Error + "\n" + strings.Join(e.Problems, "\n"); !strings.Contains(all, tt.wantInError) {
				t.Errorf("error %q lacks %q", all, tt.wantInError)
			}
		})
	}
}
