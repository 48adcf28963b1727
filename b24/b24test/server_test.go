package b24test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	add := map[string]any{"NAME": "Sales", "PARENT": 1}
	tests := []struct {
		name    string
		faults  Faults
		created int
		check   func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{"internal error before work", Faults{ErrorRate: 1}, 0, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 500 || !bytes.Contains(body, []byte(`"INTERNAL_SERVER_ERROR"`)) {
				t.Errorf("got %v %v %s", err, resp, body)
			}
		}},
		{"bad gateway before work", Faults{BadGatewayRate: 1}, 0, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 502 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte("<html>")) {
				t.Errorf("got %v %v %s", err, resp, body)
			}
		}},
		{"lost response after work", Faults{LostResponseRate: 1}, 1, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err == nil {
				t.Errorf("want a transport error, got %d %s", resp.StatusCode, body)
			}
		}},
		{"malformed 200 after work", Faults{MalformedRate: 1}, 1, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || json.Valid(body) || !bytes.HasPrefix(body, []byte("{")) {
				t.Errorf("got %v %v %s", err, resp, body)
			}
		}},
		{"slow answer after work", Faults{SlowRate: 1, SlowDelay: time.Hour}, 1, func(t *testing.T, resp *http.Response, body []byte, err error) {
			var ne interface{ Timeout() bool }
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("want a client timeout, got %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := setup(t, Config{Faults: tt.faults, Seed: 1})
			b, _ := json.Marshal(add)
			client := &http.Client{Timeout: 300 * time.Millisecond}
			resp, err := client.Post(s.WebhookURL()+"department.add", "application/json", bytes.NewReader(b))
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			tt.check(t, resp, body, err)
			if got := len(s.Departments()) - 1; got != tt.created {
				t.Errorf("created %d departments, want %d", got, tt.created)
			}
			if st := s.Stats(); st.Requests != 1 {
				t.Errorf("Requests %d, want 1", st.Requests)
			}
		})
	}
}

