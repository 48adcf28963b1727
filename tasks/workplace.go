package tasks

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/importer"
)

// WorkplacePayload is the payload of a workplace:create task
// (crm.automatedsolution.add). A workplace is identified by its title.
type WorkplacePayload struct {
	Portal string `json:"portal"`
	Title  string `json:"title"`
	// TypeIDs are the smart-process types to attach to the workplace.
	TypeIDs  []int64 `json:"type_ids,omitempty"`
	ImportID string  `json:"import_id,omitempty"`
	Key      string  `json:"key,omitempty"`
}

// Validate returns a *ValidationError listing every problem, or nil.
func (p WorkplacePayload) Validate() error {
	problems := checkPortal(p.Portal, nil)
	problems = checkName("title", p.Title, problems)
	for i, id := range p.TypeIDs {
		if id <= 0 {
			problems = append(problems, fmt.Sprintf("type_ids[%d] = %d: must be a positive ID", i, id))
		}
	}
	if (p.ImportID == "") != (p.Key == "") {
		problems = append(problems, "import_id and key go together")
	}
	return problemsErr(problems)
}

// fields are the crm.automatedsolution.add fields of p.
func (p WorkplacePayload) fields() b24.AutomatedSolutionFields {
	return b24.AutomatedSolutionFields{Title: p.Title, TypeIDs: p.TypeIDs}
}

// NewWorkplaceTask trims p's title (importer.TrimName), validates p and returns a workplace:create task with the
// default options for p's portal (see Options); opts may override them.
func NewWorkplaceTask(p WorkplacePayload, opts ...asynq.Option) (*asynq.Task, error) {
	if p.Portal == "" {
		p.Portal = DefaultPortal
	}
	p.Title = importer.TrimName(p.Title)
	return newTask(TypeWorkplaceCreate, p.Portal, p, opts)
}

func (h *Handler) processWorkplace(ctx context.Context, t *asynq.Task) error {
	var p WorkplacePayload
	if err := decodePayload(t, &p); err != nil {
		return err
	}
	return h.createOnce(ctx, t, creation{
		portal:   p.Portal,
		method:   methodWorkplaceAdd,
		importID: p.ImportID,
		key:      p.Key,
		kind:     kindWorkplace,
		identity: workplaceIdentity(p.Title),
		what:     "workplace",
		lookup: func(ctx context.Context, c *b24.Client) (int64, bool, error) {
			s, found, err := c.FindAutomatedSolution(ctx, p.Title)
			return s.ID, found, err
		},
		create: func(ctx context.Context, c *b24.Client) (int64, error) {
			s, _, err := c.AddAutomatedSolution(ctx, p.fields())
			return s.ID, err
		},
	})
}
