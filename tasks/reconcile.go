package tasks

// Reconciling an import with what its portal already holds, before anything
// is created. A portal is rarely empty, and an HR export is imported again
// and again: so the first task of a new import (import:reconcile) reads the
// portal's whole structure in as few requests as it allows (2,500
// departments a request, b24.Client.ReadStructure), matches every row by
// exact trimmed (PARENT, NAME) or title (importer.File.Reconcile), adopts
// what exists (recorded with the portal's ID, its children released at
// once), fails what is ambiguous (--on-conflict fail, the default) and only
// then releases the rest to be created. With --update it also changes the
// fields of adopted objects that differ. The same read answers
// `enqueue import --plan` (import:plan), which creates nothing.
//
// Exactly once then also holds after a Redis data loss: the file submitted
// again adopts what the first run created.

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
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
)

// Task types of reconciling.
const (
	// TypeImportReconcile reads the portal, adopts what an import finds
	// there, and releases the rest.
	TypeImportReconcile = "import:reconcile"
	// TypeImportPlan reads the portal and plans an import file, creating
	// nothing; the plan is the task's result.
	TypeImportPlan = "import:plan"
)

// ReconcilePayload is the payload of an import:reconcile task.
type ReconcilePayload struct {
	Portal   string `json:"portal"`
	ImportID string `json:"import_id"`
	// Update applies the file's values to adopted objects that differ.
	Update bool `json:"update,omitempty"`
	// OnConflict is "fail" (default) or "first".
	OnConflict importer.OnConflict `json:"on_conflict,omitempty"`
}

// PlanPayload is the payload of an import:plan task: the import file as
// JSON (design.md's format).
type PlanPayload struct {
	Portal     string              `json:"portal"`
	OnConflict importer.OnConflict `json:"on_conflict,omitempty"`
	File       json.RawMessage     `json:"file"`
}

// Plan is the result of an import:plan task: what an import of the file
// would do, item by item. Its JSON is the stable `enqueue import --plan
// --json` shape.
type Plan struct {
	Portal string `json:"portal"`
	*importer.Reconciliation
	// Requests is how many requests reading the portal took.
	Requests int `json:"requests"`
}

// reconciler gives the reconcile step the import engine behind a handler's
// ImportTracker: *Imports implements it, and so does any tracker that
// embeds one.
type reconciler interface{ importsOf() *Imports }

func (im *Imports) importsOf() *Imports { return im }

// reconcileTaskID is the task ID of the reconcile task of an import's state
// created at createdAt: submitting twice queues it once.
func reconcileTaskID(importID string, createdAt time.Time) string {
	return "reconcile:" + importID + ":" + strconv.FormatInt(createdAt.UnixNano(), 10)
}

// processReconcile runs an import:reconcile task.
func (h *Handler) processReconcile(ctx context.Context, t *asynq.Task) error {
	var p ReconcilePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return &PermanentError{Err: fmt.Errorf("decode %s payload: %w", t.Type(), err)}
	}
	portal, err := h.servedPortal(p.Portal)
	if err != nil {
		return err
	}
	rc, ok := h.imports.(reconciler)
	if !ok {
		return &PermanentError{Err: errors.New("reconcile: the handler's ImportTracker is not an *Imports")}
	}
	im := rc.importsOf()
	entries, err := im.store.Entries(ctx, p.ImportID)
	if errors.Is(err, store.ErrNotFound) {
		return &PermanentError{Err: err}
	}
	if err != nil {
		return err
	}
	f, known := fileOf(entries)
	s, err := portal.Client.ReadStructure(ctx, len(f.Workplaces) > 0)
	if err != nil {
		return fmt.Errorf("read the portal's structure: %w", err)
	}
	plan := f.Reconcile(existingOf(s), p.OnConflict, known)
	if err := h.applyPlan(ctx, im, portal, p, entries, plan); err != nil {
		return err
	}
	h.logger.InfoContext(ctx, "import reconciled", "import_id", p.ImportID, "portal", p.Portal, "requests", s.Requests,
		"create", plan.Totals[importer.ActionCreate], "exists", plan.Totals[importer.ActionExists],
		"differs", plan.Totals[importer.ActionDiffers], "conflict", plan.Totals[importer.ActionConflict])
	return nil
}

