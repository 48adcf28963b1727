package tasks

// The outcome of each item of a batch: created (recorded, children
// released), failed (with its subtree), or put back into its group for a
// later batch, as decide (errors.go) says.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/b24queue/b24queue/internal/claim"
	"github.com/hibiken/asynq"
)

// apply records what err, the failure of item it's command (or of the
// request that carried it), means for the item: decide's verdict fail fails
// it; park puts it back into its group for decision.until, not counted;
// retry puts it back now, counted against maxItemRequeues, into the verify
// group when the failed request may have created it.
func (r *batchRun) apply(ctx context.Context, it *batchItem, err error) error {
	d := r.h.decide(ctx, r.portal.Name, err)
	group := BatchGroup(r.portal.Name, it.method)
	if !d.lookFirst {
		// The portal surely created nothing: the next creator need not
		// look (an ambiguous failure leaves the claim to this task). An
		// item going back into its group is settled before, or its next
		// batch could find the claim still this run's and wait for it.
		it.settle = claim.Free
		if d.verdict != fail {
			r.h.settle(ctx, claim.Settlement{Claim: it.claim, Outcome: claim.Free})
			it.settle = 0
		}
	}
	switch d.verdict {
	case fail:
		return r.failed(ctx, it, d.err.Error())
	case park:
		return r.requeue(ctx, it, group, d.until, false, err.Error())
	}
	if d.lookFirst {
		group = verifyGroup(r.portal.Name, it.method)
	}
	return r.requeue(ctx, it, group, time.Time{}, true, err.Error())
}

// failBatch fails every item of a batch task that failed for good with err
// (an item this batch did create stays created: failing it is a no-op in
// the import store), and releases the items' claims.
func (h *Handler) failBatch(ctx context.Context, t *asynq.Task, err error) error {
	var p BatchPayload
	_ = json.Unmarshal(t.Payload(), &p)
	h.metrics.failed(p.Portal, t.Type())
	if h.imports == nil {
		return err
	}
	taskID, _ := asynq.GetTaskID(ctx)
	ids := make([]string, len(p.Items))
	for i, it := range p.Items {
		ids[i] = it.TaskID
	}
	if e := h.release(ctx, p.Portal, taskID, false, ids...); e != nil {
		h.logger.WarnContext(ctx, "release claims of a failed batch", "task_id", taskID, "err", e)
	}
	var ferr error
	for _, it := range p.Items {
		ref := itemRef{}
		_ = json.Unmarshal(it.Payload, &ref)
		if ref.ImportID == "" {
			continue
		}
		if e := h.imports.Failed(ctx, ref.ImportID, ref.Key, "batch failed: "+err.Error()); e != nil {
			ferr = errors.Join(ferr, fmt.Errorf("record failure of import item %s: %w", ref.Key, e))
		}
	}
	if ferr != nil {
		// Retried, so that the failures get recorded.
		return fmt.Errorf("%w (after: %v)", ferr, err)
	}
	return err
}

// created records an item's ID in its import (releasing its children).
func (r *batchRun) created(ctx context.Context, it *batchItem, id int64, adopted bool) error {
	it.settle = claim.Known
	if it.ref.ImportID != "" && r.h.imports != nil {
		if err := r.h.imports.Created(ctx, it.ref.ImportID, it.ref.Key, id); err != nil {
			return fmt.Errorf("record import item %s: %w", it.ref.Key, err)
		}
	}
	if adopted {
		r.res.Adopted++
		r.h.metrics.adopted(r.portal.Name, it.method)
	} else {
		r.res.Created++
	}
	r.releaseClaim(ctx, it)
	return nil
}

// releaseClaim drops the claim on an item whose outcome is recorded; a
// claim left behind only expires later.
func (r *batchRun) releaseClaim(ctx context.Context, it *batchItem) {
	if err := r.h.release(ctx, r.portal.Name, r.owner, false, it.TaskID); err != nil {
		r.h.logger.WarnContext(ctx, "release batch item claim", "task_id", it.TaskID, "err", err)
	}
}

// failed records a final failure of an item (and its subtree).
func (r *batchRun) failed(ctx context.Context, it *batchItem, reason string) error {
	r.res.Failed++
	r.h.metrics.failed(r.portal.Name, it.Type)
	r.h.logger.WarnContext(ctx, "batch item failed", "portal", r.portal.Name, "item", it.label(), "task_id", it.TaskID, "reason", reason)
	if it.ref.ImportID == "" || r.h.imports == nil {
		return nil
	}
	if err := r.h.imports.Failed(ctx, it.ref.ImportID, it.ref.Key, reason); err != nil {
		return fmt.Errorf("record failure of import item %s: %w", it.ref.Key, err)
	}
	r.releaseClaim(ctx, it)
	return nil
}

// itemRequeuer puts a batch item back on the queue; *Imports implements it
// (and so does any tracker that embeds it).
type itemRequeuer interface {
	requeueItem(ctx context.Context, portal string, it BatchItem, group string, at time.Time) error
}

// maxItemRequeues bounds how often a batch item is put back after a
// transient failure (a command's INTERNAL_SERVER_ERROR, an answer that
// could not be read, a failed lookup, a later chunk's failed call) before
// it fails with the last reason, as DefaultMaxRetry bounds a task's
// retries: every item ends created or failed. Putting an item back because
// its method is blocked or the portal answered 503 does not count.
const maxItemRequeues = DefaultMaxRetry

