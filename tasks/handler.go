package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/claim"
)

// ImportTracker records the outcome of tasks that belong to an import and
// releases the children of a created parent. Every method is idempotent: a
// task may run again after a crash and call it a second time.
type ImportTracker interface {
	// Existing reports the portal ID already recorded for the item, if any.
	Existing(ctx context.Context, importID, key string) (id int64, ok bool, err error)
	// Created records the item's portal ID and enqueues its children. It
	// returns only once the children are safely queued, so that a crash in
	// between leaves the parent task to be run again.
	Created(ctx context.Context, importID, key string, id int64) error
	// Failed records a final failure of the item and fails its subtree.
	Failed(ctx context.Context, importID, key, reason string) error
}

// Handler processes department:create and workplace:create tasks. It is safe
// for concurrent use by every worker goroutine of an asynq server.
type Handler struct {
	// portals are the clients of the portals this worker may serve, by
	// name: fixed ones from HandlerConfig, and ones the worker adds and
	// removes while it runs (SetPortal, RemovePortal: portals registered
	// at run time, see internal/fleet).
	portalsMu sync.RWMutex
	portals   map[string]*Portal
	claims    *Claims
	imports   ImportTracker
	logger    *slog.Logger
	metrics   *Metrics
	clock     clock
	// inspector, when set, wakes a portal's parked tasks once it is
	// available again.
	inspector *asynq.Inspector
	// maxRequeues is maxItemRequeues (tests lower it).
	maxRequeues int
}

// HandlerConfig holds what a Handler needs. Claims is required; Portals
// may be empty when the worker adds its portals while it runs
// (SetPortal); Imports may be nil when no imports are processed.
type HandlerConfig struct {
	Portals []*Portal
	Claims  *Claims
	Imports ImportTracker
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock of park times and requeues (default time.Now): tests
	// inject one.
	Now func() time.Time
	// Inspector, optional, wakes a portal's parked tasks once a probe found
	// it available again (without it they come back at their own time).
	Inspector *asynq.Inspector
}

// NewHandler returns a Handler for cfg.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Claims == nil {
		return nil, errors.New("tasks: HandlerConfig.Claims is required")
	}
	h := &Handler{
		portals: make(map[string]*Portal, len(cfg.Portals)),
		claims:  cfg.Claims,
		imports: cfg.Imports,
		logger:  cfg.Logger,
		metrics: cfg.Metrics,
		clock:   clock{nowFn: cfg.Now},

		inspector:   cfg.Inspector,
		maxRequeues: maxItemRequeues,
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range cfg.Portals {
		h.portals[p.Name] = p
	}
	return h, nil
}

// Mux returns an asynq.ServeMux with the task types registered behind the
// logging and error-mapping middleware: department:create,
// workplace:create, and the import steps import:reconcile and import:plan.
func (h *Handler) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(h.logging, h.mapErrors)
	mux.HandleFunc(TypeDepartmentCreate, h.processDepartment)
	mux.HandleFunc(TypeWorkplaceCreate, h.processWorkplace)
	mux.HandleFunc(TypeImportReconcile, h.processReconcile)
	mux.HandleFunc(TypeImportPlan, h.processPlan)
	return mux
}

// PortalNames returns the names of the portals this handler serves, sorted.
func (h *Handler) PortalNames() []string {
	h.portalsMu.RLock()
	defer h.portalsMu.RUnlock()
	return slices.Sorted(maps.Keys(h.portals))
}

// portal returns the client of the portal named name.
func (h *Handler) portal(name string) (*Portal, bool) {
	h.portalsMu.RLock()
	defer h.portalsMu.RUnlock()
	p, ok := h.portals[name]
	return p, ok
}

// servedPortal is portal for a task's portal: one the worker has no
// client for fails the task for good (ErrUnknownPortal).
func (h *Handler) servedPortal(name string) (*Portal, error) {
	p, ok := h.portal(name)
	if !ok {
		return nil, &PermanentError{Err: fmt.Errorf("%w %q: the worker has no credentials for it", ErrUnknownPortal, name)}
	}
	return p, nil
}

// SetPortal adds p, or replaces the portal of that name (new credentials
// or limits): tasks started from now on use it.
func (h *Handler) SetPortal(p *Portal) {
	h.portalsMu.Lock()
	defer h.portalsMu.Unlock()
	h.portals[p.Name] = p
}

// RemovePortal forgets the portal named name: its tasks fail as for a
// portal the worker has no credentials for, so the worker must stop
// serving its queue first.
func (h *Handler) RemovePortal(name string) {
	h.portalsMu.Lock()
	defer h.portalsMu.Unlock()
	delete(h.portals, name)
}

// creation is one object to create exactly once.
type creation struct {
	portal, method string
	importID, key  string
	// kind and identity name the object's claim (claims.go); what is the
	// object in words, for logs.
	kind, identity, what string
	lookup               func(context.Context, *b24.Client) (int64, bool, error)
	create               func(context.Context, *b24.Client) (int64, error)
}

// createResult is what a finished task writes with its ResultWriter.
type createResult struct {
	ID      int64 `json:"id"`
	Adopted bool  `json:"adopted,omitempty"`
}

