package worker

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/tasks"
)

func get(t *testing.T, h http.Handler, path string, user, pass string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// TestProcessesDepartment runs a worker built by New against the simulator:
// an enqueued department is created once, its ID written as the result, and
// /metrics then shows the call, the queue and the limiter, but no secret.
func TestProcessesDepartment(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, nil)
	stop := b.run(t)

	task, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{Portal: b.portal, Name: "Sales", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != b.queue {
		t.Fatalf("task queue %q, want %q", info.Queue, b.queue)
	}
	done := b.waitTask(t, info.ID, "completed", func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateCompleted })

	var created []b24test.Department
	for _, d := range b.sim.Departments() {
		if d.Name == "Sales" {
			created = append(created, d)
		}
	}
	if len(created) != 1 || created[0].Parent != 1 {
		t.Fatalf("simulator departments named Sales: %+v, want exactly one under parent 1", created)
	}
	var res struct{ ID int64 }
	if err := json.Unmarshal(done.Result, &res); err != nil || res.ID != created[0].ID {
		t.Fatalf("task result %q (err %v), want id %d", done.Result, err, created[0].ID)
	}

	code, body := get(t, b.w.Handler(), "/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	if missing := contains(body,
		`b24q_calls_total{method="department.add",outcome="ok",portal="`+b.portal+`"} 1`,
		`asynq_queue_size{queue="`+b.queue+`"}`,
		`asynq_tasks_enqueued_total{queue="`+b.queue+`",state="completed"} 1`,
		`b24q_limiter_effective_rate{portal="`+b.portal+`"} 50`,
		"go_goroutines", "process_",
	); len(missing) > 0 {
		t.Errorf("/metrics lacks %q", missing)
	}
	secret := b.sim.Config().WebhookSecret
	if strings.Contains(body, secret) {
		t.Error("/metrics contains the webhook secret")
	}

	if err, took := stop(); err != nil {
		t.Fatalf("Run: %v (after %s)", err, took)
	}
	logs := b.logs.String()
	if strings.Contains(logs, secret) {
		t.Error("logs contain the webhook secret")
	}
	if missing := contains(logs, `"msg":"worker starting"`, `"portals":["`+b.portal+`"]`, `"msg":"task done"`, `"msg":"worker stopped"`); len(missing) > 0 {
		t.Errorf("logs lack %q:\n%s", missing, logs)
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	tests := []struct {
		name     string
		redisURL string
		code     int
		status   string
	}{
		{"redis answers", testRedisURL, http.StatusOK, "ok"},
		{"redis port closed", deadRedisURL(t), http.StatusServiceUnavailable, "redis unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig("default", "http://127.0.0.1:1/rest/1/secretsecret/")
			cfg.Redis.URL = tt.redisURL
			w, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Close() })
			start := time.Now()
			code, body := get(t, w.Handler(), "/healthz", "", "")
			if took := time.Since(start); took > 2*HealthTimeout {
				t.Errorf("/healthz took %s", took)
			}
			var got struct{ Status string }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("/healthz body %q: %v", body, err)
			}
			if code != tt.code || got.Status != tt.status {
				t.Fatalf("/healthz = %d %q, want %d %q", code, got.Status, tt.code, tt.status)
			}
		})
	}
}

