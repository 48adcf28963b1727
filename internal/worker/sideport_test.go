package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/tasks"
)

// A side port another process holds: Run returns a *ListenError at once,
// naming WORKER_LISTEN and --listen, before it waits for Redis.
func TestBusySidePortIsAListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	cfg := baseConfig("busy", "https://acme.bitrix24.ru/rest/1/code/")
	cfg.Redis.URL = deadRedisURL(t)
	cfg.Listen = ln.Addr().String()
	w, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = w.Run(ctx)
	var lerr *ListenError
	if !errors.As(err, &lerr) || lerr.Addr != cfg.Listen {
		t.Fatalf("Run = %v, want a *ListenError for %s", err, cfg.Listen)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "WORKER_LISTEN (--listen) "+cfg.Listen+": the address is already in use") {
		t.Errorf("message %q", msg)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run took %s to report the busy port", took)
	}
}

func TestHealthcheckURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/healthz",
		"0.0.0.0:8080":   "http://127.0.0.1:8080/healthz",
		":9000":          "http://127.0.0.1:9000/healthz",
		"[::]:8080":      "http://[::1]:8080/healthz",
		"worker1:8080":   "http://worker1:8080/healthz",
	} {
		if got, err := HealthcheckURL(in, "/healthz"); err != nil || got != want {
			t.Errorf("HealthcheckURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, _ := HealthcheckURL("0.0.0.0:8090", "_sim/stats"); got != "http://127.0.0.1:8090/_sim/stats" {
		t.Errorf("HealthcheckURL with a path = %q", got)
	}
	if _, err := HealthcheckURL("8080", "/healthz"); err == nil {
		t.Error("HealthcheckURL accepted an address without a port")
	}
}

// The enqueue API on the worker's side port: its own portals count as
// served before its servers run; another portal no worker serves is refused
// naming the served ones; a task is found by its ID alone.
func TestSidePortAPIKnowsItsPortalsAndTasks(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, nil)
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/workplaces", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		b.w.Handler().ServeHTTP(rec, req)
		return rec
	}
	rec := post(`{"portal":"` + b.portal + `","title":"HR"}`)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("own portal: %d %s", rec.Code, rec.Body)
	}
	var ok struct {
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ok); err != nil {
		t.Fatal(err)
	}
	rec = post(`{"portal":"nobody-serves-this","title":"HR"}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `no worker serves it`) || !strings.Contains(rec.Body.String(), b.portal) {
		t.Errorf("unserved portal: %d %s", rec.Code, rec.Body)
	}
	code, body := get(t, b.w.Handler(), "/v1/tasks/"+ok.TaskID, "", "")
	var st tasks.TaskStatus
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.State != "pending" || st.Portal != b.portal {
		t.Errorf("GET /v1/tasks: %d %s", code, body)
	}
}

func TestClaimsOptions(t *testing.T) {
	t.Parallel()
	cfg := config.Worker{Redis: config.Redis{URL: "redis://h:6379/0"}}
	if n := len(claimsOptions(cfg)); n != 0 {
		t.Errorf("defaults: %d options, want none", n)
	}
	cfg.RequestLimit = time.Second
	if n := len(claimsOptions(cfg)); n != 1 {
		t.Errorf("request limit: %d options, want 1", n)
	}
	cfg.Redis.URL = "redis-sentinel://s1:26379?master=m"
	if n := len(claimsOptions(cfg)); n != 2 {
		t.Errorf("request limit and Sentinel: %d options, want 2", n)
	}
}

// Once a worker logs "processing tasks", producers see its portals served.
func TestPortalsServedOnceProcessing(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, nil)
	b.run(t)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.logs.String(), `"msg":"processing tasks"`) {
		if time.Now().After(deadline) {
			t.Fatalf("not processing after 10 s:\n%s", b.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	names, err := fleet.Known(requireRedis(t), b.prefix)(context.Background())
	if err != nil || !slices.Contains(names, b.portal) {
		t.Errorf("served portals %q (%v) lack %s right after \"processing tasks\"", names, err, b.portal)
	}
}
