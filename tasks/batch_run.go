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
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/claim"
	"github.com/b24queue/b24queue/limiter"
)

// batchRun is one run of a batch task.
type batchRun struct {
	h      *Handler
	portal *Portal
	group  string
	owner  string // the batch task's ID
	token  string // this run's claim token
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
	portal, err := h.servedPortal(p.Portal)
	if err != nil {
		return err
	}
	taskID, _ := asynq.GetTaskID(ctx)
	r := &batchRun{h: h, portal: portal, group: p.Group, owner: taskID, token: claim.NewToken(), res: batchResult{Items: len(p.Items)}}
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

// run takes the claims of todo's objects, looks up the items an earlier
// attempt may have created (all of them in a verify batch or a retried run),
// then creates the rest in chunks of b24.MaxBatch (1 with plain), one batch
// request (or plain call) each. The claims are settled when it returns.
func (r *batchRun) run(ctx context.Context, todo []*batchItem, verify, plain bool) (err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	create, look, err := r.claimObjects(ctx, todo, verify || retried > 0)
	if err != nil {
		return err
	}
	defer r.settleClaims(ctx, todo)
	if len(look) > 0 {
		missing, err := r.lookup(ctx, look)
		if err != nil {
			// Nothing is known of them: their claims stay this task's,
			// so the retry looks again.
			return fmt.Errorf("look up before creating: %w", err)
		}
		create = append(create, missing...)
	}
	if len(create) > 0 {
		if err := r.checkBlocked(ctx, create); err != nil {
			freeUnsettled(create)
			return err
		}
	}
	if err := r.sendAll(ctx, create, plain); err != nil {
		if !b24.IsAmbiguous(err) {
			freeUnsettled(create)
		}
		return err
	}
	// Every item was sent and answered, but an outcome that could not be
	// recorded fails the run: the retry (retried > 0) looks every item up
	// again and skips the ones put back.
	return r.recordErr
}

// claimObjects takes the claim of every item's object (one round trip) and
// sorts the items: to create at once, or to look up first (lookAll, or an
// earlier attempt on the object). Items another task is creating are put
// back to wait (not counted as a failure). When an earlier create request
// of an item may still be running at the portal, the batch parks until it
// cannot be.
func (r *batchRun) claimObjects(ctx context.Context, todo []*batchItem, lookAll bool) (create, look []*batchItem, err error) {
	cs := make([]claim.Claim, len(todo))
	for i, it := range todo {
		owner := it.TaskID
		if owner == "" {
			owner = r.owner + "#" + strconv.Itoa(i)
		}
		kind, identity := it.identity()
		it.claim = r.h.claims.of(r.portal.Name, kind, identity, owner, r.token)
		cs[i] = it.claim
	}
	taken, err := r.h.claims.take(ctx, cs)
	if err != nil {
		return nil, nil, err
	}
	now := r.h.clock.now()
	var waitUntil time.Time
	for i, it := range todo {
		switch tk := taken[i]; {
		case tk.State == claim.Busy:
			group := BatchGroup(r.portal.Name, it.method)
			r.record(r.requeue(ctx, it, group, now.Add(busyPark), false, "another task is creating the same object"))
		case lookAll || tk.State.LookFirst():
			if at := r.h.claims.lookAfter(tk); at.After(waitUntil) {
				waitUntil = at
			}
			look = append(look, it)
		default:
			create = append(create, it)
		}
	}
	if waitUntil.After(now) {
		// The whole batch waits, so its items stay together: they come
		// back as this task, their claims still its own.
		return nil, nil, &ParkError{Until: waitUntil, Reason: "an earlier attempt's request may still be running at the portal"}
	}
	return create, look, nil
}

// freeUnsettled frees the claims of items without an outcome: the portal
// surely created nothing for them.
func freeUnsettled(items []*batchItem) {
	for _, it := range items {
		if it.settle == 0 {
			it.settle = claim.Free
		}
	}
}

// settleClaims settles the claims of the items that have an outcome, in one
// round trip.
func (r *batchRun) settleClaims(ctx context.Context, items []*batchItem) {
	var ss []claim.Settlement
	for _, it := range items {
		if it.settle != 0 && it.claim.Key != "" {
			ss = append(ss, claim.Settlement{Claim: it.claim, Outcome: it.settle})
		}
	}
	r.h.settle(ctx, ss...)
}

// sendAll creates todo chunk by chunk (items with a batch reference pattern
// in their name alone, by plain call). A failure of the first chunk's call
// is returned (nothing was done: the task is retried or parked as a whole);
// after that, the items not yet sent are put back one by one rather than
// rerunning a half-done batch.
func (r *batchRun) sendAll(ctx context.Context, todo []*batchItem, plain bool) error {
	todo, alone := splitReferences(todo)
	size := b24.MaxBatch
	if plain {
		size = 1
	}
	chunks := make([][]*batchItem, 0, len(todo)/size+len(alone)+1)
	for start := 0; start < len(todo); start += size {
		chunks = append(chunks, todo[start:min(start+size, len(todo))])
	}
	for _, it := range alone {
		chunks = append(chunks, []*batchItem{it})
	}
	for n, chunk := range chunks {
		var err error
		if len(chunk) == 1 {
			err = r.sendOne(ctx, chunk[0])
		} else {
			err = r.send(ctx, chunk)
		}
		if err == nil {
			continue
		}
		if n == 0 && r.recordErr == nil {
			return err
		}
		for _, rest := range chunks[n:] {
			for _, it := range rest {
				r.record(r.apply(ctx, it, err))
			}
		}
		return nil
	}
	return nil
}

// splitReferences separates the items whose values the portal's batch would
// take for references to other commands ("Team $result[c0]" is created as
// "Team 2"): they go by single call, where nothing is substituted.
func splitReferences(items []*batchItem) (batched, alone []*batchItem) {
	batched = items[:0:0]
	for _, it := range items {
		if b24.HasBatchReference(it.name()) {
			alone = append(alone, it)
		} else {
			batched = append(batched, it)
		}
	}
	return batched, alone
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
	chunk, err := r.paceChunk(ctx, b24.MethodBatch, chunk)
	if err != nil || len(chunk) == 0 {
		return err
	}
	cmds := make([]b24.BatchCommand, len(chunk))
	for i, it := range chunk {
		cmds[i] = it.command(cmdKey(i))
	}
	res, _, err := r.portal.Client.Batch(withPrepaid(ctx, b24.MethodBatch), false, cmds)
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

// paceChunk waits for the slot of the request that creates chunk, granted
// only while the chunk's claims are still this run's (fencing: a run that
// outlived its lease must not create what another run now owns). Items
// whose claims another run took over are dropped from the chunk (skipped:
// that run has them), and the slot is asked again for the rest.
func (r *batchRun) paceChunk(ctx context.Context, method string, chunk []*batchItem) ([]*batchItem, error) {
	for len(chunk) > 0 {
		cs := make([]claim.Claim, len(chunk))
		for i, it := range chunk {
			cs[i] = it.claim
		}
		err := r.portal.paceChecked(ctx, method, cs, r.h.claims.ttl)
		se, ok := errors.AsType[*limiter.SupersededError](err)
		if !ok {
			if err != nil {
				return nil, fmt.Errorf("b24: %s: pacer: %w", method, err)
			}
			return chunk, nil
		}
		drop := make(map[int]bool, len(se.Indexes))
		for _, i := range se.Indexes {
			drop[i] = true
		}
		kept := chunk[:0:0]
		for i, it := range chunk {
			if !drop[i] {
				kept = append(kept, it)
				continue
			}
			r.res.Skipped++
			r.h.logger.WarnContext(ctx, "batch item skipped: another run of it took over", "portal", r.portal.Name, "task_id", it.TaskID)
		}
		chunk = kept
	}
	return chunk, nil
}

// sendOne creates a single item with the plain method. A permanent error
// fails the item; any other error is returned for the task as a whole.
func (r *batchRun) sendOne(ctx context.Context, it *batchItem) error {
	if left, err := r.paceChunk(ctx, it.method, []*batchItem{it}); err != nil || len(left) == 0 {
		return err
	}
	id, err := it.create(withPrepaid(ctx, it.method), r.portal.Client)
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