// TestRunWaitsForRedis: with Redis away at start, Run serves the side port
// (health 503), logs a clear error, keeps retrying and exits cleanly on
// cancellation instead of crashing.
func TestRunWaitsForRedis(t *testing.T) {
	t.Parallel()
	logs := &testutil.SyncBuffer{}
	cfg := baseConfig("default", "http://127.0.0.1:1/rest/1/secretsecret/")
	cfg.Redis.URL = deadRedisURL(t)
	cfg.Listen = "127.0.0.1:0"
	w, err := New(cfg, NewLogger(logs, cfg.Level()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(cancel)

	deadline := time.Now().Add(10 * time.Second)
	for w.Addr() == nil || !strings.Contains(logs.String(), "redis unavailable at start") {
		if time.Now().After(deadline) {
			t.Fatalf("no side port or no error logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + w.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz while Redis is away: %d, want 503", resp.StatusCode)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned while waiting for Redis: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if strings.Contains(logs.String(), "secretsecret") {
		t.Error("logs contain the webhook secret")
	}
}

func TestMonitoringAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, func(c *config.Worker) {
		c.MonitorUser, c.MonitorPassword = "ops", "s3cret-pass"
	})
	tests := []struct {
		path, user, pass string
		want             int
	}{
		{"/monitoring/", "", "", http.StatusUnauthorized},
		{"/monitoring/", "ops", "wrong", http.StatusUnauthorized},
		{"/monitoring/", "wrong", "s3cret-pass", http.StatusUnauthorized},
		{"/monitoring/", "ops", "s3cret-pass", http.StatusOK},
		{"/monitoring/api/queues", "", "", http.StatusUnauthorized},
		{"/monitoring/api/queues", "ops", "s3cret-pass", http.StatusOK},
		// The enqueue API is mounted by New behind the same auth.
		{"/v1/imports/unknown", "", "", http.StatusUnauthorized},
		{"/v1/imports/unknown", "ops", "s3cret-pass", http.StatusNotFound},
		// Health and metrics stay open for probes and scrapers.
		{"/healthz", "", "", http.StatusOK},
		{"/metrics", "", "", http.StatusOK},
	}
	for _, tt := range tests {
		code, body := get(t, b.w.Handler(), tt.path, tt.user, tt.pass)
		if code != tt.want {
			t.Errorf("GET %s as %q/%q: %d, want %d", tt.path, tt.user, tt.pass, code, tt.want)
		}
		if strings.Contains(body, "s3cret-pass") {
			t.Errorf("GET %s: body contains the password", tt.path)
		}
	}
}

// TestMonitoringAPI: the dashboard's API lists the worker's queue and shows
// payloads through the redacting formatter.
func TestMonitoringAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, nil)
	// A producer that put a credential in a payload: the dashboard hides it.
	secret := b.sim.Config().WebhookSecret
	task := asynq.NewTask(tasks.TypeDepartmentCreate,
		[]byte(`{"portal":"`+b.portal+`","name":"X","parent":1,"webhook_url":"`+b.sim.WebhookURL()+`","note":"`+b.sim.WebhookURL()+`"}`),
		asynq.Queue(b.queue))
	info, err := b.client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, b.w.Handler(), "/monitoring/api/queues", "", "")
	if code != http.StatusOK || !strings.Contains(body, `"`+b.queue+`"`) {
		t.Fatalf("/monitoring/api/queues: %d %s", code, body)
	}
	code, body = get(t, b.w.Handler(), "/monitoring/api/queues/"+b.queue+"/tasks/"+info.ID, "", "")
	if code != http.StatusOK || !strings.Contains(body, info.ID) {
		t.Fatalf("task API: %d %s", code, body)
	}
	if strings.Contains(body, secret) {
		t.Errorf("dashboard shows the webhook secret: %s", body)
	}
	if !strings.Contains(body, `\"name\": \"X\"`) {
		t.Errorf("dashboard payload lacks the department name: %s", body)
	}
	// Without credentials the dashboard is read-only.
	req := httptest.NewRequest(http.MethodDelete, "/monitoring/api/queues/"+b.queue+"/pending_tasks/"+info.ID, nil)
	rec := httptest.NewRecorder()
	b.w.Handler().ServeHTTP(rec, req)
	if rec.Code < 400 {
		t.Errorf("DELETE through a read-only dashboard: %d", rec.Code)
	}
	if _, err := b.insp.GetTaskInfo(b.queue, info.ID); err != nil {
		t.Errorf("task gone after a read-only DELETE: %v", err)
	}
}