// applyPlan adopts, fails and updates what plan says, then releases what
// can be created and records the import as reconciled. Every step may run
// again after a crash: adopting, failing and releasing are idempotent, and
// an update already applied plans as exists next time.
func (h *Handler) applyPlan(ctx context.Context, im *Imports, portal *Portal, p ReconcilePayload, entries []store.Entry, plan *importer.Reconciliation) error {
	open := map[string]bool{} // items without a portal ID, not failed
	for _, e := range entries {
		if e.ID == 0 && e.State != "failed" {
			open[e.Key] = true
		}
	}
	var adopt []store.Adoption
	var updates []importer.PlannedItem
	for _, it := range plan.Items {
		switch {
		case it.ID != 0 && open[it.Key]:
			adopt = append(adopt, store.Adoption{Key: it.Key, ID: it.ID})
		case it.Action == importer.ActionConflict && it.ID == 0 && open[it.Key]:
			if _, err := im.store.Fail(ctx, p.ImportID, it.Key, "conflict: "+it.Reason); err != nil && !errors.Is(err, store.ErrUnknownItem) {
				return err
			}
		}
		if p.Update && it.Action == importer.ActionDiffers {
			updates = append(updates, it)
		}
	}
	if _, err := im.store.Adopt(ctx, p.ImportID, adopt); err != nil {
		return err
	}
	for range adopt {
		h.metrics.adopted(p.Portal, "reconcile")
	}
	if err := h.update(ctx, im, portal, p.ImportID, updates); err != nil {
		return err
	}
	// Reconciled before the release: a crash in between leaves the release
	// to the next Submit (which resumes a reconciled import), never a second
	// reconcile racing with created items.
	if err := im.store.SetReconciled(ctx, p.ImportID); err != nil {
		return err
	}
	items, err := im.store.Releasable(ctx, p.ImportID)
	if err != nil {
		return err
	}
	_, err = im.enqueue(ctx, p.Portal, p.ImportID, items)
	return err
}

// update applies the file's values to the objects of items, 50 changes a
// batch request, and marks the items updated.
func (h *Handler) update(ctx context.Context, im *Imports, portal *Portal, importID string, items []importer.PlannedItem) error {
	for len(items) > 0 {
		n := min(len(items), b24.MaxBatch)
		chunk := items[:n]
		items = items[n:]
		cmds := make([]b24.BatchCommand, len(chunk))
		for i, it := range chunk {
			cmds[i] = updateCommand("u"+strconv.Itoa(i), it)
		}
		res, _, err := portal.Client.Batch(ctx, false, cmds)
		if err != nil {
			return fmt.Errorf("update adopted objects: %w", err)
		}
		var done []string
		for i, it := range chunk {
			if e := res.Errors[cmds[i].Key]; e != nil {
				return fmt.Errorf("update %s %d: %w", it.Kind, it.ID, e)
			}
			done = append(done, it.Key)
		}
		if _, err := im.store.MarkUpdated(ctx, importID, done...); err != nil {
			return err
		}
	}
	return nil
}

// updateCommand is the batch command that gives an object the row's values.
func updateCommand(key string, it importer.PlannedItem) b24.BatchCommand {
	if it.Kind == "workplace" {
		var ids []int64
		for _, c := range it.Changes {
			if c.Field == "type_ids" {
				ids = parseIDs(c.To)
			}
		}
		return b24.AutomatedSolutionUpdateCommand(key, it.ID, ids)
	}
	u := b24.DepartmentUpdate{ID: it.ID}
	for _, c := range it.Changes {
		n, _ := strconv.ParseInt(c.To, 10, 64)
		switch c.Field {
		case "sort":
			u.Sort = int(n)
		case "head":
			u.Head = n
		}
	}
	return b24.DepartmentUpdateCommand(key, u)
}

