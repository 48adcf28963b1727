package tasks

// Running a batch:create task: up to 50 import items created with one
// Bitrix24 `batch` request (aggregate.go says how they are grouped).
//
// # What a batch does
//
// The handler of a batch:create task (BatchMux) maps each item's outcome on
// its own:
//   - created: recorded in the import (Imports.Created), which releases the
//     item's children as grouped tasks again, so a tree flows level by level
//     through full batches;
//   - a permanent per-command error (ERROR_CORE, BX_EMPTY_REQUIRED, ...):
//     the item fails alone, with the portal's code and description (halt=0
//     lets its siblings run);
//   - a transient per-command error (INTERNAL_SERVER_ERROR, ...): the item
//     is put back alone into its group under its deterministic task ID (free
//     again once asynq consumed the group member), so it rides in a later
//     batch; after maxItemRequeues transient failures it fails instead.
//     It is not looked up first: the batch was answered, and its
//     result_error is the portal's own report that this command returned no
//     result, unlike a lost or 5xx answer to a whole request, of which
//     nothing is known. (Looking them up was measured: the verify batches it
//     needs are small, each costs a lookup request too, and at 10% command
//     errors a 2,050-item import took 180 requests instead of 53.);
//   - a command that ran but whose result cannot be read, or that is
//     missing from the answer: the item goes to the group's "verify" twin,
//     whose batches look every item up before sending it;
//   - OPERATION_TIME_LIMIT for a command: the method is blocked in the shared
//     limiter and the item is put back to run when the block ends.
//
// A failure of the whole call (503, 429, network, an undecodable answer) is
// returned, so the batch:create task is parked or retried as a unit by the
// usual error mapping; when its retries are exhausted every item that is not
// created fails with the reason.
//
// # Exactly once
//
// The attempt marker (Attempts) is keyed by the batch task's ID. A run that
// finds it (a crash or a lost answer before), a retried run, and every batch
// of a verify group looks all of its items up before it sends anything: one
// department.get per distinct PARENT (names compared exactly) and one
// crm.automatedsolution.list per title, all as commands of as few batch
// requests as possible (pages of 50 followed). Found objects are adopted.
//
// Before anything is sent, every item is claimed in Redis for this batch
// (batch_claims.go): a resumed Submit can queue a copy of an item while the
// item waits inside a batch task (asynq frees its task ID on aggregation),
// and the claim keeps the copy's batch from creating it a second time.
//
// A batch with a single item to create (always, with B24_BATCH=0 on the
// worker: BatchServerConfig(false) makes groups of one) calls the plain
// method instead of batch, so call-by-call debugging sees ordinary calls.
//
// Not done: a parent and its children in the same batch through
// "$result[parentKey]" references. Children are released only once their
// parent's ID is recorded, so each tree level is at least one batch (and one
// grace period); the request count is the same for trees whose levels have
// 50 or more departments, which is where the requests go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/limiter"
)

// batchResult is what a finished batch task writes with its ResultWriter.
type batchResult struct {
	Items    int `json:"items"`
	Created  int `json:"created"`
	Adopted  int `json:"adopted"`
	Failed   int `json:"failed"`
	Requeued int `json:"requeued"`
	// Skipped items are claimed by another batch; Recorded ones were
	// created before this run.
	Skipped  int `json:"skipped,omitempty"`
	Recorded int `json:"recorded,omitempty"`
}

// batchItem is an item being processed.
type batchItem struct {
	BatchItem
	method string
	ref    itemRef
	dept   DepartmentPayload
	wp     WorkplacePayload
}

func (it *batchItem) name() string {
	if it.method == methodWorkplaceAdd {
		return it.wp.Title
	}
	return it.dept.Name
}

func (it *batchItem) label() string {
	if it.ref.Key != "" {
		return it.ref.Key
	}
	return it.name()
}

// command is the item's create command in a batch, under key.
func (it *batchItem) command(key string) b24.BatchCommand {
	if it.method == methodWorkplaceAdd {
		return b24.AutomatedSolutionAddCommand(key, it.wp.fields())
	}
	return b24.DepartmentAddCommand(key, it.dept.fields())
}

// decodeID decodes the ID from the item's create command result.
func (it *batchItem) decodeID(raw json.RawMessage) (int64, error) {
	if it.method == methodWorkplaceAdd {
		s, err := b24.DecodeAutomatedSolutionAdd(raw)
		return s.ID, err
	}
	return b24.DecodeDepartmentAdd(raw)
}

// create creates the item with the plain method.
func (it *batchItem) create(ctx context.Context, c *b24.Client) (int64, error) {
	if it.method == methodWorkplaceAdd {
		s, _, err := c.AddAutomatedSolution(ctx, it.wp.fields())
		return s.ID, err
	}
	id, _, err := c.AddDepartment(ctx, it.dept.fields())
	return id, err
}

// errNoCommandAnswer: a batch answer that has neither a result nor an
// error for a command it was sent.
var errNoCommandAnswer = errors.New("no answer for the command")

