package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/progress"
	"github.com/b24queue/b24queue/tasks"
)

const importHelp = `Usage: enqueue import FILE [--id IMPORT_ID] [--dry-run] [--plan [--json]] [--update]
                      [--on-conflict fail|first] [--wait] [--portal P]

Import an org structure: departments (parents before children) and digital
workplaces from a YAML (.yaml, .yml), JSON (.json) or CSV (.csv) file.

The whole file is validated first. If anything is wrong, every problem is
printed as FILE:LINE: message, nothing is enqueued and the exit code is 2.
Otherwise a worker first reads what the portal already holds and adopts every
department (same name under the same parent) and workplace (same title) that
exists; then the rest is created, each department as soon as its parent
exists. The import ID is printed; follow it with 'enqueue status'.

Running the same file again is safe, under the same or another --id, even
after Redis lost the import: what exists is adopted, never created twice. A
portal no running worker serves is refused while other portals are served;
--wait says when no worker serves the import's portal.

Flags:
  --id IMPORT_ID   import ID (letters, digits, '.', '_', '-'; at most 128)
                   (default: derived from the file's content, imp-<16 hex digits>)
  --dry-run        validate and print the file's shape (departments by depth,
                   roots, workplaces); enqueue nothing; Redis is not needed
  --plan           ask a worker to compare the file with what the portal holds
                   and print per item: create, exists (ID), differs (ID: what),
                   conflict (why); create nothing. Exit 1 when something is in
                   conflict (and --on-conflict is fail)
  --json           with --plan: print the plan as JSON, a stable interface:
                   {"portal": "...", "items": [{"key", "kind", "name", "action",
                   "id", "candidates", "changes", "reason"}], "totals": {...},
                   "requests": N}
  --update         also change adopted items whose fields differ from the file
                   (department SORT and head, workplace typeIds)
  --on-conflict P  an item matching several existing objects, or one only when
                   case is ignored: fail (default; the item and its subtree
                   fail, naming the IDs) or first (adopt the lowest ID)
  --wait           follow the import until it is finished: a progress bar on a
                   terminal, a line every 2 s otherwise; exit 1 if any item failed
  --portal P       portal name as configured on the worker (default $B24_PORTAL or "default")

File format (JSON; YAML has the same fields; CSV columns key,name,parent,parent_id,sort,head):
  {"departments": [
     {"key": "sales", "name": "Sales", "parent_id": 1, "sort": 100, "head": 7},
     {"key": "sales-eu", "name": "Sales EU", "parent": "sales"}],
   "workplaces": [{"key": "hr", "title": "HR", "type_ids": [1, 2]}]}
A department has exactly one of parent (a key in the file) or parent_id (an
existing department's ID in the portal: every portal has its root department,
usually 1, so parent_id 0 is refused). Two departments with the same name under
the same parent, or two workplaces with the same title, are refused (names are
compared trimmed and case-insensitively, as the portal does). YAML and JSON may
also nest departments in "children" lists.

Examples:
  enqueue import org.yaml --dry-run
  enqueue import org.yaml --plan
  enqueue import org.yaml --wait
  enqueue import org.yaml --update --wait
  enqueue import org.csv --id org-2024-06 --portal acme

` + envHelp

const statusHelp = `Usage: enqueue status IMPORT_ID [--json]

Show an import's progress: how many items are created, pending in the queue,
waiting for their parent to be created, and failed (with the reason), and the
IDs of the created items by key.

Exit code 0 when the import is known and no item failed, 1 when an item failed,
the import is unknown or Redis is unreachable, 2 on a usage error. When the
import is not finished and no running worker serves its portal, stderr says
"no worker is serving portal NAME".

Flags:
  --json   print the status as JSON, a stable interface:
           {"id": "...", "portal": "...", "done": false,
            "counts": {"total": 0, "created": 0, "pending": 0, "waiting": 0, "failed": 0},
            "created": {"KEY": ID, ...}, "failed": {"KEY": "reason", ...}}

Examples:
  enqueue status imp-3f2a9c0d1e4b5a69
  enqueue status org-2024-06 --json | jq '.counts'

` + envHelp

// importFlags are the flags of enqueue import.
type importFlags struct {
	id, onConflict, portal             string
	dryRun, wait, plan, asJSON, update bool
}

// check returns what is wrong with the flags together, or "".
func (fl importFlags) check() string {
	switch {
	case fl.id != "" && importer.ValidateID(fl.id) != nil:
		return fmt.Sprintf("--id %q: must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", fl.id)
	case fl.dryRun && fl.wait:
		return "--dry-run and --wait exclude each other"
	case fl.plan && (fl.dryRun || fl.wait || fl.update):
		return "--plan goes alone: it creates nothing (drop --dry-run, --wait and --update)"
	case fl.asJSON && !fl.plan:
		return "--json goes with --plan (for an import's status: enqueue status ID --json)"
	}
	return ""
}

