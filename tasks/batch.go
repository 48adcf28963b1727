package tasks

// Batch mode: up to 50 creates in one Bitrix24 `batch` request.
//
// A batch call carries up to 50 commands and costs ONE request of the
// portal's budget (2 req/s on standard plans), so an import that takes 17
// minutes call by call takes well under a minute in batches. Each command is
// still billed to its own method's operating time; the portal observer
// (Portal.observe in errors.go) already feeds every command's result_time
// to the limiter under the command's method, not under "batch".
//
// # Why asynq task aggregation and not a batching stage of our own
//
// Import item tasks are enqueued with asynq.Group(BatchGroup(portal,
// method)); a worker configured with NewBatchAggregator and
// BatchServerConfig lets asynq collect up to 50 of them and hand them to the
// TypeBatchCreate handler as one task. A home-made stage (a goroutine that
// pulls ready tasks and buffers them) would have to solve what asynq already
// solves: the group lives in Redis and is moved into an aggregation set by
// one Lua script, so no task is lost or taken twice when a worker crashes
// mid-aggregation (asynq reclaims stale sets), every worker process of the
// fleet aggregates the same groups safely, and the grouped tasks show up in
// asynqmon (state "aggregating") like any other. The cost is latency: a
// group is aggregated when it reaches GroupMaxSize, or once no task has
// joined it for GroupGracePeriod (asynq's minimum, 1 s), or after
// GroupMaxDelay; and one worker process forms at most one batch per group
// per grace period. So every level of a tree pays up to about a second, and
// one worker creates at most 50 departments (and 50 workplaces) per second —
// half of what a 2 req/s portal allows; a second worker process doubles it.
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
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/limiter"
)

// TypeBatchCreate is the task type of an aggregated batch of item tasks.
const TypeBatchCreate = "batch:create"

// The methods the item task types create with; a batch group holds one.
const (
	methodDepartmentAdd = "department.add"
	methodWorkplaceAdd  = "crm.automatedsolution.add"
)

// verifySuffix marks the twin group of items that must be looked up first.
const verifySuffix = "/verify"

// BatchGroup is the asynq group of the item tasks of one portal that create
// with method ("department.add" or "crm.automatedsolution.add"):
// "PORTAL/METHOD". Portal names hold no '/', so groups never collide.
func BatchGroup(portal, method string) string { return portal + "/" + method }

func verifyGroup(portal, method string) string { return BatchGroup(portal, method) + verifySuffix }

// methodOf returns the create method of an item task type ("" if unknown).
func methodOf(taskType string) string {
	switch taskType {
	case TypeDepartmentCreate:
		return methodDepartmentAdd
	case TypeWorkplaceCreate:
		return methodWorkplaceAdd
	}
	return ""
}

// Defaults of BatchServerConfig.
const (
	// DefaultBatchGracePeriod is asynq's minimum GroupGracePeriod.
	DefaultBatchGracePeriod = time.Second
	// DefaultBatchMaxDelay bounds how long a steadily growing group waits.
	DefaultBatchMaxDelay = 3 * time.Second
)

// BatchConfig holds the asynq.Config fields of task aggregation.
type BatchConfig struct {
	GroupGracePeriod time.Duration
	GroupMaxDelay    time.Duration
	// GroupMaxSize is at most b24.MaxBatch.
	GroupMaxSize int
	// PlainCalls makes the batch tasks send their items one plain call at
	// a time instead of one batch request (B24_BATCH=0, for debugging).
	PlainCalls bool
}

// BatchServerConfig returns the aggregation settings of a worker: groups of
// up to b24.MaxBatch (50) items, sent as one batch request when enabled and
// as plain calls one after another otherwise (B24_BATCH=0, for debugging).
// Grouped tasks need the aggregator either way, so a worker always
// configures one; aggregating 50 at a time also when disabled keeps the
// debugging mode as fast as the portal's rate allows.
func BatchServerConfig(enabled bool) BatchConfig {
	return BatchConfig{GroupGracePeriod: DefaultBatchGracePeriod, GroupMaxDelay: DefaultBatchMaxDelay,
		GroupMaxSize: b24.MaxBatch, PlainCalls: !enabled}
}

// Apply sets cfg's GroupGracePeriod, GroupMaxDelay, GroupMaxSize and
// GroupAggregator (NewBatchAggregator).
func (c BatchConfig) Apply(cfg *asynq.Config) {
	cfg.GroupGracePeriod = c.GroupGracePeriod
	cfg.GroupMaxDelay = c.GroupMaxDelay
	cfg.GroupMaxSize = c.GroupMaxSize
	cfg.GroupAggregator = aggregator(c.PlainCalls)
}

