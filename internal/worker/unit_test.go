package worker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/internal/testutil"
)

func TestFormatRedacted(t *testing.T) {
	t.Parallel()
	hook := "https://acme.bitrix24.ru/rest/1/hooksecret123/"
	tests := []struct {
		name    string
		in      string
		want    []string // substrings of the output
		notWant []string
	}{
		{
			name: "plain payload shown",
			in:   `{"portal":"acme","name":"Sales","parent":1}`,
			want: []string{`"portal": "acme"`, `"name": "Sales"`, `"parent": 1`},
		},
		{
			name:    "secret-looking fields dropped at any depth",
			in:      `{"name":"x","webhook_url":"` + hook + `","nested":{"access_token":"tok123456","Auth":"a1b2c3d4","list":[{"client_secret":"cs123456"}],"Password":"pw123456"}}`,
			want:    []string{`"name": "x"`, `"webhook_url": "***"`, `"access_token": "***"`},
			notWant: []string{"hooksecret123", "tok123456", "a1b2c3d4", "cs123456", "pw123456"},
		},
		{
			name:    "URLs in other fields redacted",
			in:      `{"note":"see ` + hook + ` now","list":["` + hook + `"]}`,
			want:    []string{"acme.bitrix24.ru/rest/1/***/"},
			notWant: []string{"hooksecret123"},
		},
		{
			name:    "not JSON hidden",
			in:      "raw " + hook,
			want:    []string{"not JSON: hidden"},
			notWant: []string{"hooksecret123"},
		},
		{name: "empty", in: "", want: []string{""}},
		{name: "result", in: `{"id":42,"adopted":true}`, want: []string{`"id": 42`, `"adopted": true`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, out := range []string{
				PayloadFormatter.FormatPayload("department:create", []byte(tt.in)),
				ResultFormatter.FormatResult("department:create", []byte(tt.in)),
			} {
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("output %q lacks %q", out, w)
					}
				}
				for _, nw := range tt.notWant {
					if strings.Contains(out, nw) {
						t.Errorf("output %q contains %q", out, nw)
					}
				}
			}
		})
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`{"error_message":"call https://h/rest/1/hooksecret123/x failed; token tok-abcdef"}`))
	})
	h := scrub(inner, []string{"hooksecret123", "tok-abcdef"})
	tests := []struct {
		path      string
		scrubbed  bool
		wantCode  int
		wantCType string
	}{
		{"/monitoring/api/queues/q/archived_tasks", true, http.StatusTeapot, "application/json"},
		{"/monitoring/static/main.js", false, http.StatusTeapot, "application/json"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		body := rec.Body.String()
		if rec.Code != tt.wantCode || rec.Header().Get("Content-Type") != tt.wantCType {
			t.Errorf("%s: %d %q, want %d %q", tt.path, rec.Code, rec.Header().Get("Content-Type"), tt.wantCode, tt.wantCType)
		}
		hasSecret := strings.Contains(body, "hooksecret123") || strings.Contains(body, "tok-abcdef")
		if hasSecret == tt.scrubbed {
			t.Errorf("%s: body %q (scrubbed want %t)", tt.path, body, tt.scrubbed)
		}
		if tt.scrubbed && strings.Count(body, "***") != 2 {
			t.Errorf("%s: body %q, want two *** marks", tt.path, body)
		}
	}
}

func TestAsynqLogger(t *testing.T) {
	t.Parallel()
	buf := &testutil.SyncBuffer{}
	l := newAsynqLogger(NewLogger(buf, slogLevel("info")))
	code := -1
	l.exit = func(c int) { code = c }
	l.Debug("hidden at info")
	l.Info("starting ", 3, " workers\n")
	l.Warn("w")
	l.Error("e")
	l.Fatal("boom")
	var lines []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("not a JSON line: %q", s)
		}
		lines = append(lines, m)
	}
	want := []struct{ level, msg string }{{"INFO", "starting 3 workers"}, {"WARN", "w"}, {"ERROR", "e"}, {"ERROR", "boom"}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if lines[i]["level"] != w.level || lines[i]["msg"] != w.msg || lines[i]["component"] != "asynq" {
			t.Errorf("line %d = %v, want level %s msg %q component asynq", i, lines[i], w.level, w.msg)
		}
	}
	if code != 1 {
		t.Errorf("Fatal exit code %d, want 1", code)
	}
}