func (e *env) importFile(ctx context.Context, args []string) int {
	const cmd = "import"
	fs := newFlags(cmd)
	var fl importFlags
	fs.StringVar(&fl.id, "id", "", "")
	fs.BoolVar(&fl.dryRun, "dry-run", false, "")
	fs.BoolVar(&fl.wait, "wait", false, "")
	fs.BoolVar(&fl.plan, "plan", false, "")
	fs.BoolVar(&fl.asJSON, "json", false, "")
	fs.BoolVar(&fl.update, "update", false, "")
	fs.StringVar(&fl.onConflict, "on-conflict", "", "")
	fs.StringVar(&fl.portal, "portal", "", "")
	pos, code, ok := e.parse(fs, cmd, importHelp, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return e.usageErr(cmd, "missing FILE")
	case len(pos) > 1:
		return e.usageErr(cmd, "unexpected argument %q after FILE", pos[1])
	}
	if msg := fl.check(); msg != "" {
		return e.usageErr(cmd, "%s", msg)
	}
	policy, err := importer.ParseOnConflict(fl.onConflict)
	if err != nil {
		return e.usageErr(cmd, "--%v", err)
	}
	path := pos[0]
	portal := e.portalFor(fl.portal)
	if err := tasks.CheckPortalName(portal); err != nil {
		return e.usageErr(cmd, "%v", err)
	}
	return e.runImport(ctx, cmd, path, portal, fl, policy)
}

// runImport validates the file, then dry-runs, plans or submits it as fl
// says.
func (e *env) runImport(ctx context.Context, cmd, path, portal string, fl importFlags, policy importer.OnConflict) int {
	// The file is validated before Redis is needed: a wrong file, or a dry
	// run, never connects.
	f, err := LoadFile(path)
	if err != nil {
		return e.fileErr(cmd, path, err, true)
	}
	if fl.dryRun {
		importID := fl.id
		if importID == "" {
			importID = tasks.DerivedImportID(portal, f)
		}
		fmt.Fprintf(e.stdout, "import %s for portal %s: dry run, nothing enqueued\n%s\n", importID, portal, f.Plan())
		return ExitOK
	}

	conn, code := e.connect(ctx, cmd)
	if conn == nil {
		return code
	}
	defer conn.Close()
	// Items are grouped for the workers' batch aggregation (B24_BATCH on
	// the worker decides the batch size; 0 makes batches of one).
	im := tasks.NewImports(conn.rdb, conn.client, e.app.Prefix, e.logger(), tasks.WithBatch(true))
	served, err := e.served(ctx, conn)
	if err != nil {
		return e.fail(cmd, err)
	}
	if fl.plan {
		return e.plan(ctx, cmd, path, e.producer(conn, im, served), portal, f, policy, fl.asJSON)
	}
	res, err := e.producer(conn, im, served).SubmitImportWith(ctx, portal, fl.id, f, tasks.SubmitOptions{Update: fl.update, OnConflict: policy})
	if err != nil {
		return e.submitErr(cmd, path, conn, res, err)
	}
	fmt.Fprintln(e.stdout, SubmitLine(res))
	if !fl.wait {
		fmt.Fprintf(e.stdout, "follow it with: enqueue status %s\n", res.ID)
		e.warnUnserved(cmd, portal, served, "the import")
		return ExitOK
	}
	return e.follow(ctx, cmd, res.ID, e.watchServed(conn, portal), im.Status)
}

// fileErr reports a file that cannot be imported and returns ExitUsage:
// every problem as FILE:LINE: message, with a closing summary when summary
// is set, or the error itself (unknown extension, unreadable file).
func (e *env) fileErr(cmd, path string, err error, summary bool) int {
	var verr *importer.ValidationError
	if !errors.As(err, &verr) {
		return e.usageErr(cmd, "%v", err)
	}
	for _, p := range verr.Problems {
		fmt.Fprintln(e.stderr, FileProblem(path, p))
	}
	if summary {
		fmt.Fprintf(e.stderr, "enqueue import: %s: %d problem(s); nothing was enqueued\n", path, len(verr.Problems))
	}
	return ExitUsage
}

