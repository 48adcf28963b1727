package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
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
	portals  map[string]*Portal
	attempts *Attempts
	imports  ImportTracker
	logger   *slog.Logger
	metrics  *Metrics
	clock    clock
	// maxRequeues is maxItemRequeues (tests lower it).
	maxRequeues int
}

// HandlerConfig holds what a Handler needs. Portals and Attempts are
// required; Imports may be nil when no imports are processed.
type HandlerConfig struct {
	Portals  []*Portal
	Attempts *Attempts
	Imports  ImportTracker
	Logger   *slog.Logger
	Metrics  *Metrics
	// Now is the clock of park times and requeues (default time.Now): tests
	// inject one.
	Now func() time.Time
}

// NewHandler returns a Handler for cfg.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Attempts == nil {
		return nil, errors.New("tasks: HandlerConfig.Attempts is required")
	}
	if len(cfg.Portals) == 0 {
		return nil, errors.New("tasks: HandlerConfig.Portals is empty")
	}
	h := &Handler{
		portals:  make(map[string]*Portal, len(cfg.Portals)),
		attempts: cfg.Attempts,
		imports:  cfg.Imports,
		logger:   cfg.Logger,
		metrics:  cfg.Metrics,
		clock:    clock{nowFn: cfg.Now},

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

// Mux returns an asynq.ServeMux with both task types registered behind the
// logging and error-mapping middleware.
func (h *Handler) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(h.logging, h.mapErrors)
	mux.HandleFunc(TypeDepartmentCreate, h.processDepartment)
	mux.HandleFunc(TypeWorkplaceCreate, h.processWorkplace)
	return mux
}

// PortalNames returns the names of the portals this handler serves.
func (h *Handler) PortalNames() []string {
	names := make([]string, 0, len(h.portals))
	for n := range h.portals {
		names = append(names, n)
	}
	return names
}

// creation is one object to create exactly once.
type creation struct {
	portal, method string
	importID, key  string
	lookup         func(context.Context, *b24.Client) (int64, bool, error)
	create         func(context.Context, *b24.Client) (int64, error)
}

// createResult is what a finished task writes with its ResultWriter.
type createResult struct {
	ID      int64 `json:"id"`
	Adopted bool  `json:"adopted,omitempty"`
}

// createOnce creates c's object unless an earlier attempt already did.
func (h *Handler) createOnce(ctx context.Context, t *asynq.Task, c creation) error {
	portal, ok := h.portals[c.portal]
	if !ok {
		return &PermanentError{Err: fmt.Errorf("%w %q: the worker has no credentials for it", ErrUnknownPortal, c.portal)}
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
	var uncertain bool
	var err error
	if mark, ok := h.attempts.Mark(c.portal, taskID); ok && retried == 0 {
		// A first attempt rarely looks up, so the limiter sets the marker
		// with the grant of the create call's slot: one round trip. The
		// marker is set only if the slot is granted, so a refusal (a
		// block, a long delay) leaves none behind; a granted slot lost to
		// a 503's cooldown or a cancellation leaves it, and the next
		// attempt looks up, which is only wasted work.
		if uncertain, err = portal.paceMarked(ctx, c.method, &mark); err != nil {
			return fmt.Errorf("b24: %s: pacer: %w", c.method, err)
		}
		ctx = withPrepaid(ctx, c.method)
	} else if uncertain, err = h.attempts.Begin(ctx, c.portal, taskID); err != nil {
		return err
	}
	if uncertain || retried > 0 {
		id, found, err := c.lookup(ctx, portal.Client)
		if err != nil {
			// The marker stays: the earlier attempt is still unexplained.
			return fmt.Errorf("look up before creating again: %w", err)
		}
		if found {
			h.metrics.adopted(c.portal, c.method)
			return h.finish(ctx, t, c, id, true)
		}
	}
	id, err := c.create(ctx, portal.Client)
	if err != nil {
		if !b24.IsAmbiguous(err) {
			// The portal did not create anything: the next attempt may
			// create without looking up first.
			if cerr := h.attempts.Clear(ctx, c.portal, taskID); cerr != nil {
				h.logger.WarnContext(ctx, "clear attempt marker", "task_id", taskID, "err", cerr)
			}
		}
		return err
	}
	return h.finish(ctx, t, c, id, false)
}

// finish records a created (or adopted) object: in the import state first,
// so children are released, then as the task's result.
func (h *Handler) finish(ctx context.Context, t *asynq.Task, c creation, id int64, adopted bool) error {
	if c.importID != "" && h.imports != nil {
		if err := h.imports.Created(ctx, c.importID, c.key, id); err != nil {
			return fmt.Errorf("record import item %s: %w", c.key, err)
		}
	}
	// The attempt marker is left to expire: a finished task only runs again
	// if asynq failed to record it as done, and then looking up first is
	// exactly right. Not deleting it saves a round trip per created object.
	//
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
