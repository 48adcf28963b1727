//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRegisteredPortalSecretsNeverLeak: portals registered while a worker
// runs (a webhook one with `enqueue portal add`, an OAuth one with POST
// /v1/portals) get their imports done without a restart, and their secrets
// (webhook code, client secret, the install tokens and every rotated one)
// are in the token store's keys of that portal and nowhere else: not in a
// log line, another Redis key, a metric, an API answer or a page, although
// the portal echoes its URL in error descriptions. Removing a portal
// deletes its secrets.
func TestRegisteredPortalSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t, append([]string{"--rate", "50", "--burst", "50", "--secret", webhookSecret,
		"--echo-url-rate", "0.1"}, oauthSimFlags(3*time.Second)...)...)
	env := workerEnv(r, nil, map[string]string{"WORKER_REGISTERED_ONLY": "true",
		"MONITOR_USER": monitorUser, "MONITOR_PASSWORD": monitorPass, "LOG_LEVEL": "debug"})
	w := startWorker(t, env)
	waitProcessing(t, w, 10*time.Second)

	var observed []string
	see := func(label, v string) { observed = append(observed, label+"\n"+v) }
	enq := enqueueEnv(r)

	entry := filepath.Join(t.TempDir(), "hook.json")
	if err := os.WriteFile(entry, []byte(`{"webhook_url": "`+s.WebhookURL+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runEnqueue(t, enq, "portal", "add", "hook", entry)
	see("enqueue portal add", out+errOut)
	if code != 0 {
		t.Fatalf("enqueue portal add: exit %d\n%s%s", code, out, errOut)
	}
	reg, _ := json.Marshal(map[string]any{"name": "app", "oauth": map[string]string{
		"portal_url": s.URL + "/", "client_id": "app.e2e", "client_secret": oauthClientSecret,
		"access_token": oauthAccess0, "refresh_token": oauthRefresh0, "token_endpoint": s.TokenEndpoint}})
	code, body, _ := do(t, http.MethodPost, w.URL(t, "/v1/portals"), monitorUser, monitorPass, "application/json", reg)
	see("POST /v1/portals", body)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/portals: %d %s", code, body)
	}

	for _, portal := range []string{"hook", "app"} {
		tr := genTree(t, 30, 3)
		out, errOut, code := runEnqueue(t, enq, "import", tr.Path, "--portal", portal, "--wait")
		see("enqueue import --portal "+portal, out+errOut)
		if code != 0 {
			t.Fatalf("import on the registered portal %s: exit %d\n%s%s", portal, code, out, errOut)
		}
	}
	time.Sleep(4 * time.Second) // one more token rotation

	for _, p := range []string{"/v1/portals", "/v1/portals/hook", "/v1/portals/app", "/portals/?format=json", "/portals/",
		"/imports/?format=json", "/monitoring/api/queues", "/monitoring/api/queues/b24:app/completed_tasks?pageSize=1000",
		"/monitoring/api/queues/b24:hook/completed_tasks?pageSize=1000"} {
		code, body := httpGet(t, w.URL(t, p), monitorUser, monitorPass)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
		}
		see(p, body)
	}
	_, metrics := httpGet(t, w.URL(t, "/metrics"), "", "")
	see("/metrics", metrics)
	out, errOut, _ = runEnqueue(t, enq, "portal", "list", "--json")
	see("enqueue portal list", out+errOut)

	// The token store's keys hold the secrets; no other key may.
	store := map[string]string{"b24q:{hook}:credential": webhookSecret, "b24q:{app}:credential": oauthClientSecret, "b24q:{app}:oauth": ""}
	dump := redisDump(t, r.Client())
	for k, v := range dump {
		if _, ok := store[k]; !ok {
			see("redis "+k, k+"\n"+v)
		}
	}
	for k, secret := range store {
		if v, ok := dump[k]; !ok || !strings.Contains(v, secret) {
			t.Errorf("token store key %s does not hold its secret (present %t)", k, ok)
		}
	}
	needles := map[string]string{
		"webhook secret": webhookSecret, "client secret": oauthClientSecret,
		"install access token": oauthAccess0, "install refresh token": oauthRefresh0,
		"monitor password": monitorPass, "webhook URL with code": s.WebhookURL,
	}
	for i, tok := range hex32.FindAllString(dump["b24q:{app}:oauth"], -1) {
		needles["current token "+string(rune('0'+i))] = tok
	}
	see("worker stdout", w.Stdout())
	see("worker stderr", w.Stderr())
	if s.Stats(t).Refreshes == 0 {
		t.Error("no token refresh happened: the rotated tokens were not exercised")
	}
	checkEchoesObserved(t, s, observed)
	scanForSecrets(t, observed, needles)

	code, body, _ = do(t, http.MethodDelete, w.URL(t, "/v1/portals/hook"), monitorUser, monitorPass, "", nil)
	if code != http.StatusOK {
		t.Errorf("DELETE /v1/portals/hook: %d %s", code, body)
	}
	if n, _ := r.Client().Exists(t.Context(), "b24q:{hook}:credential").Result(); n != 0 {
		t.Error("the removed portal's credential is still stored")
	}
}
