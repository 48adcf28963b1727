package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/api"
	"github.com/b24queue/b24queue/tasks"
)

func TestRetryImport(t *testing.T) {
	t.Parallel()
	f := setup(t)
	body := []byte(`{"departments":[{"key":"sales","name":"Sales","parent_id":1},{"key":"eu","name":"Sales EU","parent":"sales"}]}`)
	if w := f.do("POST", "/v1/imports?id=retry-1&portal="+f.portal, "application/json", body); w.Code != http.StatusAccepted {
		t.Fatalf("POST /v1/imports: %d %s", w.Code, w.Body)
	}
	// The import was reconciled (no worker runs here: its reconcile task
	// stands in for a finished one and stays queued), then the root's task
	// failed for good and left the queue.
	ctx := context.Background()
	if err := store.New(f.rdb, f.prefix).SetReconciled(ctx, "retry-1"); err != nil {
		t.Fatal(err)
	}
	imports := tasks.NewImports(f.rdb, asynq.NewClientFromRedisClient(f.rdb), f.prefix, nil)
	if err := imports.Failed(ctx, "retry-1", "sales", "permanent failure: b24: department.add: ACCESS_DENIED"); err != nil {
		t.Fatal(err)
	}

	w := f.do("POST", "/v1/imports/retry-1/retry", "", nil)
	if w.Code != http.StatusAccepted {
		t.Fatalf("retry: %d %s", w.Code, w.Body)
	}
	var got api.ImportRetried
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.RetriedKeys)
	if got.ID != "retry-1" || got.Retried != 2 || !slices.Equal(got.RetriedKeys, []string{"eu", "sales"}) || got.Enqueued != 1 {
		t.Errorf("retry answer %+v, want sales and eu retried, 1 enqueued", got)
	}
	if n := f.queued(); n != 2 {
		t.Errorf("%d tasks in the queue, want the root again beside the reconcile task", n)
	}
	st := f.do("GET", "/v1/imports/retry-1", "", nil).Body.String()
	if want := `"failed":{}`; !strings.Contains(st, want) {
		t.Errorf("status after retry %s lacks %s", st, want)
	}
}

func TestRetryImportRejections(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tt := range []struct {
		name   string
		method string
		path   string
		header map[string]string
		want   int
	}{
		{"unknown import", "POST", "/v1/imports/nope/retry", nil, http.StatusNotFound},
		{"invalid ID", "POST", "/v1/imports/no%20pe/retry", nil, http.StatusNotFound},
		{"GET", "GET", "/v1/imports/nope/retry", nil, http.StatusMethodNotAllowed},
		{"cross-origin browser POST", "POST", "/v1/imports/nope/retry", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"cross-origin form", "POST", "/v1/imports/nope/retry", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest(tt.method, tt.path, tt.header)
			w := serve(f, r)
			if w.Code != tt.want {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, w.Code, w.Body, tt.want)
			}
			decodeError(t, w)
		})
	}
}

func newRequest(method, target string, header map[string]string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return r
}

func serve(f *fixture, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}