// TestGracefulShutdown cancels Run while a slow call runs: Run returns
// within the shutdown timeout (plus asynq's bookkeeping) and the task is not
// lost: done, or back in the queue.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{Latency: 4 * time.Second}, func(c *config.Worker) {
		c.ShutdownTimeout = time.Second
	})
	stop := b.run(t)
	task, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{Portal: b.portal, Name: "Slow", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	b.waitTask(t, info.ID, "active", func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateActive })
	time.Sleep(200 * time.Millisecond) // let the call reach the simulator
	err, took := stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if limit := b.cfg.ShutdownTimeout + 2*time.Second; took > limit {
		t.Errorf("Run returned %s after cancellation, want < %s", took, limit)
	}
	got, err := b.insp.GetTaskInfo(b.queue, info.ID)
	if err != nil {
		t.Fatalf("task lost: %v", err)
	}
	t.Logf("task state after shutdown: %s", got.State)
	switch got.State {
	case asynq.TaskStateCompleted, asynq.TaskStatePending, asynq.TaskStateRetry, asynq.TaskStateScheduled:
	default:
		t.Fatalf("task state after shutdown: %s, want completed or back in the queue", got.State)
	}
	if missing := contains(b.logs.String(), "worker stopping", "worker stopped"); len(missing) > 0 {
		t.Errorf("logs lack %q", missing)
	}

	// A restarted worker finishes the task, creating the department once.
	w2, err := New(b.cfg, NewLogger(b.logs, b.cfg.Level()), WithPrefix(b.prefix))
	if err != nil {
		t.Fatal(err)
	}
	b.w = w2
	b.run(t)
	b.waitTask(t, info.ID, "completed", func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateCompleted })
	n := 0
	for _, d := range b.sim.Departments() {
		if d.Name == "Slow" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d departments named Slow, want 1", n)
	}
}

func TestNewChecksSafety(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(*config.Worker)
		wantErr string
	}{
		{"loopback without credentials", func(c *config.Worker) { c.Listen = "127.0.0.1:0" }, ""},
		{"ipv6 loopback", func(c *config.Worker) { c.Listen = "[::1]:8080" }, ""},
		{"localhost", func(c *config.Worker) { c.Listen = "localhost:8080" }, ""},
		{"side port off", func(c *config.Worker) { c.Listen = "" }, ""},
		{"every interface without credentials", func(c *config.Worker) { c.Listen = ":8080" }, "not loopback"},
		{"public address without credentials", func(c *config.Worker) { c.Listen = "0.0.0.0:8080" }, "not loopback"},
		{"public address with credentials", func(c *config.Worker) {
			c.Listen, c.MonitorUser, c.MonitorPassword = "0.0.0.0:8080", "ops", "pw-secret"
		}, ""},
		{"user without password", func(c *config.Worker) { c.MonitorUser = "ops" }, "set together"},
		{"no portal", func(c *config.Worker) { c.Portals = nil }, "no portal"},
		{"bad redis URL", func(c *config.Worker) { c.Redis.URL = "mysql://u:pw-secret@h/0" }, "unsupported scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig("default", "https://example.bitrix24.ru/rest/1/hooksecret123/")
			tt.edit(&cfg)
			w, err := New(cfg, nil)
			if w != nil {
				t.Cleanup(func() { _ = w.Close() })
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error %v, want one containing %q", err, tt.wantErr)
			case err != nil && (strings.Contains(err.Error(), "pw-secret") || strings.Contains(err.Error(), "hooksecret123")):
				t.Fatalf("error contains a secret: %v", err)
			}
		})
	}
}

// TestQueues: one queue per portal, equal weights; OAuth portals build.
func TestQueues(t *testing.T) {
	t.Parallel()
	cfg := baseConfig("acme", "https://acme.bitrix24.ru/rest/1/hooksecret123/")
	cfg.Portals = append(cfg.Portals, config.Portal{
		Name:   "beta",
		OAuth:  &config.OAuth{PortalURL: "https://beta.bitrix24.de/", ClientID: "app.1", ClientSecret: "csecret", AccessToken: "atoken", RefreshToken: "rtoken"},
		Limits: cfg.Defaults,
	})
	w, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	got := w.Queues()
	want := map[string]int{"b24:acme": 1, "b24:beta": 1}
	if len(got) != len(want) || got["b24:acme"] != 1 || got["b24:beta"] != 1 {
		t.Fatalf("Queues() = %v, want %v", got, want)
	}
	for _, s := range []string{"hooksecret123", "csecret", "atoken", "rtoken"} {
		found := false
		for _, have := range w.secrets {
			found = found || have == s
		}
		if !found {
			t.Errorf("scrubber does not know secret %q", s)
		}
	}
}
