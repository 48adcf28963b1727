package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/internal/fleet"
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
	bad := writeFile(t, "bad.json", `{"webhook_url": "`+secret+`"}`)
	// expect runs the command and checks its exit code and that its output
	// holds each of want and never the secret.
	expect := func(wantCode int, args []string, want ...string) string {
		t.Helper()
		code, out, errOut := f.run(args...)
		if code != wantCode || strings.Contains(out+errOut, secret) {
			t.Errorf("%q: exit %d, want %d; stdout %q stderr %q", args, code, wantCode, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out+errOut, w) {
				t.Errorf("%q: output lacks %q: %s%s", args, w, out, errOut)
			}
		}
		return out
	}
	expect(cli.ExitOK, []string{"portal", "add", f.portal, entry}, "portal "+f.portal+" registered (webhook, acme.bitrix24.ru)")
	expect(cli.ExitOK, []string{"portal", "add", f.portal, entry}, "registration replaced")
	expect(cli.ExitUsage, []string{"portal", "add", "acme2", bad}, "webhook_url")

	lim := limiter.New(f.rdb, limiter.Config{}, limiter.WithPrefix(f.app.Prefix))
	t.Cleanup(func() { _ = lim.Close() })
	if _, err := lim.MarkUnavailable(context.Background(), f.portal, "department.add", "INVALID_CREDENTIALS", "Invalid request credentials"); err != nil {
		t.Fatal(err)
	}
	expect(cli.ExitFailure, []string{"portal", "status", f.portal}, "unavailable: INVALID_CREDENTIALS", "to fix:", "enqueue portal resume "+f.portal)
	out := expect(cli.ExitFailure, []string{"portal", "list", "--json"})
	var list struct {
		Portals []fleet.PortalStatus `json:"portals"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Portals) != 1 || list.Portals[0].Source != fleet.SourceRegistered ||
		list.Portals[0].Available || list.Portals[0].Unavailable.Code != "INVALID_CREDENTIALS" {
		t.Errorf("list --json: %s (%v)", out, err)
	}
	expect(cli.ExitOK, []string{"portal", "resume", f.portal}, "resumed")
	expect(cli.ExitOK, []string{"portal", "status", f.portal}, "available")
	expect(cli.ExitOK, []string{"portal", "remove", f.portal}, "removed")
	expect(cli.ExitFailure, []string{"portal", "status", f.portal}, "no such portal")
	expect(cli.ExitUsage, []string{"portal", "add", "x"}, "add: missing FILE")
	expect(cli.ExitUsage, []string{"portal", "add"}, "add: missing NAME FILE")
	for _, args := range [][]string{{"portal"}, {"portal", "fly"}, {"portal", "remove"}} {
		expect(cli.ExitUsage, args)
	}
	// A registration too large is refused whole, not cut and misread.
	huge := writeFile(t, "huge.json", `{"webhook_url": "https://acme.bitrix24.ru/rest/1/`+secret+`/", "x": "`+strings.Repeat("a", 70<<10)+`"}`)
	expect(cli.ExitUsage, []string{"portal", "add", "acme3", huge}, "larger than 64 KiB")
	// The fleet settings are read as the workers read them.
	f.env["WORKER_PORTAL_REPLICAS"] = "-1"
	expect(cli.ExitUsage, []string{"portal", "list"}, "WORKER_PORTAL_REPLICAS -1: must be 0 (every worker) or more")
}
