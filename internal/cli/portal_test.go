package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/limiter"
)

// enqueue portal add|list|status|resume|remove: a registration from a file
// never prints its secret; an unavailable portal is shown with why and
// what to fix (exit 1) until resumed; a bad registration names the
// problem (exit 2).
func TestPortalCommands(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	const secret = "clis3cr3tw3bh00k"
	entry := writeFile(t, "acme.json", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/`+secret+`/", "rate": 5}`)
	code, out, errOut := f.run("portal", "add", f.portal, entry)
	if code != cli.ExitOK || !strings.Contains(out, "portal "+f.portal+" registered (webhook, acme.bitrix24.ru)") || strings.Contains(out+errOut, secret) {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	if code, out, _ = f.run("portal", "add", f.portal, entry); code != cli.ExitOK || !strings.Contains(out, "registration replaced") {
		t.Errorf("add again: %d %q", code, out)
	}
	bad := writeFile(t, "bad.json", `{"webhook_url": "`+secret+`"}`)
	if code, out, errOut = f.run("portal", "add", "acme2", bad); code != cli.ExitUsage || !strings.Contains(errOut, "webhook_url") || strings.Contains(out+errOut, secret) {
		t.Errorf("bad registration: %d %q %q", code, out, errOut)
	}

	lim := limiter.New(f.rdb, limiter.Config{}, limiter.WithPrefix(f.app.Prefix))
	t.Cleanup(func() { _ = lim.Close() })
	if _, err := lim.MarkUnavailable(context.Background(), f.portal, "department.add", "INVALID_CREDENTIALS", "Invalid request credentials"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = f.run("portal", "status", f.portal)
	if code != cli.ExitFailure || !strings.Contains(out, "unavailable: INVALID_CREDENTIALS") || !strings.Contains(out, "to fix:") ||
		!strings.Contains(out, "enqueue portal resume "+f.portal) {
		t.Errorf("status of an unavailable portal: %d %q", code, out)
	}
	code, out, _ = f.run("portal", "list", "--json")
	var list struct {
		Portals []struct {
			Name        string `json:"name"`
			Source      string `json:"source"`
			Available   bool   `json:"available"`
			Unavailable *struct {
				Code string `json:"code"`
			} `json:"unavailable"`
		} `json:"portals"`
	}
	if code != cli.ExitFailure || json.Unmarshal([]byte(out), &list) != nil || len(list.Portals) != 1 ||
		list.Portals[0].Source != "registered" || list.Portals[0].Available || list.Portals[0].Unavailable.Code != "INVALID_CREDENTIALS" {
		t.Errorf("list --json: %d %s", code, out)
	}
	if code, out, _ = f.run("portal", "resume", f.portal); code != cli.ExitOK || !strings.Contains(out, "resumed") {
		t.Errorf("resume: %d %q", code, out)
	}
	if code, out, _ = f.run("portal", "status", f.portal); code != cli.ExitOK || !strings.Contains(out, "available") {
		t.Errorf("status after resume: %d %q", code, out)
	}
	if code, out, errOut = f.run("portal", "remove", f.portal); code != cli.ExitOK || !strings.Contains(out, "removed") {
		t.Errorf("remove: %d %q %q", code, out, errOut)
	}
	if code, _, errOut = f.run("portal", "status", f.portal); code != cli.ExitFailure || !strings.Contains(errOut, "no such portal") {
		t.Errorf("status of a removed portal: %d %q", code, errOut)
	}
	for _, args := range [][]string{{"portal"}, {"portal", "fly"}, {"portal", "add", "x"}, {"portal", "remove"}} {
		if code, _, _ := f.run(args...); code != cli.ExitUsage {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