// submitErr translates an error of Producer.SubmitImport into a message
// and an exit code: 2 for what the user can fix, 1 when Redis failed.
func (e *env) submitErr(cmd, path string, conn *connection, res tasks.SubmitResult, err error) int {
	var verr *importer.ValidationError
	var tverr *tasks.ValidationError
	switch {
	case errors.As(err, &verr):
		return e.fileErr(cmd, path, err, false)
	case errors.As(err, &tverr):
		return e.printProblems(cmd, tverr)
	case errors.Is(err, store.ErrConflict):
		return e.usageErr(cmd, "import %s exists with other content or for another portal; give this file another --id", res.ID)
	case errors.Is(err, importer.ErrInvalidID):
		return e.usageErr(cmd, "%v", err)
	}
	return e.fail(cmd, fmt.Errorf("submit to Redis at %s: %w", conn.cfg.Redis, err))
}

// LoadFile parses and validates the import file at path. Problems of the
// file come back as one *importer.ValidationError; other errors (unknown
// extension, unreadable file) are plain.
func LoadFile(path string) (*importer.File, error) {
	f, _, err := importer.ParseFile(path)
	if err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// FileProblem formats a problem of the file at path the way compilers do,
// so editors can jump to it: "FILE:LINE: message", or "FILE: message" for a
// problem of the whole file.
func FileProblem(path string, p importer.Problem) string {
	line := p.Line
	p.Line = 0
	if line > 0 {
		return path + ":" + strconv.Itoa(line) + ": " + p.String()
	}
	return path + ": " + p.String()
}

// SubmitLine describes a submitted import in one line.
func SubmitLine(r tasks.SubmitResult) string {
	s := fmt.Sprintf("import %s: %d items, %d enqueued now, %d already created", r.ID, r.Total, r.Enqueued, r.AlreadyCreated)
	if r.Reconciling {
		s += "; a worker first reads what the portal holds"
	}
	if r.Retried > 0 {
		s += fmt.Sprintf(", %d failed items retried", r.Retried)
	}
	if r.Existing {
		s += " (submitted before; resumed)"
	}
	return s
}

// snapshot is st for the progress display.
func snapshot(st store.Status) progress.Snapshot {
	c := st.Counts
	return progress.Snapshot{ID: st.ID, Done: st.Done, Counts: progress.Counts{
		Total: c.Total, Created: c.Created + c.Adopted, Adopted: c.Adopted, Updated: c.Updated, Pending: c.Pending, Waiting: c.Waiting, Failed: c.Failed,
	}}
}

// follow shows the progress of import id until it is done and returns the
// exit code: 0 when every item was created, 1 otherwise. watch says on
// stderr when no worker serves the import's portal (and when one does
// again).
func (e *env) follow(ctx context.Context, cmd, id string, watch *servedWatch, status func(context.Context, string) (store.Status, error)) int {
	var last store.Status
	src := func(ctx context.Context) (progress.Snapshot, error) {
		watch.check(ctx, cmd)
		st, err := status(ctx, id)
		if err != nil {
			return progress.Snapshot{}, err
		}
		last = st
		return snapshot(st), nil
	}
	display := progress.For(e.stdout, e.app.LineInterval, e.app.Now)
	_, err := progress.Follow(ctx, src, display, e.app.PollInterval)
	switch {
	case err != nil && ctx.Err() != nil:
		// Interrupted: only the waiting stops. Whether the import goes on
		// depends on a worker serving its portal.
		e.interrupted(cmd, id, watch)
		return ExitFailure
	case err != nil:
		return e.fail(cmd, fmt.Errorf("follow import %s: %w", id, err))
	}
	if len(last.Failed) > 0 || last.Counts.Failed > 0 {
		fmt.Fprintf(e.stderr, "enqueue %s: %d item(s) of import %s failed:\n", cmd, max(last.Counts.Failed, len(last.Failed)), id)
		writeFailures(e.stderr, last.Failed)
		return ExitFailure
	}
	return ExitOK
}

// interrupted tells the truth about an import whose --wait was stopped.
func (e *env) interrupted(cmd, id string, watch *servedWatch) {
	switch served, known := watch.isServed(); {
	case served:
		fmt.Fprintf(e.stderr, "enqueue %s: stopped waiting; import %s goes on in the workers: enqueue status %s\n", cmd, id, id)
	case known:
		fmt.Fprintf(e.stderr, "enqueue %s: stopped waiting; %s, so import %s waits in Redis until one does: enqueue status %s\n",
			cmd, NotServed(watch.portal), id, id)
	default:
		fmt.Fprintf(e.stderr, "enqueue %s: stopped waiting; import %s stays in Redis and goes on while a worker serves portal %s: enqueue status %s\n",
			cmd, id, watch.portal, id)
	}
}

func writeFailures(w io.Writer, failed map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(failed)) {
		fmt.Fprintf(w, "  %s: %s\n", k, failed[k])
	}
}