// parseIDs parses "1, 2, 3".
func parseIDs(s string) []int64 {
	var out []int64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if n, err := strconv.ParseInt(part, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// processPlan runs an import:plan task: the plan of the payload's file
// against the portal, as the task's result.
func (h *Handler) processPlan(ctx context.Context, t *asynq.Task) error {
	var p PlanPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return &PermanentError{Err: fmt.Errorf("decode %s payload: %w", t.Type(), err)}
	}
	portal, err := h.servedPortal(p.Portal)
	if err != nil {
		return err
	}
	f, err := importer.DefaultLimits.ParseBytes(importer.JSON, p.File)
	if err == nil {
		err = f.Validate()
	}
	if err != nil {
		return &PermanentError{Err: err}
	}
	s, err := portal.Client.ReadStructure(ctx, len(f.Workplaces) > 0)
	if err != nil {
		return fmt.Errorf("read the portal's structure: %w", err)
	}
	plan := Plan{Portal: p.Portal, Reconciliation: f.Reconcile(existingOf(s), p.OnConflict, nil), Requests: s.Requests}
	data, err := json.Marshal(plan)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("encode the plan: %w", err)}
	}
	if w := t.ResultWriter(); w != nil {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write the plan: %w", err)
		}
	}
	return nil
}

// fileOf rebuilds the import's file from its entries, and the IDs of the
// entries that have one.
func fileOf(entries []store.Entry) (*importer.File, map[string]int64) {
	f := &importer.File{}
	known := map[string]int64{}
	for _, e := range entries {
		if e.ID != 0 {
			known[e.Key] = e.ID
		}
		if e.Kind == store.KindWorkplace {
			f.Workplaces = append(f.Workplaces, importer.Workplace{Key: e.Key, Title: e.Name, TypeIDs: e.TypeIDs})
			continue
		}
		d := importer.Department{Key: e.Key, Name: e.Name, Parent: e.Parent, Sort: e.Sort, Head: e.Head}
		if e.Parent == "" {
			pid := e.ParentID
			d.ParentID = &pid
		}
		f.Departments = append(f.Departments, d)
	}
	return f, known
}

// existingOf turns what the portal holds into the matcher's terms.
func existingOf(s b24.Structure) importer.Existing {
	var ex importer.Existing
	for _, d := range s.Departments {
		ex.Departments = append(ex.Departments, importer.ExistingDepartment{ID: d.ID, Parent: d.Parent, Name: d.Name, Sort: d.Sort, Head: d.Head})
	}
	for _, w := range s.Workplaces {
		ex.Workplaces = append(ex.Workplaces, importer.ExistingWorkplace{ID: w.ID, Title: w.Title, TypeIDs: w.TypeIDs})
	}
	return ex
}

// NewPlanTask returns an import:plan task for the import file raw (JSON)
// on portal. Its result, once the task completed, is a Plan.
func NewPlanTask(portal string, policy importer.OnConflict, raw json.RawMessage, opts ...asynq.Option) (*asynq.Task, error) {
	if portal == "" {
		portal = DefaultPortal
	}
	if err := problemsErr(checkPortal(portal, nil)); err != nil {
		return nil, err
	}
	data, err := json.Marshal(PlanPayload{Portal: portal, OnConflict: policy, File: raw})
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", TypeImportPlan, err)
	}
	return asynq.NewTask(TypeImportPlan, data, Options(portal, opts...)...), nil
}

// failReconcile fails the open items of an import whose reconcile task
// failed for good: nothing was released, and nothing may be created without
// knowing what the portal holds. Re-submitting the file tries again.
func (h *Handler) failReconcile(ctx context.Context, t *asynq.Task, cause error) error {
	var p ReconcilePayload
	_ = json.Unmarshal(t.Payload(), &p)
	rc, ok := h.imports.(reconciler)
	if !ok {
		return cause
	}
	im := rc.importsOf()
	entries, err := im.store.Entries(ctx, p.ImportID)
	if err != nil {
		return cause
	}
	var ferr error
	for _, e := range entries {
		if e.ID == 0 && e.State != "failed" && e.Parent == "" {
			if _, err := im.store.Fail(ctx, p.ImportID, e.Key, "reconcile failed: "+cause.Error()); err != nil {
				ferr = errors.Join(ferr, err)
			}
		}
	}
	if ferr != nil {
		return fmt.Errorf("record the failure of import %s: %w (after: %v)", p.ImportID, ferr, cause)
	}
	return cause
}
