package tasks

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
)

// Outcomes of one run of a task, as logged and counted.
const (
	outcomeCreated = "created"
	outcomeAdopted = "adopted"
	outcomeParked  = "parked"
	outcomeRetry   = "retry"
	outcomeFailed  = "failed"
)

type outcomeKey struct{}

// logOutcome records what happened to the task in the slot that the logging
// middleware put in ctx; later calls win ("failed" after "retry").
func logOutcome(ctx context.Context, outcome string) {
	if slot, ok := ctx.Value(outcomeKey{}).(*string); ok {
		if *slot == outcomeAdopted && outcome == outcomeCreated {
			return
		}
		*slot = outcome
	}
}

// loggedMethod is the portal method a task type calls.
func loggedMethod(taskType string) string {
	switch taskType {
	case TypeBatchCreate, TypeImportReconcile, TypeImportPlan:
		return "batch"
	}
	return methodOf(taskType)
}

// logging is the outermost middleware: one structured line per task run with
// its ID, type, portal, outcome and latency. Payload fields that identify the
// object are logged; credentials never are in a payload.
func (h *Handler) logging(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		outcome := ""
		ctx = context.WithValue(ctx, outcomeKey{}, &outcome)
		err := next.ProcessTask(ctx, t)
		h.metrics.task(t.Type(), outcome)
		// errKey names the error's attribute: a parked task's error is the
		// reason it waits, not a failure.
		level, msg, errKey := slog.LevelInfo, "task done", ""
		switch {
		case err == nil:
		case outcome == outcomeParked:
			msg, errKey = "task parked", "reason"
		default:
			level, msg, errKey = slog.LevelWarn, "task failed", "err"
		}
		if !h.logger.Enabled(ctx, level) {
			return err // skip decoding the payload again for a line nobody reads
		}
		ref := refOf(t)
		taskID, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		attrs := []any{
			"task_id", taskID, "type", t.Type(), "portal", ref.Portal, "method", loggedMethod(t.Type()),
			"outcome", outcome, "retried", retried, "latency_ms", time.Since(start).Milliseconds(),
		}
		if ref.ImportID != "" {
			attrs = append(attrs, "import_id", ref.ImportID, "key", ref.Key)
		}
		if err != nil {
			attrs = append(attrs, errKey, err.Error())
		}
		h.logger.Log(ctx, level, msg, attrs...)
		return err
	})
}
