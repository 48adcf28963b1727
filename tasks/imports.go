package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/limiter"
)

// Imports runs org-structure imports on the queue: Submit writes an import's
// state (store.Store) and enqueues what can start at once, and, as the
// Handler's ImportTracker, it records every created item and enqueues its
// children as soon as their parent's ID is known. The queue therefore never
// holds more of a tree than is ready to run, and a child always carries its
// parent's real portal ID.
//
// Imports is safe for concurrent use. The asynq client and the Redis client
// given to NewImports must point at the same Redis database (the inspector
// that cleans archived tasks on a re-run is built on rdb).
type Imports struct {
	store     *store.Store
	client    *asynq.Client
	inspector *asynq.Inspector
	logger    *slog.Logger
	portals   sync.Map // import ID → portal name; immutable per import
	batch     bool
	rdb       redis.UniversalClient
	prefix    string
	activity  Activity
}

// ImportsOption configures an Imports.
type ImportsOption func(*Imports)

// WithBatch turns batch mode on for every item task this Imports enqueues
// (roots and workplaces by Submit, children by Created): each gets
// asynq.Group(BatchGroup(portal, method)), so a worker's aggregator (see
// batch.go) sends up to 50 of them as one batch request. Grouped tasks run
// only on a server configured with NewBatchAggregator, so turn this on only
// when every worker of the queue is (B24_BATCH=0 on the worker still works:
// it makes batches of one). Off by default.
func WithBatch(on bool) ImportsOption { return func(im *Imports) { im.batch = on } }

var _ ImportTracker = (*Imports)(nil)

// NewImports returns an Imports keeping state under prefix ("" means
// the default key prefix) in rdb and enqueueing with client. logger may
// be nil. It does not contact Redis.
func NewImports(rdb redis.UniversalClient, client *asynq.Client, prefix string, logger *slog.Logger, opts ...ImportsOption) *Imports {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	im := &Imports{
		store:     store.New(rdb, prefix, store.WithLogger(logger)),
		client:    client,
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		logger:    logger,
		rdb:       rdb,
		prefix:    prefix,
		activity:  NewActivity(rdb, prefix),
	}
	for _, o := range opts {
		o(im)
	}
	return im
}

// Batch reports whether item tasks are enqueued grouped (see WithBatch).
func (im *Imports) Batch() bool { return im.batch }

// Store returns the underlying import state, for tools and tests.
func (im *Imports) Store() *store.Store { return im.store }

// ImportTaskID is the asynq task ID of an import item: "import:ID:KEY". It
// is deterministic, so enqueueing an item twice is refused by asynq with
// asynq.ErrTaskIDConflict instead of creating a second task; import IDs
// contain no ':' (importer.ValidateID), so distinct (ID, key) pairs never
// share a task ID.
func ImportTaskID(importID, key string) string { return "import:" + importID + ":" + key }

// SubmitResult says what Submit did.
type SubmitResult struct {
	// ID is the import ID (derived from the file when none was given).
	ID string `json:"id"`
	// Total is the number of items in the file.
	Total int `json:"total"`
	// Enqueued counts tasks newly put on the queue by this Submit (the
	// reconcile step of a new import, whose task releases the roots and
	// workplaces; retried failures and children of a resumed one); tasks
	// that already exist are not counted.
	Enqueued int `json:"enqueued"`
	// AlreadyCreated counts items created by earlier runs of this import.
	AlreadyCreated int `json:"already_created"`
	// Existing is true when the import had been submitted before.
	Existing bool `json:"existing"`
	// Retried counts failed items given another chance by this Submit.
	Retried int `json:"retried"`
	// Reconciling is true when the import's first step reads the portal
	// (a new import, or --update): nothing is created before it adopted
	// what exists.
	Reconciling bool `json:"reconciling,omitempty"`
}

// Submit validates f and starts (or resumes) the import on portal ("" means
// DefaultPortal). An empty importID is derived from the file's content
// (DerivedImportID: f.ID(), with "-PORTAL" appended for a portal other than
// the default, so that one file can go to two portals). A file that is not
// valid returns f.Validate()'s *importer.ValidationError untouched and
// writes nothing.
//
// Submitting an import that exists with the same content resumes it:
//   - created items are skipped;
//   - queued items stay queued (their task IDs exist, so asynq refuses
//     duplicates);
//   - failed items are retried: their archived tasks are deleted, the items
//     and their failed subtrees are reset, and the ones whose parent exists
//     are enqueued again;
//   - children a crashed worker left waiting under a created parent are
//     enqueued.
//
// The same import ID with other content (or another portal) wraps
// store.ErrConflict. Submit is safe to call again after any error.
func (im *Imports) Submit(ctx context.Context, portal, importID string, f *importer.File) (SubmitResult, error) {
	return im.SubmitWith(ctx, portal, importID, f, SubmitOptions{})
}

