package b24test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

// t0 is aligned to 10 s so operating buckets of 10 s start at t0.
var t0 = time.Unix(1_736_927_300, 0).UTC()

// setup starts a portal with a fake clock at t0 and a generous bucket
// unless cfg says otherwise.
func setup(t *testing.T, cfg Config) (*Server, *testutil.Clock) {
	t.Helper()
	clk := testutil.NewClock(t0)
	cfg.Clock = clk.Now
	if cfg.Burst == 0 {
		cfg.Burst = 10_000
	}
	return NewServer(t, cfg), clk
}

// answer is a decoded reply.
type answer struct {
	status   int
	raw      []byte
	body     map[string]any
	location string
}

func (a answer) code() string { s, _ := a.body["error"].(string); return s }

func (a answer) desc() string { s, _ := a.body["error_description"].(string); return s }

func (a answer) timeBlock(t *testing.T) map[string]any {
	t.Helper()
	tb, ok := a.body["time"].(map[string]any)
	if !ok {
		t.Fatalf("no time block in %s", a.raw)
	}
	return tb
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	a := answer{status: resp.StatusCode, raw: raw}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return a
}

// call posts params as JSON to the webhook.
func call(t *testing.T, s *Server, method string, params any) answer {
	t.Helper()
	return postJSON(t, s.WebhookURL()+method, params)
}

func postJSON(t *testing.T, url string, params any) answer {
	t.Helper()
	b, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// callForm posts a form-encoded body to the webhook.
func callForm(t *testing.T, s *Server, method, form string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.WebhookURL()+method, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func wantOK(t *testing.T, a answer) {
	t.Helper()
	if a.status != http.StatusOK || a.body["error"] != nil {
		t.Fatalf("want 200 ok, got %d %s", a.status, a.raw)
	}
}

func wantError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.code() != code {
		t.Fatalf("want %d %s, got %d %s", status, code, a.status, a.raw)
	}
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("not a number: %#v", v)
	}
	return f
}