func (e *env) status(ctx context.Context, args []string) int {
	const cmd = "status"
	id, asJSON, code, ok := e.parseID(cmd, statusHelp, "IMPORT_ID", args)
	switch {
	case !ok:
		return code
	case importer.ValidateID(id) != nil:
		return e.usageErr(cmd, "%q is not an import ID", id)
	}
	conn, code := e.connect(ctx, cmd)
	if conn == nil {
		return code
	}
	defer conn.Close()
	im := tasks.NewImports(conn.rdb, conn.client, e.app.Prefix, e.logger())
	s, err := im.Status(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return e.fail(cmd, fmt.Errorf("no import %q in Redis at %s", id, conn.cfg.Redis))
	case err != nil:
		return e.fail(cmd, fmt.Errorf("read import %s: %w", id, err))
	}
	if asJSON {
		if code, ok := e.printJSON(cmd, s); !ok {
			return code
		}
	} else {
		writeStatus(e.stdout, s)
	}
	if !s.Done {
		if served, err := e.served(ctx, conn); err == nil {
			e.warnUnserved(cmd, s.Portal, served, "the import")
		}
	}
	if s.Counts.Failed > 0 || len(s.Failed) > 0 {
		return ExitFailure
	}
	return ExitOK
}

// writeStatus prints s for people: state, counts, failures, created IDs.
func writeStatus(w io.Writer, s store.Status) {
	state := "in progress"
	if s.Done {
		state = "done"
	}
	fmt.Fprintf(w, "import %s (portal %s): %s\n", s.ID, s.Portal, state)
	if b := s.Blocked; b != nil {
		fmt.Fprintf(w, "blocked: %s (since %s, next check %s)\n  %s\n  fix: %s\n", b.Reason,
			b.Since.UTC().Format(time.RFC3339), b.NextCheck.UTC().Format(time.RFC3339), b.Description, b.Fix)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  total\t%d\t\n", s.Counts.Total)
	fmt.Fprintf(tw, "  created\t%d\t\n", s.Counts.Created)
	fmt.Fprintf(tw, "  adopted\t%d\t  existed in the portal already\n", s.Counts.Adopted)
	if s.Counts.Updated > 0 {
		fmt.Fprintf(tw, "  updated\t%d\t  fields changed to the file's\n", s.Counts.Updated)
	}
	fmt.Fprintf(tw, "  pending\t%d\t  in the queue\n", s.Counts.Pending)
	fmt.Fprintf(tw, "  waiting\t%d\t  on their parent\n", s.Counts.Waiting)
	fmt.Fprintf(tw, "  failed\t%d\t\n", s.Counts.Failed)
	_ = tw.Flush()
	if len(s.Failed) > 0 {
		fmt.Fprintln(w, "failed:")
		writeFailures(w, s.Failed)
	}
	if len(s.Created) > 0 {
		fmt.Fprintln(w, "portal IDs (key: ID, created or adopted):")
		for _, k := range slices.Sorted(maps.Keys(s.Created)) {
			fmt.Fprintf(w, "  %s: %d\n", k, s.Created[k])
		}
	}
}

// PlanWait is how long `enqueue import --plan` waits for a worker's plan.
const PlanWait = 2 * time.Minute

// plan asks a worker for the plan of f and prints it: one line per item
// and the totals, or JSON. Exit 1 when something is in conflict and the
// policy fails it.
func (e *env) plan(ctx context.Context, cmd, path string, p *tasks.Producer, portal string, f *importer.File, policy importer.OnConflict, asJSON bool) int {
	plan, err := p.PlanImport(ctx, portal, f, policy, PlanWait)
	var tverr *tasks.ValidationError
	switch {
	case errors.As(err, &tverr):
		return e.printProblems(cmd, tverr)
	case err != nil:
		return e.fail(cmd, fmt.Errorf("plan %s: %w", path, err))
	}
	if asJSON {
		if code, ok := e.printJSON(cmd, plan); !ok {
			return code
		}
	} else {
		WritePlan(e.stdout, plan)
	}
	if plan.Conflicts() && policy != importer.ConflictFirst {
		return ExitFailure
	}
	return ExitOK
}

// WritePlan prints a plan for people: one line per item, then the totals.
func WritePlan(w io.Writer, plan tasks.Plan) {
	for _, it := range plan.Items {
		fmt.Fprintln(w, it)
	}
	t := plan.Totals
	requests := "requests"
	if plan.Requests == 1 {
		requests = "request"
	}
	fmt.Fprintf(w, "portal %s: %d to create, %d exist, %d differ, %d in conflict (read in %d %s)\n", plan.Portal,
		t[importer.ActionCreate], t[importer.ActionExists], t[importer.ActionDiffers], t[importer.ActionConflict], plan.Requests, requests)
}
