package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/tasks"
)

const departmentHelp = `Usage: enqueue department --name NAME --parent-id ID [--sort N] [--head USER_ID] [--portal P]

Enqueue the creation of one department (department.add) and print its task ID;
follow it with 'enqueue task TASK_ID'. Nothing is enqueued when a flag is
invalid (exit code 2).

Flags:
  --name NAME       department name (required; trimmed, at most 255 characters,
                    no control characters)
  --parent-id ID    ID of an existing parent department in the portal (required;
                    every portal has its root department, usually 1)
  --parent ID       deprecated spelling of --parent-id (removed in the next release)
  --sort N          sort index (default: the portal's)
  --head USER_ID    user ID of the department head (default: none)
  --portal P        portal name as configured on the worker (default $B24_PORTAL or "default")

Examples:
  enqueue department --name "Sales EU" --parent-id 1
  enqueue department --name Support --parent-id 12 --sort 500 --head 7 --portal acme

` + envHelp

func (e *env) department(ctx context.Context, args []string) int {
	const cmd = "department"
	fs := newFlags(cmd)
	name := fs.String("name", "", "")
	parentID := fs.Int64("parent-id", 0, "")
	oldParent := fs.Int64("parent", 0, "")
	sort := fs.Int("sort", 0, "")
	head := fs.Int64("head", 0, "")
	portal := fs.String("portal", "", "")
	pos, code, ok := e.parse(fs, cmd, departmentHelp, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return e.usageErr(cmd, "unexpected argument %q", pos[0])
	}
	set := setFlags(fs)
	switch {
	case set["parent"] && set["parent-id"]:
		return e.usageErr(cmd, "give --parent-id only (--parent is its deprecated spelling)")
	case set["parent"]:
		fmt.Fprintf(e.stderr, "enqueue %s: warning: --parent is deprecated and will be removed in the next release; use --parent-id\n", cmd)
		*parentID = *oldParent
	case !set["parent-id"]:
		return e.usageErr(cmd, "--parent-id is required: the ID of an existing department (every portal has its root department, usually 1)")
	}
	d := tasks.DepartmentPayload{Portal: e.portalFor(*portal), Name: *name, Parent: *parentID, Sort: *sort, Head: *head}
	return e.enqueueOne(ctx, cmd, d.Portal, d.Validate(), func(p *tasks.Producer) (*asynq.TaskInfo, error) {
		return p.EnqueueDepartment(ctx, d)
	})
}

const workplaceHelp = `Usage: enqueue workplace --title TITLE [--type-ids 1,2,3] [--portal P]

Enqueue the creation of one digital workplace (crm.automatedsolution.add) and
print its task ID; follow it with 'enqueue task TASK_ID'. Nothing is enqueued
when a flag is invalid (exit code 2).

Flags:
  --title TITLE     workplace title (required; trimmed, at most 255 characters,
                    no control characters)
  --type-ids LIST   comma-separated smart-process type IDs to attach (default: none)
  --portal P        portal name as configured on the worker (default $B24_PORTAL or "default")

Examples:
  enqueue workplace --title HR
  enqueue workplace --title "Field service" --type-ids 128,130 --portal acme

` + envHelp

func (e *env) workplace(ctx context.Context, args []string) int {
	const cmd = "workplace"
	fs := newFlags(cmd)
	title := fs.String("title", "", "")
	typeIDs := fs.String("type-ids", "", "")
	portal := fs.String("portal", "", "")
	pos, code, ok := e.parse(fs, cmd, workplaceHelp, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return e.usageErr(cmd, "unexpected argument %q", pos[0])
	}
	ids, err := parseIDs(*typeIDs)
	if err != nil {
		return e.usageErr(cmd, "--type-ids: %v", err)
	}
	w := tasks.WorkplacePayload{Portal: e.portalFor(*portal), Title: *title, TypeIDs: ids}
	return e.enqueueOne(ctx, cmd, w.Portal, w.Validate(), func(p *tasks.Producer) (*asynq.TaskInfo, error) {
		return p.EnqueueWorkplace(ctx, w)
	})
}

// enqueueOne enqueues one task for portal with a Producer and prints its
// ID. invalid is the payload's Validate error: the request is checked
// before Redis is needed, so that an invalid task exits 2 whatever Redis
// does; the Producer checks it again by the same rule, and refuses a portal
// no live worker serves (see producer).
func (e *env) enqueueOne(ctx context.Context, cmd, portal string, invalid error, enqueue func(*tasks.Producer) (*asynq.TaskInfo, error)) int {
	if invalid != nil {
		return e.taskErr(cmd, invalid)
	}
	conn, code := e.connect(ctx, cmd)
	if conn == nil {
		return code
	}
	defer conn.Close()
	served, err := e.served(ctx, conn)
	if err != nil {
		return e.fail(cmd, err)
	}
	info, err := enqueue(e.producer(conn, nil, served))
	var verr *tasks.ValidationError
	switch {
	case errors.As(err, &verr):
		return e.printProblems(cmd, verr)
	case err != nil:
		return e.fail(cmd, fmt.Errorf("enqueue to Redis at %s: %w", conn.cfg.Redis, err))
	}
	fmt.Fprintln(e.stdout, info.ID)
	e.warnUnserved(cmd, portal, served, "the task")
	return ExitOK
}

// taskErr reports a task that cannot be built: every problem of a
// *tasks.ValidationError (exit 2), or a runtime failure (exit 1).
func (e *env) taskErr(cmd string, err error) int {
	var verr *tasks.ValidationError
	if errors.As(err, &verr) {
		return e.printProblems(cmd, verr)
	}
	return e.fail(cmd, err)
}

// parseIDs parses "1,2,3" (spaces allowed, empty: none) into positive IDs.
func parseIDs(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ids []int64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		n, err := strconv.ParseInt(part, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer ID", part)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
