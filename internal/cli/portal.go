package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
)

const portalHelp = `Usage: enqueue portal add NAME FILE|-
       enqueue portal list [--json]
       enqueue portal status [NAME] [--json]
       enqueue portal remove NAME [--force]
       enqueue portal resume NAME

Manage the portals the fleet serves besides those of the workers' own
configuration: a Bitrix24 app registers each customer portal when its install
event delivers the tokens, and every worker serves it within seconds, without
a restart.

  add      register NAME (or replace its registration: new tokens or limits)
           from FILE, one B24_PORTALS_FILE entry as JSON or YAML; "-" reads
           it from standard input, so that no secret shows in the process
           list. The secrets are stored in the fleet's token store only and
           never printed.
  list     every portal: configured or registered, with work or idle, and
           whether it is available
  status   the same for one portal, with why it is unavailable since when,
           the next probe and what to fix (all portals without NAME)
  remove   unregister NAME; refused while its queue has tasks unless --force,
           which deletes them
  resume   make NAME available again at once after fixing its credential
           (workers also probe it by themselves) and wake its waiting tasks

` + config.RegistrationHelp + `

Exit code 0 when done (status and list: when every portal shown is
available), 1 when a portal is unavailable, unknown, still has tasks, or
Redis failed, 2 on a usage or validation error.

Examples:
  echo '{"webhook_url": "https://acme.bitrix24.ru/rest/1/SECRET/", "rate": 5}' | enqueue portal add acme -
  enqueue portal add beta beta-install.json
  enqueue portal status acme
  enqueue portal resume acme

Environment: as below, and, read as the workers read them,
B24_INSECURE_HTTP_HOSTS (hosts besides loopback a registration may reach over
plain http://) and WORKER_PORTAL_REPLICAS (which workers a status names as
running a portal's queue).

` + envHelp

// portalCommands are the words after "enqueue portal".
var portalCommands = []string{"add", "list", "status", "remove", "resume"}

func (e *env) portal(ctx context.Context, args []string) int {
	const cmd = "portal"
	fs := newFlags(cmd)
	asJSON := fs.Bool("json", false, "")
	force := fs.Bool("force", false, "")
	pos, code, ok := e.parse(fs, cmd, portalHelp, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return e.usageErr(cmd, "missing what to do: %s", strings.Join(portalCommands, ", "))
	}
	verb, rest := pos[0], pos[1:]
	want := map[string][2]int{"add": {2, 2}, "list": {0, 0}, "status": {0, 1}, "remove": {1, 1}, "resume": {1, 1}}
	n, known := want[verb]
	switch {
	case !known:
		return e.usageErr(cmd, "unknown portal command %q; use %s", verb, strings.Join(portalCommands, ", "))
	case len(rest) < n[0]:
		return e.usageErr(cmd, "%s: missing %s", verb, strings.Join([]string{"NAME", "FILE"}[len(rest):n[0]], " "))
	case len(rest) > n[1]:
		return e.usageErr(cmd, "%s: unexpected argument %q", verb, rest[n[1]])
	}
	fl, err := config.LoadFleet(e.getenv)
	if err != nil {
		return e.portalFail(err)
	}
	var body []byte
	if verb == "add" {
		var err error
		if body, err = e.readEntry(rest[1]); err != nil {
			return e.usageErr(cmd, "add: %v", err)
		}
	}
	conn, code := e.connect(ctx, cmd)
	if conn == nil {
		return code
	}
	defer conn.Close()
	admin := fleet.NewAdmin(conn.rdb, e.app.Prefix, fl.PortalReplicas, fl.InsecureHTTPHosts)
	switch verb {
	case "add":
		return e.portalAdd(ctx, admin, rest[0], body)
	case "remove":
		return e.portalRemove(ctx, admin, rest[0], *force)
	case "resume":
		return e.portalResume(ctx, admin, rest[0])
	}
	var list []fleet.PortalStatus
	if len(rest) == 1 {
		var st fleet.PortalStatus
		st, err = admin.Status(ctx, rest[0])
		list = []fleet.PortalStatus{st}
	} else {
		list, err = admin.List(ctx)
	}
	if err != nil {
		return e.portalFail(err)
	}
	return e.printPortals(list, *asJSON, len(rest) == 1)
}