// batchRun is one run of a batch task.
type batchRun struct {
	h      *Handler
	portal *Portal
	group  string
	owner  string // the batch task's ID
	res    batchResult
	// recordErr collects failures to record an item's outcome (Redis), as
	// opposed to failures of a call to the portal.
	recordErr error
}

// record keeps err (of recording an outcome) for the end of the run.
func (r *batchRun) record(err error) {
	if err != nil {
		r.recordErr = errors.Join(r.recordErr, err)
	}
}

// processBatch runs a batch:create task. A returned error is the batch's as
// a whole (the middleware decides what it means; when it is final, failBatch
// fails every item that is not created).
func (h *Handler) processBatch(ctx context.Context, t *asynq.Task) error {
	var p BatchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return &PermanentError{Err: fmt.Errorf("decode %s payload: %w", t.Type(), err)}
	}
	portal, ok := h.portals[p.Portal]
	if !ok {
		return &PermanentError{Err: fmt.Errorf("%w %q: the worker has no credentials for it", ErrUnknownPortal, p.Portal)}
	}
	taskID, _ := asynq.GetTaskID(ctx)
	r := &batchRun{h: h, portal: portal, group: p.Group, owner: taskID, res: batchResult{Items: len(p.Items)}}
	todo, err := r.prepare(ctx, p.Items)
	if err != nil {
		return err
	}
	if len(todo) > 0 {
		if err := r.run(ctx, todo, p.Verify, p.Plain); err != nil {
			return err
		}
	}
	r.finish(ctx, t)
	return nil
}

// run looks todo up when an earlier attempt may have created some of it (or
// the batch is a verify batch), then creates the rest in chunks of
// b24.MaxBatch (1 with plain), one batch request (or plain call) each.
func (r *batchRun) run(ctx context.Context, todo []*batchItem, verify, plain bool) error {
	h, portal := r.h, r.portal.Name
	retried, _ := asynq.GetRetryCount(ctx)
	marked, err := h.attempts.Begin(ctx, portal, r.owner)
	if err != nil {
		return err
	}
	uncertain := marked || retried > 0
	// clear removes the marker once nothing this run sent can have created
	// an object we do not know about.
	clear := func() {
		if cerr := h.attempts.Clear(ctx, portal, r.owner); cerr != nil {
			h.logger.WarnContext(ctx, "clear attempt marker", "task_id", r.owner, "err", cerr)
		}
	}
	if uncertain || verify {
		if todo, err = r.lookup(ctx, todo); err != nil {
			if !uncertain {
				clear()
			}
			return fmt.Errorf("look up before creating: %w", err)
		}
	}
	// Every remaining item is known not to exist: nothing is uncertain.
	if len(todo) > 0 {
		if err := r.checkBlocked(ctx, todo); err != nil {
			clear()
			return err
		}
	}
	if err := r.sendAll(ctx, todo, plain); err != nil {
		if !b24.IsAmbiguous(err) {
			clear()
		}
		return err
	}
	clear()
	// Every item was sent and answered, but an outcome that could not be
	// recorded fails the run: the retry (retried > 0) looks every item up
	// again and skips the ones put back.
	return r.recordErr
}

// sendAll creates todo chunk by chunk. A failure of the first chunk's call
// is returned (nothing was done: the task is retried or parked as a whole);
// after that, the items not yet sent are put back one by one rather than
// rerunning a half-done batch.
func (r *batchRun) sendAll(ctx context.Context, todo []*batchItem, plain bool) error {
	size := b24.MaxBatch
	if plain {
		size = 1
	}
	for start := 0; start < len(todo); start += size {
		chunk := todo[start:min(start+size, len(todo))]
		var err error
		if len(chunk) == 1 {
			err = r.sendOne(ctx, chunk[0])
		} else {
			err = r.send(ctx, chunk)
		}
		if err == nil {
			continue
		}
		if start == 0 && r.recordErr == nil {
			return err
		}
		for _, it := range todo[start:] {
			r.record(r.apply(ctx, it, err))
		}
		return nil
	}
	return nil
}