func TestFaultRatesAreSeededAndSwitchable(t *testing.T) {
	t.Parallel()
	run := func() []int {
		s, _ := setup(t, Config{Faults: Faults{ErrorRate: 0.5}, Seed: 42})
		var statuses []int
		for range 40 {
			statuses = append(statuses, call(t, s, "department.get", nil).status)
		}
		s.SetFaults(Faults{})
		for range 10 {
			wantOK(t, call(t, s, "department.get", nil))
		}
		return statuses
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	n500 := 0
	for _, s := range a {
		if s == 500 {
			n500++
		}
	}
	if n500 < 8 || n500 > 32 {
		t.Errorf("%d of 40 failed at rate 0.5", n500)
	}
}

func TestSimEndpoints(t *testing.T) {
	t.Parallel()
	s, clk := setup(t, Config{})
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "Sales", "PARENT": 1}))
	wantOK(t, call(t, s, "crm.automatedsolution.add", map[string]any{"fields": map[string]any{"title": "HR", "typeIds": []int{1}}}))

	var st Stats
	getJSON(t, s.URL+"/_sim/stats", &st)
	if st.Requests != 2 || st.DepartmentsCreated != 1 || st.Calls["department.add"]["ok"] != 1 {
		t.Errorf("stats %+v", st)
	}
	var depts []Department
	getJSON(t, s.URL+"/_sim/departments", &depts)
	if len(depts) != 2 || depts[1] != (Department{ID: 2, Name: "Sales", Sort: 500, Parent: 1}) {
		t.Errorf("departments %+v", depts)
	}
	var wps []Workplace
	getJSON(t, s.URL+"/_sim/workplaces/", &wps)
	if len(wps) != 1 || wps[0].Title != "HR" || len(wps[0].TypeIDs) != 1 {
		t.Errorf("workplaces %+v", wps)
	}

	resp, err := http.Post(s.URL+"/_sim/faults", "application/json", strings.NewReader(`{"error_rate":1,"slow_delay":"1s"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST faults: %v %v", err, resp)
	}
	resp.Body.Close()
	wantError(t, call(t, s, "department.get", nil), 500, "INTERNAL_SERVER_ERROR")
	resp, _ = http.Post(s.URL+"/_sim/faults", "application/json", strings.NewReader(`{"error_rate":2}`))
	if resp.StatusCode != 400 {
		t.Errorf("invalid faults: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp, _ = http.Post(s.URL+"/_sim/faults", "application/json", strings.NewReader(`{}`))
	resp.Body.Close()

	resp, _ = http.Post(s.URL+"/_sim/block?method=department.get&seconds=5", "", nil)
	if resp.StatusCode != 200 {
		t.Errorf("block: %d", resp.StatusCode)
	}
	resp.Body.Close()
	wantError(t, call(t, s, "department.get", nil), 429, "OPERATION_TIME_LIMIT")
	clk.Advance(5 * time.Second)
	wantOK(t, call(t, s, "department.get", nil))
	resp, _ = http.Post(s.URL+"/_sim/block?method=department.get", "", nil)
	if resp.StatusCode != 400 {
		t.Errorf("block without seconds: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestLogsNeverCarrySecrets(t *testing.T) {
	t.Parallel()
	var buf testutil.SyncBuffer
	s, _ := setup(t, Config{
		WebhookSecret: "webhook-secret-xyz",
		OAuth:         OAuthConfig{ClientSecret: "client-secret-xyz", AccessToken: "access-xyz", RefreshToken: "refresh-xyz"},
		Logger:        slog.New(slog.NewJSONHandler(&buf, nil)),
	})
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "A", "PARENT": 1}))
	postJSON(t, s.URL+"/rest/1/wrong-secret-xyz/department.get", nil)
	wantOK(t, postJSON(t, s.OAuthPortalURL()+"rest/department.get", map[string]any{"auth": "access-xyz"}))
	cfg := s.Config()
	wantOK(t, do(t, mustGet(t, s.TokenEndpoint()+"?grant_type=refresh_token&client_id="+cfg.OAuth.ClientID+"&client_secret=client-secret-xyz&refresh_token=refresh-xyz")))

	out := buf.String()
	for _, secret := range []string{"xyz"} {
		if strings.Contains(out, secret) {
			t.Errorf("log carries a secret: %s", out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want one line per request, got %d:\n%s", len(lines), out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["method"] != "department.add" || first["outcome"] != "ok" || first["status"] != float64(200) || first["latency"] == nil {
		t.Errorf("log line %v", first)
	}
	if !strings.Contains(lines[1], `"outcome":"NO_AUTH_FOUND"`) {
		t.Errorf("log line %s", lines[1])
	}
}

func TestStartAndClose(t *testing.T) {
	t.Parallel()
	s, err := Start(Config{WebhookSecret: "abc"}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.WebhookURL(), "http://127.0.0.1:") || !strings.HasSuffix(s.WebhookURL(), "/rest/1/abc/") {
		t.Errorf("WebhookURL %s", s.WebhookURL())
	}
	wantOK(t, call(t, s, "department.get", nil))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := http.Get(s.URL + "/_sim/stats"); err == nil {
		t.Error("server still answers after Close")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := Start(Config{Rate: -1, Burst: -2, WorkplaceCap: -1, Faults: Faults{ErrorRate: 1.5}}, "127.0.0.1:0")
	if err == nil {
		t.Fatal("want error")
	}
	for _, field := range []string{"Rate", "Burst", "WorkplaceCap", "Faults.ErrorRate"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	c := Config{}.WithDefaults()
	if c.Rate != 2 || c.Burst != 50 || c.OperatingLimit != 480*time.Second || c.OperatingWindow != 10*time.Minute ||
		c.CallCost != 50*time.Millisecond || c.WebhookUserID != 1 || len(c.WebhookSecret) < 16 || c.OAuth.AccessTTL != time.Hour {
		t.Errorf("defaults %+v", c)
	}
	if c2 := (Config{}).WithDefaults(); c2.WebhookSecret == c.WebhookSecret {
		t.Error("default secret is not random")
	}
}

func TestSeededObjectsExistButAreNotCounted(t *testing.T) {
	t.Parallel()
	p := New(Config{})
	sales := p.SeedDepartment(" Sales ", 1, 0, 7)
	if sales == 0 || p.SeedDepartment("X", 999, 0, 0) != 0 || p.SeedDepartment(" ", 1, 0, 0) != 0 {
		t.Fatalf("seed IDs wrong: sales %d", sales)
	}
	wp := p.SeedWorkplace("HR", 1, 2)
	ds, ws := p.Departments(), p.Workplaces()
	if len(ds) != 2 || ds[1] != (Department{ID: sales, Name: "Sales", Sort: 500, Parent: 1, Head: 7}) {
		t.Errorf("departments %+v", ds)
	}
	if len(ws) != 1 || ws[0].ID != wp || ws[0].Title != "HR" {
		t.Errorf("workplaces %+v", ws)
	}
	if st := p.Stats(); st.DepartmentsCreated != 0 || st.WorkplacesCreated != 0 || st.Requests != 0 {
		t.Errorf("seeding counted: %+v", st)
	}
}