// SubmitOptions adjust SubmitWith.
type SubmitOptions struct {
	// Update applies the file's values to adopted objects that differ
	// (department SORT and UF_HEAD, workplace typeIds): enqueue import
	// --update.
	Update bool
	// OnConflict is what a row matching several existing objects (or one
	// only when case is ignored) does: fail (default) or adopt the lowest
	// ID (first).
	OnConflict importer.OnConflict
}

// SubmitWith is Submit with options. A new import is first reconciled with
// the portal (reconcile.go): its first task reads what the portal holds,
// adopts what exists and only then releases the rest; nothing is created
// before. An import submitted again is resumed as Submit says; with Update
// it is reconciled again to apply the file's values.
func (im *Imports) SubmitWith(ctx context.Context, portal, importID string, f *importer.File, opts SubmitOptions) (SubmitResult, error) {
	if portal == "" {
		portal = DefaultPortal
	}
	if err := f.Validate(); err != nil {
		return SubmitResult{}, err
	}
	if err := problemsErr(checkPortal(portal, nil)); err != nil {
		return SubmitResult{}, err
	}
	digest := f.ID()
	if importID == "" {
		importID = derivedImportID(portal, digest)
	}
	if err := importer.ValidateID(importID); err != nil {
		return SubmitResult{}, err
	}
	res := SubmitResult{ID: importID, Total: len(f.Departments) + len(f.Workplaces)}
	existing, err := im.store.Create(ctx, importID, portal, digest, f)
	if err != nil {
		return res, err
	}
	res.Existing = existing
	im.portals.Store(importID, portal)
	reconciled := false
	if existing {
		if reconciled, err = im.store.Reconciled(ctx, importID); err != nil {
			return res, err
		}
	}
	if existing {
		_, err = im.resume(ctx, portal, importID, reconciled, &res)
	}
	if err != nil {
		return res, err
	}
	st, err := im.store.Status(ctx, importID)
	if err != nil {
		return res, err
	}
	if !reconciled || opts.Update {
		n, err := im.enqueueReconcile(ctx, portal, importID, st.CreatedAt, !reconciled, opts)
		if err != nil {
			return res, err
		}
		res.Enqueued += n
		res.Reconciling = true
	}
	if existing {
		res.AlreadyCreated = st.Counts.Created + st.Counts.Adopted
	}
	im.logger.InfoContext(ctx, "import submitted", "import_id", importID, "portal", portal,
		"total", res.Total, "enqueued", res.Enqueued, "already_created", res.AlreadyCreated,
		"retried", res.Retried, "existing", existing, "reconciling", res.Reconciling)
	return res, nil
}

// resume puts back on the queue what an import submitted again needs:
// its failed items (looked up first) and, once it is reconciled, every item
// whose task should exist (before that, its reconcile task releases them).
func (im *Imports) resume(ctx context.Context, portal, importID string, reconciled bool, res *SubmitResult) ([]string, error) {
	retried, err := im.retryFailed(ctx, portal, importID)
	if err != nil {
		return nil, err
	}
	res.Retried = len(retried)
	if !reconciled {
		return retried, nil
	}
	items, err := im.store.Releasable(ctx, importID)
	if err != nil {
		return retried, err
	}
	res.Enqueued, err = im.enqueue(ctx, portal, importID, items, retried...)
	return retried, err
}