// BatchPayload is the payload of a batch:create task, built by the
// aggregator from the grouped item tasks.
type BatchPayload struct {
	Portal string `json:"portal"`
	Group  string `json:"group"`
	// Verify is set for the verify twin group: every item is looked up
	// before it is created.
	Verify bool `json:"verify,omitempty"`
	// Plain asks for one plain call per item (BatchConfig.PlainCalls).
	Plain bool        `json:"plain,omitempty"`
	Items []BatchItem `json:"items"`
}

// BatchItem is one aggregated item task.
type BatchItem struct {
	// TaskID is the item's original task ID ("import:ID:KEY"), for logs and
	// for putting the item back on the queue; "" for an item outside an
	// import (asynq does not hand task IDs to the aggregator).
	TaskID  string          `json:"task_id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// NewBatchAggregator returns the asynq.GroupAggregator of batch mode: it
// turns the grouped item tasks of one group into one batch:create task with
// the default options of the group's portal. It is stateless and safe for
// concurrent use.
func NewBatchAggregator() asynq.GroupAggregator { return aggregator(false) }

func aggregator(plain bool) asynq.GroupAggregator {
	return asynq.GroupAggregatorFunc(func(group string, ts []*asynq.Task) *asynq.Task {
		return aggregate(group, ts, plain)
	})
}

func aggregate(group string, ts []*asynq.Task, plain bool) *asynq.Task {
	p := BatchPayload{Group: group, Verify: strings.HasSuffix(group, verifySuffix), Plain: plain, Items: make([]BatchItem, 0, len(ts))}
	for _, t := range ts {
		ref := refOf(t)
		if p.Portal == "" {
			p.Portal = ref.Portal
		}
		it := BatchItem{Type: t.Type(), Payload: t.Payload()}
		if ref.ImportID != "" {
			it.TaskID = ImportTaskID(ref.ImportID, ref.Key)
		}
		p.Items = append(p.Items, it)
	}
	if p.Portal == "" {
		p.Portal, _, _ = strings.Cut(group, "/")
	}
	data, _ := json.Marshal(p) // plain strings and raw JSON: cannot fail
	return asynq.NewTask(TypeBatchCreate, data, Options(p.Portal)...)
}

// BatchMux returns Mux() with the batch:create handler added behind the
// same middleware. A worker that runs import items in batch mode must use
// it (and NewBatchAggregator); single tasks work as with Mux.
func (h *Handler) BatchMux() *asynq.ServeMux {
	mux := h.Mux()
	mux.HandleFunc(TypeBatchCreate, h.processBatchTask)
	return mux
}

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

// processBatchTask runs a batch and, when the batch task itself fails for
// good, fails every item with the reason: the error middleware cannot, as
// the payload names no single import item.
func (h *Handler) processBatchTask(ctx context.Context, t *asynq.Task) error {
	err := h.processBatch(ctx, t)
	if err == nil {
		return nil
	}
	var p BatchPayload
	_ = json.Unmarshal(t.Payload(), &p)
	err = h.classify(ctx, p.Portal, err)
	if !isFinal(ctx, err) || h.imports == nil {
		return err
	}
	var ferr error
	taskID, _ := asynq.GetTaskID(ctx)
	ids := make([]string, len(p.Items))
	for i, it := range p.Items {
		ids[i] = it.TaskID
	}
	if e := h.release(ctx, p.Portal, taskID, false, ids...); e != nil {
		h.logger.WarnContext(ctx, "release claims of a failed batch", "task_id", taskID, "err", e)
	}
	for _, it := range p.Items {
		ref := itemRef{}
		_ = json.Unmarshal(it.Payload, &ref)
		if ref.ImportID == "" {
			continue
		}
		// Failing a created item is a no-op (Store.Fail), so items this
		// batch did create stay created.
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

// params are the item's create parameters, as the b24 client sends them.
func (it *batchItem) params() map[string]any {
	if it.method == methodWorkplaceAdd {
		fields := map[string]any{"title": it.wp.Title}
		if len(it.wp.TypeIDs) > 0 {
			fields["typeIds"] = it.wp.TypeIDs
		}
		return map[string]any{"fields": fields}
	}
	p := map[string]any{"NAME": it.dept.Name}
	if it.dept.Parent != 0 {
		p["PARENT"] = it.dept.Parent
	}
	if it.dept.Sort != 0 {
		p["SORT"] = it.dept.Sort
	}
	if it.dept.Head != 0 {
		p["UF_HEAD"] = it.dept.Head
	}
	return p
}

// createdID decodes a create command's result.
func (it *batchItem) createdID(raw json.RawMessage) (int64, error) {
	if it.method == methodWorkplaceAdd {
		var r struct {
			AutomatedSolution *struct {
				ID looseInt `json:"id"`
			} `json:"automatedSolution"`
		}
		if err := json.Unmarshal(raw, &r); err != nil || r.AutomatedSolution == nil || r.AutomatedSolution.ID <= 0 {
			return 0, fmt.Errorf("unexpected %s result %.100s", it.method, raw)
		}
		return int64(r.AutomatedSolution.ID), nil
	}
	var id looseInt
	if err := json.Unmarshal(raw, &id); err != nil || id <= 0 {
		return 0, fmt.Errorf("unexpected %s result %.100s", it.method, raw)
	}
	return int64(id), nil
}

// looseInt decodes a JSON number or a numeric string (PHP sends both).
type looseInt int64

func (n *looseInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not an integer: %.40s", b)
		}
		v = int64(f)
	}
	*n = looseInt(v)
	return nil
}

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
	retried, _ := asynq.GetRetryCount(ctx)
	r := &batchRun{h: h, portal: portal, group: p.Group, owner: taskID, res: batchResult{Items: len(p.Items)}}
	todo, err := r.prepare(ctx, p.Items)
	if err != nil {
		return err
	}
	if len(todo) == 0 {
		r.finish(ctx, t)
		return nil
	}

	marked, err := h.attempts.Begin(ctx, p.Portal, taskID)
	if err != nil {
		return err
	}
	uncertain := marked || retried > 0
	// clear removes the marker once nothing this run sent can have created
	// an object we do not know about.
	clear := func() {
		if cerr := h.attempts.Clear(ctx, p.Portal, taskID); cerr != nil {
			h.logger.WarnContext(ctx, "clear attempt marker", "task_id", taskID, "err", cerr)
		}
	}
	if uncertain || p.Verify {
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
	size := b24.MaxBatch
	if p.Plain {
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
			if !b24.IsAmbiguous(err) {
				clear()
			}
			return err
		}
		// Earlier chunks are done: put the rest back item by item rather
		// than rerun a half-done batch.
		r.recordErr = errors.Join(r.recordErr, r.requeueAll(ctx, todo[start:], err))
		break
	}
	clear()
	if r.recordErr != nil {
		// Every item was sent and answered, but some outcome is not
		// recorded: the retry (retried > 0) looks every item up again and
		// skips the ones put back.
		return r.recordErr
	}
	r.finish(ctx, t)
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
		cmds[i] = b24.BatchCommand{Key: cmdKey(i), Method: it.method, Params: it.params()}
	}
	res, _, err := r.portal.Client.Batch(ctx, false, cmds)
	if err != nil {
		return err
	}
	for i, it := range chunk {
		key := cmdKey(i)
		if raw, ok := res.Results[key]; ok {
			id, derr := it.createdID(raw)
			if derr == nil {
				r.record(r.created(ctx, it, id, false))
				continue
			}
			// The portal ran something we cannot read: look before retrying.
			r.record(r.requeue(ctx, it, verifyGroup(r.portal.Name, it.method), time.Time{}, true, derr.Error()))
			continue
		}
		cerr, ok := res.Errors[key]
		if !ok {
			r.record(r.requeue(ctx, it, verifyGroup(r.portal.Name, it.method), time.Time{}, true, "no answer for the command"))
			continue
		}
		r.record(r.commandFailed(ctx, it, cerr))
	}
	return nil
}

func cmdKey(i int) string { return "c" + strconv.Itoa(i) }

// commandFailed maps a per-command error to the item's outcome.
func (r *batchRun) commandFailed(ctx context.Context, it *batchItem, cerr *b24.Error) error {
	switch b24.Classify(cerr) {
	case b24.Permanent:
		return r.failed(ctx, it, (&PermanentError{Err: cerr}).Error())
	case b24.MethodBlocked:
		until := r.blockMethod(ctx, it.method)
		return r.requeue(ctx, it, BatchGroup(r.portal.Name, it.method), until, false, cerr.Error())
	case b24.RateLimited:
		return r.requeue(ctx, it, BatchGroup(r.portal.Name, it.method), time.Now().Add(RateLimitPark), false, cerr.Error())
	}
	// A transient error of one command (INTERNAL_SERVER_ERROR) in an
	// answered batch is the portal's own report on that command: it did not
	// return a result, and the item goes back to the ordinary group. (See
	// the file comment for why this is not treated as ambiguous.)
	return r.requeue(ctx, it, BatchGroup(r.portal.Name, it.method), time.Time{}, true, cerr.Error())
}

// blockMethod makes sure method is blocked in the shared limiter after a
// command was refused with OPERATION_TIME_LIMIT, and returns the block's
// end. The observer has already reported the time blocks of the batch's
// successful commands, which may have set a block with the portal's exact
// reset time; otherwise the method is blocked for the operating window.
func (r *batchRun) blockMethod(ctx context.Context, method string) time.Time {
	lim := r.portal.limiter
	until, blocked, err := lim.Blocked(ctx, r.portal.Name, method)
	if err == nil && blocked {
		return until
	}
	if err := lim.Block(ctx, r.portal.Name, method, time.Time{}); err != nil {
		r.h.logger.WarnContext(ctx, "block method after a refused command", "portal", r.portal.Name, "method", method, "err", err)
	}
	if until, blocked, err := lim.Blocked(ctx, r.portal.Name, method); err == nil && blocked {
		return until
	}
	return time.Now().Add(time.Minute)
}

// sendOne creates a single item with the plain method. A permanent error
// fails the item; any other error is returned for the task as a whole.
func (r *batchRun) sendOne(ctx context.Context, it *batchItem) error {
	c := r.portal.Client
	var id int64
	var err error
	if it.method == methodWorkplaceAdd {
		var s b24.AutomatedSolution
		s, _, err = c.AddAutomatedSolution(ctx, b24.AutomatedSolutionFields{Title: it.wp.Title, TypeIDs: it.wp.TypeIDs})
		id = s.ID
	} else {
		id, _, err = c.AddDepartment(ctx, b24.DepartmentFields{Name: it.dept.Name, Parent: it.dept.Parent, Sort: it.dept.Sort, Head: it.dept.Head})
	}
	switch {
	case err == nil:
		r.record(r.created(ctx, it, id, false))
		return nil
	case b24.Classify(err) == b24.Permanent:
		r.record(r.failed(ctx, it, (&PermanentError{Err: err}).Error()))
		return nil
	}
	return err
}

// requeueAll puts items back after a whole-call failure of a later chunk.
func (r *batchRun) requeueAll(ctx context.Context, items []*batchItem, cause error) error {
	var errs []error
	for _, it := range items {
		group, at, transient := BatchGroup(r.portal.Name, it.method), time.Time{}, true
		switch {
		case b24.IsAmbiguous(cause):
			group = verifyGroup(r.portal.Name, it.method)
		case b24.Classify(cause) == b24.RateLimited:
			at, transient = time.Now().Add(RateLimitPark), false
		case b24.Classify(cause) == b24.MethodBlocked:
			at, transient = r.blockMethod(ctx, it.method), false
		}
		errs = append(errs, r.requeue(ctx, it, group, at, transient, cause.Error()))
	}
	return errors.Join(errs...)
}

// created records an item's ID in its import (releasing its children).
func (r *batchRun) created(ctx context.Context, it *batchItem, id int64, adopted bool) error {
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
	if err := rq.requeueItem(ctx, r.portal.Name, it.BatchItem, group, at); err != nil {
		if r.owner != "" && it.TaskID != "" {
			// Take the claim back: this batch still has the item.
			r.h.attempts.rdb.Set(context.WithoutCancel(ctx), r.h.claimKey(r.portal.Name, it.TaskID), r.owner, claimTTL)
		}
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
// Submit), which will run on its own: nothing more to do.
func (im *Imports) requeueItem(ctx context.Context, portal string, it BatchItem, group string, at time.Time) error {
	opts := Options(portal, asynq.Group(group))
	if it.TaskID != "" {
		opts = append(opts, asynq.TaskID(it.TaskID))
	}
	if !at.IsZero() && at.After(time.Now()) {
		opts = append(opts, asynq.ProcessAt(at))
	}
	task := asynq.NewTask(it.Type, it.Payload, opts...)
	deadline := time.Now().Add(requeueConflictWait)
	for {
		_, err := im.client.EnqueueContext(ctx, task)
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