// createOnce creates c's object unless an earlier attempt already did.
func (h *Handler) createOnce(ctx context.Context, t *asynq.Task, c creation) error {
	portal, err := h.servedPortal(c.portal)
	if err != nil {
		return err
	}
	if c.importID != "" && h.imports != nil {
		id, done, err := h.imports.Existing(ctx, c.importID, c.key)
		if err != nil {
			return fmt.Errorf("read import state: %w", err)
		}
		if done {
			// Created by an earlier run whose task did not finish (a crash
			// after recording, before the children were released).
			return h.finish(ctx, t, c, id, true)
		}
	}

	taskID, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	owner := taskID
	if owner == "" { // run outside an asynq server: a claim of its own
		owner = "run-" + claim.NewToken()
	}
	cl := h.claims.of(c.portal, c.kind, c.identity, owner, claim.NewToken())
	taken, granted, err := h.claimObject(ctx, portal, c.method, cl)
	if err != nil {
		return err
	}
	now := h.clock.now()
	switch {
	case taken.State == claim.Busy:
		return &ParkError{Until: now.Add(busyPark), Reason: fmt.Sprintf("another task is creating the same %s", c.what)}
	case taken.State.LookFirst() || retried > 0:
		if at := h.claims.lookAfter(taken); at.After(now) {
			return &ParkError{Until: at, Reason: "an earlier attempt's request may still be running at the portal"}
		}
		id, found, err := c.lookup(ctx, portal.Client)
		if err != nil {
			// The claim stays this task's: the next run looks again.
			return fmt.Errorf("look up before creating again: %w", err)
		}
		if found {
			h.metrics.adopted(c.portal, c.method)
			h.settle(ctx, claim.Settlement{Claim: cl, Outcome: claim.Known})
			return h.finish(ctx, t, c, id, true)
		}
	}
	if !granted {
		if err := portal.paceChecked(ctx, c.method, []claim.Claim{cl}, h.claims.ttl); err != nil {
			return fmt.Errorf("b24: %s: pacer: %w", c.method, err)
		}
	}
	id, err := c.create(withPrepaid(ctx, c.method), portal.Client)
	if err != nil {
		if !b24.IsAmbiguous(err) {
			// The portal created nothing: whoever comes next may create.
			h.settle(ctx, claim.Settlement{Claim: cl, Outcome: claim.Free})
		}
		return err
	}
	h.settle(ctx, claim.Settlement{Claim: cl, Outcome: claim.Known})
	return h.finish(ctx, t, c, id, false)
}

// claimObject takes the object's claim: in the grant of the create
// request's slot (granted is true when the claim was fresh and the slot is
// the caller's), or, when replicas must acknowledge it, in a round trip of
// its own (no slot granted).
func (h *Handler) claimObject(ctx context.Context, portal *Portal, method string, cl claim.Claim) (taken claim.Taken, granted bool, err error) {
	if h.claims.replicas > 0 {
		ts, err := h.claims.take(ctx, []claim.Claim{cl})
		if err != nil {
			return claim.Taken{}, false, err
		}
		return ts[0], false, nil
	}
	taken, err = portal.paceClaim(ctx, method, cl, h.claims.ttl)
	if err != nil {
		return claim.Taken{}, false, fmt.Errorf("b24: %s: pacer: %w", method, err)
	}
	return taken, taken.State == claim.Fresh, nil
}

// settle settles claims; a failure only leaves them to their TTL (the next
// run of their owner looks first, others wait), so it is logged.
func (h *Handler) settle(ctx context.Context, ss ...claim.Settlement) {
	if err := h.claims.settle(ctx, ss); err != nil {
		h.logger.WarnContext(ctx, "settle object claims", "err", err)
	}
}

// finish records a created (or adopted) object: in the import state first,
// so children are released, then as the task's result.
func (h *Handler) finish(ctx context.Context, t *asynq.Task, c creation, id int64, adopted bool) error {
	if c.importID != "" && h.imports != nil {
		if err := h.imports.Created(ctx, c.importID, c.key, id); err != nil {
			return fmt.Errorf("record import item %s: %w", c.key, err)
		}
	}
	// Only single tasks write their result (the created ID, shown in the
	// dashboard): an import item's ID is in the import state already, and
	// its deterministic task ID must not be recreated by a late HSET after
	// Redis lost the task (a resubmitted import would then take the phantom
	// for a queued task and wait for it forever).
	taskID, _ := asynq.GetTaskID(ctx)
	if w := t.ResultWriter(); w != nil && c.importID == "" {
		data, _ := json.Marshal(createResult{ID: id, Adopted: adopted})
		if _, err := w.Write(data); err != nil {
			h.logger.WarnContext(ctx, "write task result", "task_id", taskID, "err", err)
		}
	}
	logOutcome(ctx, outcomeCreated)
	if adopted {
		logOutcome(ctx, outcomeAdopted)
	}
	return nil
}

// decodePayload decodes a task's JSON payload and validates it. A payload
// that cannot be used (a producer sent garbage) is a permanent failure:
// retrying would only fail again.
func decodePayload(t *asynq.Task, v interface{ Validate() error }) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return &PermanentError{Err: fmt.Errorf("decode %s payload: %w", t.Type(), err)}
	}
	if err := v.Validate(); err != nil {
		return &PermanentError{Err: err}
	}
	return nil
}

// itemRef is the part of every payload that ties a task to an import.
type itemRef struct {
	Portal   string `json:"portal"`
	ImportID string `json:"import_id"`
	Key      string `json:"key"`
	// Requeued counts how often a batch put the item back after a
	// transient failure (see maxItemRequeues); absent until then.
	Requeued int `json:"requeued,omitempty"`
}

func refOf(t *asynq.Task) itemRef {
	var r itemRef
	_ = json.Unmarshal(t.Payload(), &r)
	return r
}