// readEntry reads a registration from path, or standard input for "-".
func (e *env) readEntry(path string) ([]byte, error) {
	var r io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	if r == nil {
		return nil, errors.New("no standard input")
	}
	data, err := io.ReadAll(io.LimitReader(r, config.MaxRegistration+1))
	if err == nil && len(data) > config.MaxRegistration {
		err = fmt.Errorf("the registration is larger than %d KiB", config.MaxRegistration>>10)
	}
	return data, err
}

func (e *env) portalAdd(ctx context.Context, admin *fleet.Admin, name string, body []byte) int {
	rec, created, err := admin.Register(ctx, name, body)
	if err != nil {
		return e.portalFail(err)
	}
	what := "registered"
	if !created {
		what = "registration replaced"
	}
	fmt.Fprintf(e.stdout, "portal %s %s (%s, %s); workers serve it within seconds\n", rec.Name, what, rec.Auth, rec.Host)
	return ExitOK
}

func (e *env) portalRemove(ctx context.Context, admin *fleet.Admin, name string, force bool) int {
	n, err := admin.Remove(ctx, name, force)
	if err != nil {
		return e.portalFail(err)
	}
	fmt.Fprintf(e.stdout, "portal %s removed", name)
	if n > 0 {
		fmt.Fprintf(e.stdout, "; %d tasks deleted", n)
	}
	fmt.Fprintln(e.stdout)
	return ExitOK
}

func (e *env) portalResume(ctx context.Context, admin *fleet.Admin, name string) int {
	was, err := admin.Resume(ctx, name)
	if err != nil {
		return e.portalFail(err)
	}
	if was {
		fmt.Fprintf(e.stdout, "portal %s resumed: its waiting tasks run again now\n", name)
	} else {
		fmt.Fprintf(e.stdout, "portal %s was available; its waiting tasks were woken\n", name)
	}
	return ExitOK
}

// portalFail prints an error of fleet.Admin: a registration's problems one
// per line (exit 2), anything else on one line (exit 1).
func (e *env) portalFail(err error) int {
	var ue *config.UsageError
	if errors.As(err, &ue) {
		for _, p := range ue.Problems {
			fmt.Fprintf(e.stderr, "enqueue portal: %s\n", p)
		}
		return ExitUsage
	}
	return e.fail("portal", err)
}

// printPortals prints list as a table, or each portal in detail (one), or
// as JSON; the exit code is 1 when one of them is unavailable.
func (e *env) printPortals(list []fleet.PortalStatus, asJSON, one bool) int {
	code := ExitOK
	for _, st := range list {
		if !st.Available {
			code = ExitFailure
		}
	}
	switch {
	case asJSON && one:
		if c, ok := e.printJSON("portal", list[0]); !ok {
			return c
		}
		return code
	case asJSON:
		if c, ok := e.printJSON("portal", map[string]any{"portals": list}); !ok {
			return c
		}
		return code
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORTAL\tSOURCE\tWORK\tSTATE")
	for _, st := range list {
		work := "idle"
		if st.Active {
			work = "active"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st.Name, st.Source, work, portalState(st))
	}
	_ = tw.Flush()
	for _, st := range list {
		if u := st.Unavailable; u != nil && (one || len(list) < 50) {
			fmt.Fprintf(e.stdout, "\n%s: unavailable since %s: %s", st.Name, u.Since.Local().Format(time.DateTime), u.Code)
			if u.Description != "" {
				fmt.Fprintf(e.stdout, ": %s", u.Description)
			}
			fmt.Fprintln(e.stdout)
			if !u.NextProbe.IsZero() {
				fmt.Fprintf(e.stdout, "  next probe %s (%d so far); tasks wait, none fails\n", u.NextProbe.Local().Format(time.TimeOnly), u.Probes)
			}
			if u.Fix != "" {
				fmt.Fprintf(e.stdout, "  to fix: %s; then: enqueue portal resume %s\n", u.Fix, st.Name)
			}
		}
	}
	return code
}

func portalState(st fleet.PortalStatus) string {
	if st.Available {
		return "available"
	}
	return "unavailable: " + st.Unavailable.Code
}
