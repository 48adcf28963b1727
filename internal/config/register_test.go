package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// A registration is validated by the portals file's rules, names the
// problem, and never shows a secret.
func TestParsePortal(t *testing.T) {
	t.Parallel()
	const secret = "regs3cr3tc0de"
	def := Limits{}
	tests := []struct {
		name, arg, body string
		want            []string // problems; none: valid
	}{
		{"webhook", "acme", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/", "rate": 5}`, nil},
		{"name in body", "", `{"name": "acme", "webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/"}`, nil},
		{"oauth", "beta", `{"oauth": {"portal_url": "https://beta.bitrix24.de", "client_id": "app.1", "client_secret": "` + secret + `", "access_token": "a", "refresh_token": "r"}}`, nil},
		{"two names", "acme", `{"name": "other", "webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/"}`, []string{`names another portal, "other"`}},
		{"bad name", "Acme!", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/"}`, []string{`portal name "Acme!" must match`}},
		{"no name", "", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/"}`, []string{`portal name "" must match`}},
		{"empty", "acme", ``, []string{"the body is empty"}},
		{"both", "acme", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/", "oauth": {"client_id": "x"}}`, []string{"exactly one of webhook_url and oauth"}},
		{"unknown field", "acme", `{"webhook": "https://acme.bitrix24.ru/rest/1/` + secret + `/"}`, []string{`field webhook not found`}},
		{"URL as a key", "acme", `{"https://acme.bitrix24.ru/rest/1/` + secret + `/": 1}`, []string{"an unknown key (not shown"}},
		{"query in portal_url", "beta", `{"oauth": {"portal_url": "https://beta.bitrix24.de/?auth=` + secret + `", "client_id": "a", "client_secret": "b", "access_token": "c", "refresh_token": "d"}}`, []string{"must not contain a ?query"}},
		{"plain http", "acme", `{"webhook_url": "http://acme.bitrix24.ru/rest/1/` + secret + `/"}`, []string{"https"}},
		{"bare secret", "acme", `{"webhook_url": "` + secret + `"}`, []string{"not shown"}},
		{"env reference", "acme", `{"webhook_url": "${ACME_HOOK}"}`, []string{"B24_PORTALS_FILE only"}},
		{"bad limit", "acme", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/", "burst": 0}`, []string{"burst"}},
		{"wrong type", "acme", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/` + secret + `/", "rate": "` + secret + `"}`, []string{"cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePortal(tt.arg, []byte(tt.body), def, nil)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParsePortal: %v", err)
				}
				if p.Name == "" || (p.WebhookURL == "") == (p.OAuth == nil) {
					t.Fatalf("ParsePortal = %+v", p)
				}
				return
			}
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want *UsageError", err)
			}
			msg := ue.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("problems %q lack %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) {
				t.Errorf("problems show the secret: %q", msg)
			}
		})
	}
}

// LoadFleet reads the settings `enqueue portal` shares with the workers by
// the workers' rules and defaults.
func TestLoadFleet(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	f, err := LoadFleet(env(nil))
	if err != nil || f.PortalReplicas != 2 || len(f.InsecureHTTPHosts) != 0 {
		t.Errorf("defaults: %+v, %v", f, err)
	}
	f, err = LoadFleet(env(map[string]string{"B24_INSECURE_HTTP_HOSTS": " Sim , ,b24sim", "WORKER_PORTAL_REPLICAS": "0"}))
	if err != nil || f.PortalReplicas != 0 || strings.Join(f.InsecureHTTPHosts, ",") != "sim,b24sim" {
		t.Errorf("set: %+v, %v", f, err)
	}
	w, err := LoadWorker(nil, env(map[string]string{"B24_WEBHOOK_URL": "https://x.bitrix24.ru/rest/1/code/",
		"B24_INSECURE_HTTP_HOSTS": " Sim , ,b24sim", "WORKER_PORTAL_REPLICAS": "0"}))
	if err != nil || w.PortalReplicas != f.PortalReplicas || !slices.Equal(w.InsecureHTTPHosts, f.InsecureHTTPHosts) {
		t.Errorf("the worker reads %d %q, enqueue portal %d %q (%v)", w.PortalReplicas, w.InsecureHTTPHosts, f.PortalReplicas, f.InsecureHTTPHosts, err)
	}
	for _, bad := range []string{"-1", "two"} {
		var ue *UsageError
		if _, err := LoadFleet(env(map[string]string{"WORKER_PORTAL_REPLICAS": bad})); !errors.As(err, &ue) || !strings.Contains(err.Error(), "WORKER_PORTAL_REPLICAS") {
			t.Errorf("WORKER_PORTAL_REPLICAS=%s: %v, want a *UsageError naming it", bad, err)
		}
	}
}
