package tasks

// Asking a worker for the plan of an import (enqueue import --plan, POST
// /v1/imports?plan=1): only a worker holds the portal's credentials, so the
// producer queues an import:plan task on the portal's queue and waits for
// its result.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
)

// ErrNoPlan is returned (wrapped) by PlanImport when no worker answered in
// time: none serves the portal, or they are all busy.
var ErrNoPlan = errors.New("no worker planned the import in time")

// planPoll is how often PlanImport looks for the plan.
const planPoll = 200 * time.Millisecond

// PlanImport asks a worker to read what portal holds and plan f against it
// (what would be created, what exists, what differs, what is in conflict),
// creating nothing, and waits up to wait for the answer. f must be valid.
// The plan task is kept an hour for inspection (Retention).
func (p *Producer) PlanImport(ctx context.Context, portal string, f *importer.File, policy importer.OnConflict, wait time.Duration) (Plan, error) {
	if portal == "" {
		portal = DefaultPortal
	}
	if err := f.Validate(); err != nil {
		return Plan{}, err
	}
	if err := p.checkServed(ctx, portal); err != nil {
		return Plan{}, err
	}
	raw, err := f.JSON()
	if err != nil {
		return Plan{}, fmt.Errorf("encode the file: %w", err)
	}
	task, err := NewPlanTask(portal, policy, raw, asynq.Retention(time.Hour), asynq.MaxRetry(3))
	if err != nil {
		return Plan{}, err
	}
	info, err := p.client.EnqueueContext(ctx, task)
	if err == nil {
		_ = p.activity.Mark(ctx, portal) // queued; the sweep finds it otherwise
	}
	if err != nil {
		return Plan{}, fmt.Errorf("enqueue the plan: %w", err)
	}
	return p.waitPlan(ctx, info, wait)
}

// waitPlan polls the plan task until it completed (its result is the plan)
// or failed for good, or wait passed.
func (p *Producer) waitPlan(ctx context.Context, info *asynq.TaskInfo, wait time.Duration) (Plan, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(planPoll)
	defer tick.Stop()
	for {
		got, err := p.imports.inspector.GetTaskInfo(info.Queue, info.ID)
		switch {
		case err != nil:
			return Plan{}, fmt.Errorf("read the plan task: %w", err)
		case got.State == asynq.TaskStateCompleted:
			var plan Plan
			if err := json.Unmarshal(got.Result, &plan); err != nil {
				return Plan{}, fmt.Errorf("read the plan: %w", err)
			}
			return plan, nil
		case got.State == asynq.TaskStateArchived:
			return Plan{}, fmt.Errorf("the worker could not plan the import: %s", got.LastErr)
		}
		select {
		case <-ctx.Done():
			return Plan{}, ctx.Err()
		case <-deadline.C:
			_ = p.imports.inspector.DeleteTask(info.Queue, info.ID)
			return Plan{}, fmt.Errorf("%w (%v, task %s): is a worker serving portal %s?", ErrNoPlan, wait, info.ID, PortalOf(info.Queue))
		case <-tick.C:
		}
	}
}

// PortalOf returns the portal of a portal queue name ("b24:acme" → "acme").
func PortalOf(queue string) string {
	name, _ := PortalOfQueue(queue)
	return name
}
