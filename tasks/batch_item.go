package tasks

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/claim"
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
	// claim is the run's claim on the item's object (claims.go), once
	// taken; settle is how the run settles it (0: leave it as it is).
	claim  claim.Claim
	settle claim.Outcome
}

// identity returns the kind and identity of the item's object claim.
func (it *batchItem) identity() (kind, identity string) {
	if it.method == methodWorkplaceAdd {
		return kindWorkplace, workplaceIdentity(it.wp.Title)
	}
	return kindDepartment, departmentIdentity(it.dept.Parent, it.dept.Name)
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