// requeue puts the item back alone into group, to run at (zero: now).
// transient counts the requeue against maxItemRequeues; past it, the item
// fails instead. A transient requeue goes back at once: a task enqueued
// with both ProcessAt and Group is scheduled without its group (asynq's
// Schedule does not record it), and when due it runs as a single task,
// whose first attempt does not look up. For an item of the verify group
// that made duplicates (seen in the B24_BATCH=0 fault tests). Parked
// requeues (a blocked method, a 503) do run alone after their delay; they
// created nothing, so no lookup is needed.
func (r *batchRun) requeue(ctx context.Context, it *batchItem, group string, at time.Time, transient bool, reason string) error {
	rq, ok := r.h.imports.(itemRequeuer)
	if !ok {
		return fmt.Errorf("item %s: cannot put it back on the queue: the handler's ImportTracker is not an *Imports (after: %s)", it.label(), reason)
	}
	if transient {
		n := it.ref.Requeued + 1
		if n > r.h.maxRequeues {
			if it.settle == 0 {
				it.settle = claim.Known // the outcome stays unknown: the next creator looks first
			}
			return r.failed(ctx, it, fmt.Sprintf("gave up after %d transient failures, the last: %s", it.ref.Requeued, reason))
		}
		payload, err := withRequeued(it.Payload, n)
		if err != nil {
			return fmt.Errorf("put item %s back on the queue: %w", it.label(), err)
		}
		it.Payload = payload
	}
	// Hand the claim on first: the new task may be aggregated and run
	// before this run ends.
	if err := r.h.release(ctx, r.portal.Name, r.owner, true, it.TaskID); err != nil {
		return fmt.Errorf("put item %s back on the queue: %w", it.label(), err)
	}
	if !at.After(r.h.clock.now()) {
		at = time.Time{} // due already: straight back into the group
	}
	if err := rq.requeueItem(ctx, r.portal.Name, it.BatchItem, group, at); err != nil {
		r.h.retake(ctx, r.portal.Name, r.owner, it.TaskID)
		return fmt.Errorf("put item %s back on the queue: %w", it.label(), err)
	}
	r.res.Requeued++
	r.h.logger.InfoContext(ctx, "batch item put back", "portal", r.portal.Name, "item", it.label(), "task_id", it.TaskID, "group", group, "at", at, "reason", reason)
	return nil
}

// withRequeued returns payload with its "requeued" count set to n.
func withRequeued(payload json.RawMessage, n int) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("count the requeue in the payload: %w", err)
	}
	m["requeued"] = json.RawMessage(strconv.Itoa(n))
	return json.Marshal(m)
}

// requeueConflictWait bounds how long requeueItem waits for asynq to delete
// an aggregated task under the same ID (it does so right after it enqueued
// the batch, so this is only a safety net).
const requeueConflictWait = time.Second

// requeueItem implements itemRequeuer: it enqueues the item's task again
// under its deterministic task ID, grouped. asynq deletes a group member's
// task once it is aggregated, so the ID is free. If it is still taken after
// requeueConflictWait, a copy of the item is queued already (a resumed
// Submit), which will run on its own: nothing more to do. A non-zero at
// schedules the task for then (the caller passes zero when it is due).
func (im *Imports) requeueItem(ctx context.Context, portal string, it BatchItem, group string, at time.Time) error {
	opts := Options(portal, asynq.Group(group))
	if it.TaskID != "" {
		opts = append(opts, asynq.TaskID(it.TaskID))
	}
	if !at.IsZero() {
		opts = append(opts, asynq.ProcessAt(at))
	}
	task := asynq.NewTask(it.Type, it.Payload, opts...)
	deadline := time.Now().Add(requeueConflictWait)
	for {
		_, err := im.client.EnqueueContext(ctx, task)
		if err == nil {
			// The batch task still runs, so the queue was never empty;
			// marked all the same, as every producer does (Activity). The
			// item is queued: a failed mark is no reason to take it back.
			im.markActive(ctx, portal)
			return nil
		}
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return err
		}
		if time.Now().After(deadline) {
			im.logger.WarnContext(ctx, "item already queued; not putting it back twice", "task_id", it.TaskID)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// finish writes the batch's result and logs it.
func (r *batchRun) finish(ctx context.Context, t *asynq.Task) {
	if r.res.Created+r.res.Adopted > 0 {
		logOutcome(ctx, outcomeCreated)
	}
	taskID, _ := asynq.GetTaskID(ctx)
	if w := t.ResultWriter(); w != nil {
		data, _ := json.Marshal(r.res)
		if _, err := w.Write(data); err != nil {
			r.h.logger.WarnContext(ctx, "write task result", "task_id", taskID, "err", err)
		}
	}
	r.h.logger.InfoContext(ctx, "batch done", "task_id", taskID, "portal", r.portal.Name, "group", r.group,
		"items", r.res.Items, "created", r.res.Created, "adopted", r.res.Adopted, "failed", r.res.Failed,
		"requeued", r.res.Requeued, "skipped", r.res.Skipped, "recorded", r.res.Recorded)
}
