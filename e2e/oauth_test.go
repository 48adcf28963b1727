//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Known OAuth credentials the simulator is started with (--client-secret,
// --access-token, --refresh-token), so tests can grep for them.
const (
	oauthClientSecret = "cs-e2e-9f1b2c3d4e5f60718293a4b5"
	oauthAccess0      = "at-e2e-0a1b2c3d4e5f60718293a4b5"
	oauthRefresh0     = "rt-e2e-5f4e3d2c1b0a9f8e7d6c5b4a"
)

// oauthSimFlags are the simulator flags setting the known credentials.
func oauthSimFlags(ttl time.Duration) []string {
	return []string{"--client-id", "app.e2e", "--client-secret", oauthClientSecret,
		"--access-token", oauthAccess0, "--refresh-token", oauthRefresh0, "--access-ttl", ttl.String()}
}

// portalsFile writes a B24_PORTALS_FILE naming portal oauthName as an
// OAuth portal of s (secrets as ${...} references to the variables it adds
// to env) and, when webhookName is not empty, portal webhookName with s's
// webhook (${E2E_WEBHOOK}). It sets B24_PORTALS_FILE in env and removes
// B24_WEBHOOK_URL.
func portalsFile(t testing.TB, env map[string]string, s *simProc, oauthName, webhookName string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("portals:\n")
	fmt.Fprintf(&b, "  %s:\n    oauth:\n      portal_url: %s/\n      client_id: app.e2e\n", oauthName, s.URL)
	b.WriteString("      client_secret: ${E2E_CLIENT_SECRET}\n      access_token: ${E2E_ACCESS}\n      refresh_token: ${E2E_REFRESH}\n")
	fmt.Fprintf(&b, "      token_endpoint: %s\n", s.TokenEndpoint)
	if webhookName != "" {
		fmt.Fprintf(&b, "  %s:\n    webhook_url: ${E2E_WEBHOOK}\n", webhookName)
		env["E2E_WEBHOOK"] = s.WebhookURL
	}
	path := filepath.Join(t.TempDir(), "portals.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(env, "B24_WEBHOOK_URL")
	env["B24_PORTALS_FILE"] = path
	env["E2E_CLIENT_SECRET"] = oauthClientSecret
	env["E2E_ACCESS"] = oauthAccess0
	env["E2E_REFRESH"] = oauthRefresh0
}

// TestOAuthRefresh: the access token expires every 6 s during a ~25 s
// import at 2 requests/s (the 30 s TTL and 2-minute import scaled
// by 1/5). Every expiry is met by one refresh and a retry: no item fails.
// The simulator rotates refresh tokens (an old one gets invalid_grant), and
// the worker persists the newest pair in Redis, so a worker restarted with
// the now stale tokens of its portals file still authenticates.
func TestOAuthRefresh(t *testing.T) {
	t.Parallel()
	const ttl = 6 * time.Second
	r := startRedis(t)
	s := startSim(t, append([]string{"--rate", "2", "--burst", "5"}, oauthSimFlags(ttl)...)...)
	env := workerEnv(r, s, map[string]string{"B24_RATE": "2", "B24_BURST": "5", "B24_BATCH": "0"})
	portalsFile(t, env, s, "default", "")
	w := startWorker(t, env)
	waitProcessing(t, w, 10*time.Second)

	tr := genTree(t, 50, 3)
	began := time.Now()
	id := submitImport(t, r, tr.Path)
	st := waitDone(t, r, id, 90*time.Second)
	took := time.Since(began)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)
	refreshes := s.Stats(t).Refreshes
	t.Logf("import took %v with a %v token TTL: %d refreshes", took.Round(time.Second), ttl, refreshes)
	if took < 2*ttl {
		t.Errorf("import took %v, less than two token lifetimes: the test proves little", took)
	}
	if refreshes == 0 {
		t.Fatal("no refresh during the import")
	}

	w.Signal(t, syscall.SIGTERM)
	if code, ok := w.Wait(15 * time.Second); !ok || code != 0 {
		t.Fatalf("worker stop: exit %d (exited %v)", code, ok)
	}
	time.Sleep(ttl + time.Second) // the stored access token expires too
	w2 := startWorker(t, env)     // same stale tokens in the portals file
	waitProcessing(t, w2, 10*time.Second)
	out, errOut, code := runEnqueue(t, enqueueEnv(r), "department", "--name", "After OAuth restart", "--parent", "1")
	if code != 0 {
		t.Fatalf("enqueue: %d %s%s", code, out, errOut)
	}
	if !waitFor(20*time.Second, func() bool {
		for _, d := range s.Departments(t) {
			if d.Name == "After OAuth restart" {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the restarted worker did not create a department:\n%s", tail(w2.Stderr(), 3000))
	}
	if got := s.Stats(t).Refreshes; got <= refreshes {
		t.Errorf("no refresh after the restart (%d → %d)", refreshes, got)
	}
	if n := strings.Count(s.Stderr(), `"outcome":"invalid_grant"`); n != 0 {
		t.Errorf("%d refreshes with a stale refresh token (invalid_grant)", n)
	}
	checkImported(t, s, tr, 1)
}
