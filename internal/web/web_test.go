package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// testRedisDB is this package's Redis database for tests.
const testRedisDB = 6

// fixture is the pages over their own key prefix, portal and queue.
type fixture struct {
	rdb     *redis.Client
	imports *tasks.Imports
	lim     *limiter.Limiter
	portal  string
	handler http.Handler
}

func setup(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	rdb := testutil.Redis(t, testRedisDB)
	prefix := testutil.KeyPrefix(t, rdb)
	f := &fixture{rdb: rdb, portal: testutil.Unique("web")}
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { _ = insp.DeleteQueue(tasks.QueueName(f.portal), true) })
	f.imports = tasks.NewImports(rdb, client, prefix, nil)
	f.lim = limiter.New(rdb, limiter.Config{Rate: 2, Burst: 50}, limiter.WithPrefix(prefix))
	t.Cleanup(func() { _ = f.lim.Close() })
	cfg := Config{Imports: f.imports, Limiter: f.lim, Portals: func() []string { return []string{f.portal} }}
	if edit != nil {
		edit(&cfg)
	}
	f.handler = New(cfg)
	return f
}

// submit submits a JSON import file under id.
func (f *fixture) submit(t *testing.T, id, body string) {
	t.Helper()
	file, err := importer.DefaultLimits.ParseBytes(importer.JSON, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.imports.Submit(context.Background(), f.portal, id, file); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) get(t *testing.T, path string) (int, http.Header, string) {
	t.Helper()
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Code, w.Header(), w.Body.String()
}

const sampleImport = `{"departments":[{"key":"sales","name":"Sales","parent_id":1},{"key":"eu","name":"Sales <EU>","parent":"sales"},` +
	`{"key":"bad","name":"Bad","parent_id":999}],"workplaces":[{"key":"hr","title":"HR"}]}`

// withImports submits two imports, web-older and then web-1 (sales
// created as 42, bad failed), and returns the fixture.
func withImports(t *testing.T) *fixture {
	t.Helper()
	f := setup(t, func(c *Config) { c.Redact = []string{"s3cr3t-code"} })
	ctx := context.Background()
	f.submit(t, "web-older", `{"departments":[{"key":"x","name":"X","parent_id":1}]}`)
	time.Sleep(5 * time.Millisecond)
	f.submit(t, "web-1", sampleImport)
	if err := f.imports.Created(ctx, "web-1", "sales", 42); err != nil {
		t.Fatal(err)
	}
	reason := "permanent failure: b24: department.add: ERROR_CORE: Parent department not found (HTTP 400) s3cr3t-code"
	if err := f.imports.Failed(ctx, "web-1", "bad", reason); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestImportsPage(t *testing.T) {
	t.Parallel()
	f := withImports(t)
	code, h, body := f.get(t, "/imports/")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /imports/: %d %s", code, h.Get("Content-Type"))
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP = %q", csp)
	}
	if i, j := strings.Index(body, "web-1"), strings.Index(body, "web-older"); i < 0 || j < 0 || i > j {
		t.Errorf("list does not show web-1 before web-older")
	}
	var list ImportsData
	getJSON(t, f, "/imports/?format=json", &list)
	if list.Total != 2 || len(list.Imports) != 2 || list.Imports[0].ID != "web-1" || list.Version == "" {
		t.Fatalf("list JSON = %+v", list)
	}
	c := list.Imports[0].Progress.Counts
	if c.Total != 4 || c.Created != 1 || c.Failed != 1 || list.Imports[0].State != "running" {
		t.Errorf("web-1 = %+v", list.Imports[0])
	}
}

func TestImportPage(t *testing.T) {
	t.Parallel()
	f := withImports(t)
	code, _, body := f.get(t, "/imports/web-1")
	if code != http.StatusOK {
		t.Fatalf("GET /imports/web-1: %d", code)
	}
	for _, want := range []string{
		`<code>ERROR_CORE</code>`, "Parent department not found", "HTTP 400", `action="/v1/imports/web-1/retry"`,
		"Sales &lt;EU&gt;", "ID 42", "/monitoring/queues/" + tasks.QueueName(f.portal) + "?status=archived", `<code>#999</code>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("import page lacks %q", want)
		}
	}
	if strings.Contains(body, "s3cr3t-code") {
		t.Error("import page shows a secret")
	}
	var d ImportData
	getJSON(t, f, "/imports/web-1?format=json", &d)
	if d.FailuresTotal != 1 || d.Failures[0].Key != "bad" || d.Failures[0].Reason.Code != "ERROR_CORE" || d.TreeTotal != 4 {
		t.Errorf("import JSON = %+v", d)
	}
	if d.Portal == nil || d.Portal.Rate != 2 {
		t.Errorf("portal brief = %+v", d.Portal)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for _, path := range []string{"/imports/nope", "/imports/no%20pe", "/imports/a/b", "/imports/nope?format=json", "/portals/x"} {
		code, h, body := f.get(t, path)
		if code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
		if strings.Contains(path, "format=json") && (!strings.HasPrefix(h.Get("Content-Type"), "application/json") || !strings.Contains(body, `"error"`)) {
			t.Errorf("GET %s: %s %s, want a JSON error", path, h.Get("Content-Type"), body)
		}
	}
}

func TestPortalsPage(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	for range 3 {
		if _, err := f.lim.Reserve(ctx, f.portal, "department.add"); err != nil {
			t.Fatal(err)
		}
	}
	until := time.Now().Add(3 * time.Minute)
	if err := f.lim.Block(ctx, f.portal, "department.add", until); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lim.MarkUnavailable(ctx, f.portal, "department.add", "INVALID_CREDENTIALS", "Invalid request credentials"); err != nil {
		t.Fatal(err)
	}
	code, _, body := f.get(t, "/portals/")
	if code != http.StatusOK {
		t.Fatalf("GET /portals/: %d", code)
	}
	for _, want := range []string{
		`id="portal-` + f.portal + `"`, "/monitoring/queues/" + tasks.QueueName(f.portal), "⊘ blocked until",
		"Unavailable: <code>INVALID_CREDENTIALS</code>", "issue a new one", "3 requests, peak 3/s", `data-method="crm.automatedsolution.add"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("portals page lacks %q", want)
		}
	}
	var d PortalsData
	getJSON(t, f, "/portals/?format=json", &d)
	if len(d.Portals) != 1 || d.Portals[0].State == nil || d.Portals[0].Unavailable == nil || d.Portals[0].Unavailable.Fix == "" {
		t.Fatalf("portals JSON = %+v", d)
	}
}

func getJSON(t *testing.T, f *fixture, path string, v any) {
	t.Helper()
	code, h, body := f.get(t, path)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s %s", path, code, h.Get("Content-Type"), body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
