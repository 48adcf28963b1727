package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/b24queue/b24queue/tasks"
)

const taskHelp = `Usage: enqueue task TASK_ID [--json]

Show what became of one task: the ID that 'enqueue department' or
'enqueue workplace' printed (or an import item's task ID, import:ID:KEY).
Every portal's queue is searched, so the ID alone is enough.

Printed: the state (pending, active, scheduled, retry, completed, archived,
aggregating), the created department's or workplace's ID when completed, the
last error with its Bitrix24 code when it failed, the retries so far and when
the next attempt is due. Finished tasks are kept for 72 hours.

Exit code 0 when the task is known and not failed for good, 1 when it failed
for good (archived), is unknown, or Redis is unreachable, 2 on a usage error.

Flags:
  --json   print the task as JSON, a stable interface:
           {"id": "...", "portal": "...", "queue": "b24:...", "type": "...",
            "state": "completed", "created_id": 57, "adopted": false,
            "error": "...", "error_code": "...", "retried": 0, "max_retry": 25,
            "next_attempt_at": "RFC 3339 time", ...}

Examples:
  enqueue task 2b0e6c1c-3f5e-4a0e-9d68-5d3c1f6a7b21
  enqueue task "$(enqueue workplace --title HR)" --json | jq .state

` + envHelp

// maxTaskID bounds a task ID given on the command line (asynq's IDs are
// UUIDs; import items' are import:ID:KEY with a 128-character ID and a
// 255-character key).
const maxTaskID = 512

func (e *env) task(ctx context.Context, args []string) int {
	const cmd = "task"
	id, asJSON, code, ok := e.parseID(cmd, taskHelp, "TASK_ID", args)
	switch {
	case !ok:
		return code
	case id == "" || len(id) > maxTaskID:
		return e.usageErr(cmd, "%q is not a task ID", id)
	}
	conn, code := e.connect(ctx, cmd)
	if conn == nil {
		return code
	}
	defer conn.Close()
	st, err := tasks.FindTask(conn.insp, id)
	switch {
	case errors.Is(err, tasks.ErrTaskNotFound):
		return e.fail(cmd, fmt.Errorf("no task %q in any portal's queue in Redis at %s (finished tasks are kept for %s)",
			id, conn.cfg.Redis, tasks.DefaultRetention))
	case err != nil:
		return e.fail(cmd, err)
	}
	if asJSON {
		if code, ok := e.printJSON(cmd, st); !ok {
			return code
		}
	} else {
		writeTask(e.stdout, st, time.Now())
	}
	if st.State == "pending" || st.State == "scheduled" || st.State == "retry" || st.State == "aggregating" {
		if served, err := e.served(ctx, conn); err == nil {
			e.warnUnserved(cmd, st.Portal, served, "the task")
		}
	}
	if st.State == "archived" {
		return ExitFailure
	}
	return ExitOK
}

// stateWords explains asynq's task states to people.
var stateWords = map[string]string{
	"pending":     "pending: in the queue, waiting for a worker",
	"active":      "active: a worker runs it now",
	"scheduled":   "scheduled: parked until a portal limit allows it, or delayed",
	"retry":       "retry: failed, waiting for its next attempt",
	"completed":   "completed",
	"archived":    "archived: failed for good",
	"aggregating": "aggregating: waiting to join a batch request",
}

// writeTask prints st for people; now makes "in 12s" of the next attempt.
func writeTask(w io.Writer, st tasks.TaskStatus, now time.Time) {
	state := stateWords[st.State]
	if state == "" {
		state = st.State
	}
	fmt.Fprintf(w, "task %s (%s, portal %s): %s\n", st.ID, st.Type, st.Portal, state)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if st.ImportID != "" {
		fmt.Fprintf(tw, "  import\t%s, item %s (its ID: enqueue status %s)\n", st.ImportID, st.Key, st.ImportID)
	}
	if st.CreatedID != 0 {
		how := "created"
		if st.Adopted {
			how = "adopted (an earlier attempt had created it)"
		}
		fmt.Fprintf(tw, "  created ID\t%d, %s\n", st.CreatedID, how)
	}
	if st.Error != "" {
		code := st.ErrorCode
		if code == "" {
			code = "-"
		}
		fmt.Fprintf(tw, "  error code\t%s\n  error\t%s\n", code, st.Error)
	}
	fmt.Fprintf(tw, "  retries\t%d of %d\n", st.Retried, st.MaxRetry)
	if st.NextAttemptAt != nil {
		fmt.Fprintf(tw, "  next attempt\t%s (in %s)\n", st.NextAttemptAt.Local().Format(time.RFC3339), max(0, st.NextAttemptAt.Sub(now)).Round(time.Second))
	}
	if st.CompletedAt != nil {
		fmt.Fprintf(tw, "  completed at\t%s\n", st.CompletedAt.Local().Format(time.RFC3339))
	}
	_ = tw.Flush()
}
