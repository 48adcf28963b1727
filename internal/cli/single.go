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

const departmentHelp = `Usage: enqueue department --name NAME --parent ID [--sort N] [--head USER_ID] [--portal P]

Enqueue the creation of one department (department.add) and print its task ID.
Nothing is enqueued when a flag is invalid (exit code 2).

Flags:
  --name NAME       department name (required, at most 255 characters)
  --parent ID       ID of the parent department in the portal (required;
                    0 creates a new top-level department, which a portal allows once)
  --sort N          sort index (default: the portal's)
  --head USER_ID    user ID of the department head (default: none)
  --portal P        portal name as configured on the worker (default $B24_PORTAL or "default")

Examples:
  enqueue department --name "Sales EU" --parent 1
  enqueue department --name Support --parent 12 --sort 500 --head 7 --portal acme

` + envHelp

func (e *env) department(ctx context.Context, args []string) int {
	const cmd = "department"
	fs := newFlags(cmd)
	name := fs.String("name", "", "")
	parent := fs.Int64("parent", 0, "")
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
	if !set["parent"] {
		return e.usageErr(cmd, "--parent is required (0 for a new top-level department)")
	}
	d := tasks.DepartmentPayload{Portal: e.portalFor(*portal), Name: *name, Parent: *parent, Sort: *sort, Head: *head}
	return e.enqueueOne(ctx, cmd, d.Validate(), func(p *tasks.Producer) (*asynq.TaskInfo, error) {
		return p.EnqueueDepartment(ctx, d)
	})
}

const workplaceHelp = `Usage: enqueue workplace --title TITLE [--type-ids 1,2,3] [--portal P]

Enqueue the creation of one digital workplace (crm.automatedsolution.add) and
print its task ID. Nothing is enqueued when a flag is invalid (exit code 2).

Flags:
  --title TITLE     workplace title (required, at most 255 characters)
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
	return e.enqueueOne(ctx, cmd, w.Validate(), func(p *tasks.Producer) (*asynq.TaskInfo, error) {
		return p.EnqueueWorkplace(ctx, w)
	})
}

// enqueueOne enqueues one task with a Producer and prints its ID. invalid
// is the payload's Validate error: the request is checked before Redis is
// needed, so that an invalid task exits 2 whatever Redis does; the
// Producer checks it again by the same rule.
func (e *env) enqueueOne(ctx context.Context, cmd string, invalid error, enqueue func(*tasks.Producer) (*asynq.TaskInfo, error)) int {
	if invalid != nil {
		return e.taskErr(cmd, invalid)
	}
	conn, code := e.connect(ctx, cmd)
	if conn == nil {
		return code
	}
	defer conn.Close()
	info, err := enqueue(tasks.NewProducer(conn.client, nil))
	var verr *tasks.ValidationError
	switch {
	case errors.As(err, &verr):
		return e.printProblems(cmd, verr)
	case err != nil:
		return e.fail(cmd, fmt.Errorf("enqueue to Redis at %s: %w", conn.cfg.Redis, err))
	}
	fmt.Fprintln(e.stdout, info.ID)
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