// enqueueReconcile queues the import's reconcile task. The first one of an
// import's state (created at createdAt) has a deterministic ID, queued once
// however often the file is submitted (a state lost and created again gets
// a new one); an --update pass of a reconciled import gets its own. It
// reports how many tasks it queued.
func (im *Imports) enqueueReconcile(ctx context.Context, portal, importID string, createdAt time.Time, first bool, opts SubmitOptions) (int, error) {
	data, err := json.Marshal(ReconcilePayload{Portal: portal, ImportID: importID, Update: opts.Update, OnConflict: opts.OnConflict})
	if err != nil {
		return 0, fmt.Errorf("import %s: encode the reconcile task: %w", importID, err)
	}
	var taskOpts []asynq.Option
	if first {
		taskOpts = append(taskOpts, asynq.TaskID(reconcileTaskID(importID, createdAt)))
	}
	task := asynq.NewTask(TypeImportReconcile, data, Options(portal, taskOpts...)...)
	_, err = im.client.EnqueueContext(ctx, task)
	if first && errors.Is(err, asynq.ErrTaskIDConflict) {
		// The first reconcile task is still there: waiting or running (it
		// will do the work), or archived because it failed for good, which
		// is what a retry is for.
		var deleted bool
		if deleted, err = im.deleteArchived(QueueName(portal), reconcileTaskID(importID, createdAt)); deleted {
			_, err = im.client.EnqueueContext(ctx, task)
		}
	}
	if err == nil {
		im.markActive(ctx, portal)
	}
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("import %s: enqueue the reconcile task: %w", importID, err)
	}
	return 1, nil
}

// deleteArchived deletes the task id of queue if it is archived, so that
// its ID can be used again; it reports whether the ID is free now (also
// when the task left meanwhile).
func (im *Imports) deleteArchived(queue, id string) (bool, error) {
	info, err := im.inspector.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("look at task %s: %w", id, err)
	case info.State != asynq.TaskStateArchived:
		return false, asynq.ErrTaskIDConflict
	}
	if err := im.inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return false, fmt.Errorf("remove archived task %s: %w", id, err)
	}
	return true, nil
}

// retryFailed deletes the archived tasks of the failed items, so that their
// task IDs are free again, then resets them in the store. It returns the
// keys reset.
func (im *Imports) retryFailed(ctx context.Context, portal, importID string) ([]string, error) {
	keys, err := im.store.Failures(ctx, importID)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	queue := QueueName(portal)
	for _, k := range keys {
		err := im.inspector.DeleteTask(queue, ImportTaskID(importID, k))
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
			// Most likely the task is still active (its failure was just
			// recorded); leave everything as it is for the next Submit.
			return nil, fmt.Errorf("import %s: retry failed item %s: remove its old task: %w", importID, k, err)
		}
	}
	return im.store.ResetFailed(ctx, importID)
}

// enqueue puts items on the queue and marks them queued. Items whose task
// exists already count as queued but not as enqueued. It stops at the first
// error other than a task ID conflict, after marking what it enqueued.
//
// The items named in verify failed before: their failure may have come
// after the portal created them (retries exhausted on lost answers, a
// verify group that gave up), so in batch mode they go to the verify group,
// whose batches look every item up before creating it.
func (im *Imports) enqueue(ctx context.Context, portal, importID string, items []store.Item, verify ...string) (int, error) {
	enqueued := 0
	keys := make([]string, 0, len(items))
	lookFirst := make(map[string]bool, len(verify))
	for _, k := range verify {
		lookFirst[k] = true
	}
	var err error
	for _, it := range items {
		var task *asynq.Task
		task, err = itemTask(portal, importID, it, im.batch, lookFirst[it.Key])
		if err != nil {
			break
		}
		_, err = im.client.EnqueueContext(ctx, task)
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			err = nil
		} else if err == nil {
			enqueued++
		} else {
			err = fmt.Errorf("import %s: enqueue %s: %w", importID, it.Key, err)
			break
		}
		keys = append(keys, it.Key)
	}
	if len(keys) > 0 {
		im.markActive(ctx, portal)
	}
	if _, merr := im.store.MarkQueued(ctx, importID, keys...); merr != nil {
		err = errors.Join(err, merr)
	}
	return enqueued, err
}

// itemTask builds the task of an import item, grouped for batch mode when
// batch is set (in the verify group when verify is set too).
func itemTask(portal, importID string, it store.Item, batch, verify bool) (*asynq.Task, error) {
	opts := []asynq.Option{asynq.TaskID(ImportTaskID(importID, it.Key))}
	group := func(method string) asynq.Option {
		if verify {
			return asynq.Group(verifyGroup(portal, method))
		}
		return asynq.Group(BatchGroup(portal, method))
	}
	if it.Kind == store.KindWorkplace {
		if batch {
			opts = append(opts, group(methodWorkplaceAdd))
		}
		return NewWorkplaceTask(WorkplacePayload{Portal: portal, Title: it.Name, TypeIDs: it.TypeIDs, ImportID: importID, Key: it.Key}, opts...)
	}
	if batch {
		opts = append(opts, group(methodDepartmentAdd))
	}
	return NewDepartmentTask(DepartmentPayload{
		Portal: portal, Name: it.Name, Parent: it.ParentID, Sort: it.Sort, Head: it.Head, ImportID: importID, Key: it.Key,
	}, opts...)
}