// prepare decodes the items, fails the ones that cannot be used, claims
// the others, and finishes the ones an earlier run (or another batch)
// already recorded. It returns the rest. The import state is read after the
// claim: a batch releases its claims only once the outcomes are recorded.
func (r *batchRun) prepare(ctx context.Context, raw []BatchItem) ([]*batchItem, error) {
	valid := make([]*batchItem, 0, len(raw))
	for _, bi := range raw {
		it := &batchItem{BatchItem: bi, method: methodOf(bi.Type)}
		_ = json.Unmarshal(bi.Payload, &it.ref)
		var verr error
		switch it.method {
		case methodDepartmentAdd:
			verr = decodeItem(bi.Payload, &it.dept)
		case methodWorkplaceAdd:
			verr = decodeItem(bi.Payload, &it.wp)
		default:
			verr = fmt.Errorf("task type %q cannot be batched", bi.Type)
		}
		if verr == nil && it.ref.Portal != r.portal.Name {
			verr = fmt.Errorf("item of portal %q in a batch of portal %q", it.ref.Portal, r.portal.Name)
		}
		if verr != nil {
			if err := r.failed(ctx, it, (&PermanentError{Err: verr}).Error()); err != nil {
				return nil, err
			}
			continue
		}
		valid = append(valid, it)
	}
	valid, err := r.claim(ctx, r.owner, valid)
	if err != nil {
		return nil, err
	}
	todo := valid[:0]
	for _, it := range valid {
		if it.ref.ImportID != "" && r.h.imports != nil {
			id, done, err := r.h.imports.Existing(ctx, it.ref.ImportID, it.ref.Key)
			if err != nil {
				return nil, fmt.Errorf("read import state: %w", err)
			}
			if done {
				// Recorded by an earlier run or another batch; Created
				// again releases any children a crash left behind.
				if err := r.h.imports.Created(ctx, it.ref.ImportID, it.ref.Key, id); err != nil {
					return nil, fmt.Errorf("record import item %s: %w", it.ref.Key, err)
				}
				r.res.Recorded++
				r.releaseClaim(ctx, it)
				continue
			}
		}
		todo = append(todo, it)
	}
	return todo, nil
}

func decodeItem(raw json.RawMessage, v interface{ Validate() error }) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode item payload: %w", err)
	}
	return v.Validate()
}

// checkBlocked parks the batch while a method of its items is blocked by
// the portal's operating-time limit: the pacer only checks "batch".
func (r *batchRun) checkBlocked(ctx context.Context, todo []*batchItem) error {
	seen := map[string]bool{}
	for _, it := range todo {
		if seen[it.method] {
			continue
		}
		seen[it.method] = true
		until, blocked, err := r.portal.limiter.Blocked(ctx, r.portal.Name, it.method)
		if err != nil {
			return fmt.Errorf("read operating block of %s: %w", it.method, err)
		}
		if blocked {
			return &limiter.BlockedError{Portal: r.portal.Name, Method: it.method, Until: until}
		}
	}
	return nil
}

// send creates chunk (at most b24.MaxBatch items) with one batch request and
// maps each command's outcome. A returned error is a whole-call failure: no
// item of the chunk has an outcome. Failures to record an outcome go to
// r.recordErr.
func (r *batchRun) send(ctx context.Context, chunk []*batchItem) error {
	cmds := make([]b24.BatchCommand, len(chunk))
	for i, it := range chunk {
		cmds[i] = it.command(cmdKey(i))
	}
	res, _, err := r.portal.Client.Batch(ctx, false, cmds)
	if err != nil {
		return err
	}
	ids, idErrs := decodeCreated(chunk, res)
	for i, it := range chunk {
		key := cmdKey(i)
		if derr := idErrs[i]; derr != nil {
			// The portal ran something we cannot read: look before retrying.
			r.record(r.apply(ctx, it, &b24.TransportError{Method: it.method, Err: derr, Ambiguous: true}))
			continue
		}
		if _, ok := res.Results[key]; ok {
			r.record(r.created(ctx, it, ids[i], false))
			continue
		}
		cerr, ok := res.Errors[key]
		if !ok {
			r.record(r.apply(ctx, it, &b24.TransportError{Method: it.method, Err: errNoCommandAnswer, Ambiguous: true}))
			continue
		}
		r.record(r.apply(ctx, it, cerr))
	}
	return nil
}

// decodeCreated decodes the created ID of each command of chunk that has a
// result. An ID is an error when it cannot be read, and also when several
// commands of the answer claim it: two creates never return one object, so
// the answer is wrong for every one of them (the items are looked up, not
// recorded under someone else's ID).
func decodeCreated(chunk []*batchItem, res b24.BatchResult) ([]int64, []error) {
	ids := make([]int64, len(chunk))
	errs := make([]error, len(chunk))
	claims := map[string]int{} // method + ID → commands answering it
	claimKey := func(i int) string { return chunk[i].method + "#" + strconv.FormatInt(ids[i], 10) }
	for i, it := range chunk {
		raw, ok := res.Results[cmdKey(i)]
		if !ok {
			continue
		}
		if ids[i], errs[i] = it.decodeID(raw); errs[i] == nil {
			claims[claimKey(i)]++
		}
	}
	for i := range chunk {
		if n := claims[claimKey(i)]; errs[i] == nil && n > 1 {
			errs[i] = fmt.Errorf("the portal answered ID %d for %d commands of one batch", ids[i], n)
		}
	}
	return ids, errs
}

func cmdKey(i int) string { return "c" + strconv.Itoa(i) }

// sendOne creates a single item with the plain method. A permanent error
// fails the item; any other error is returned for the task as a whole.
func (r *batchRun) sendOne(ctx context.Context, it *batchItem) error {
	id, err := it.create(ctx, r.portal.Client)
	switch {
	case err == nil:
		r.record(r.created(ctx, it, id, false))
		return nil
	case b24.Classify(err) == b24.Permanent:
		r.record(r.apply(ctx, it, err))
		return nil
	}
	return err
}