// Status returns the import's state; the JSON encoding of store.Status is
// the `enqueue status --json` shape. An unknown import wraps
// store.ErrNotFound.
//
// While the import's portal is unavailable (a revoked credential, a moved
// portal...), Status.Blocked says so, with the reason and what to fix.
func (im *Imports) Status(ctx context.Context, importID string) (store.Status, error) {
	st, err := im.store.Status(ctx, importID)
	if err != nil || st.Done {
		return st, err
	}
	u, down, err := limiter.ReadAvailability(ctx, im.rdb, im.prefix, st.Portal)
	if err != nil {
		return st, err
	}
	if down {
		st.Blocked = &store.Blocked{
			Reason: fmt.Sprintf("portal %s unavailable: %s", st.Portal, u.Code),
			Code:   u.Code, Description: u.Description, Fix: FixFor(u.Code), Since: u.Since, NextCheck: u.NextProbe,
		}
	}
	return st, nil
}

// Existing implements ImportTracker. An import whose state is gone (expired
// or deleted) or that has no such item reports no ID, so the task runs as a
// standalone create.
func (im *Imports) Existing(ctx context.Context, importID, key string) (int64, bool, error) {
	id, ok, err := im.store.Existing(ctx, importID, key)
	if errors.Is(err, store.ErrNotFound) {
		im.logger.WarnContext(ctx, "import state not found; creating without it", "import_id", importID, "key", key)
		return 0, false, nil
	}
	return id, ok, err
}

// Created implements ImportTracker: it records the item's ID (the first
// recorded ID wins) and enqueues every child still waiting for it, then
// marks them queued. It returns nil only once every child is on the queue,
// so that a crash in between leaves the parent's task to run again; the
// retry finds the ID through Existing and releases the same children (their
// deterministic task IDs make a second enqueue a no-op).
func (im *Imports) Created(ctx context.Context, importID, key string, id int64) error {
	children, err := im.store.Complete(ctx, importID, key, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnknownItem) {
		// Nothing to release: the object exists, which is what the task was for.
		im.logger.WarnContext(ctx, "created an item the import state does not know", "import_id", importID, "key", key, "id", id, "err", err)
		return nil
	}
	if err != nil || len(children) == 0 {
		return err
	}
	portal, err := im.portal(ctx, importID)
	if err != nil {
		return err
	}
	_, err = im.enqueue(ctx, portal, importID, children)
	return err
}

// Failed implements ImportTracker: it fails the item and its subtree (see
// store.Store.Fail). A failure of an item the state does not know is
// logged and dropped.
func (im *Imports) Failed(ctx context.Context, importID, key, reason string) error {
	n, err := im.store.Fail(ctx, importID, key, reason)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnknownItem) {
		im.logger.WarnContext(ctx, "failed item the import state does not know", "import_id", importID, "key", key, "err", err)
		return nil
	}
	if err == nil && n > 1 {
		im.logger.WarnContext(ctx, "import item failed with its subtree", "import_id", importID, "key", key, "failed", n)
	}
	return err
}

func (im *Imports) portal(ctx context.Context, importID string) (string, error) {
	if p, ok := im.portals.Load(importID); ok {
		return p.(string), nil
	}
	p, err := im.store.Portal(ctx, importID)
	if err != nil {
		return "", err
	}
	im.portals.Store(importID, p)
	return p, nil
}

// markActive marks portal as having work after tasks were enqueued for it
// (Activity). A failure is logged, not returned: the tasks are queued, and
// the workers' sweep finds them.
func (im *Imports) markActive(ctx context.Context, portal string) {
	if err := im.activity.Mark(ctx, portal); err != nil {
		im.logger.WarnContext(ctx, "could not mark the portal as having work; the workers' sweep will find its tasks",
			"portal", portal, "err", err)
	}
}
