package tasks

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/importer"
)

// DepartmentPayload is the payload of a department:create task. It names a
// portal, never its credentials: the worker holds those.
type DepartmentPayload struct {
	Portal string `json:"portal"`
	Name   string `json:"name"`
	// Parent is the ID of the parent department in the portal (parent_id in
	// import files, the API and --parent-id): a positive ID, since every
	// portal already has its root department.
	Parent int64 `json:"parent"`
	Sort   int   `json:"sort,omitempty"`
	// Head is the user ID of the department's head (UF_HEAD); 0 for none.
	Head int64 `json:"head,omitempty"`
	// ImportID and Key identify the item when the task is part of an import.
	ImportID string `json:"import_id,omitempty"`
	Key      string `json:"key,omitempty"`
}

// Validate returns a *ValidationError listing every problem, or nil.
func (p DepartmentPayload) Validate() error {
	problems := checkPortal(p.Portal, nil)
	problems = checkName("name", p.Name, problems)
	if msg := importer.ParentIDProblem(p.Parent); msg != "" {
		problems = append(problems, msg)
	}
	if p.Sort < 0 {
		problems = append(problems, fmt.Sprintf("sort %d: must not be negative", p.Sort))
	}
	if p.Head < 0 {
		problems = append(problems, fmt.Sprintf("head %d: must be a user ID", p.Head))
	}
	if (p.ImportID == "") != (p.Key == "") {
		problems = append(problems, "import_id and key go together")
	}
	return problemsErr(problems)
}

// fields are the department.add fields of p.
func (p DepartmentPayload) fields() b24.DepartmentFields {
	return b24.DepartmentFields{Name: p.Name, Parent: p.Parent, Sort: p.Sort, Head: p.Head}
}

// NewDepartmentTask trims p's name (importer.TrimName), validates p and returns a department:create task with the
// default options for p's portal (see Options); opts may override them.
func NewDepartmentTask(p DepartmentPayload, opts ...asynq.Option) (*asynq.Task, error) {
	if p.Portal == "" {
		p.Portal = DefaultPortal
	}
	p.Name = importer.TrimName(p.Name)
	return newTask(TypeDepartmentCreate, p.Portal, p, opts)
}

func (h *Handler) processDepartment(ctx context.Context, t *asynq.Task) error {
	var p DepartmentPayload
	if err := decodePayload(t, &p); err != nil {
		return err
	}
	return h.createOnce(ctx, t, creation{
		portal:   p.Portal,
		method:   methodDepartmentAdd,
		importID: p.ImportID,
		key:      p.Key,
		kind:     kindDepartment,
		identity: departmentIdentity(p.Parent, p.Name),
		what:     "department",
		lookup: func(ctx context.Context, c *b24.Client) (int64, bool, error) {
			d, found, err := c.FindDepartment(ctx, p.Name, p.Parent)
			return d.ID, found, err
		},
		create: func(ctx context.Context, c *b24.Client) (int64, error) {
			id, _, err := c.AddDepartment(ctx, p.fields())
			return id, err
		},
	})
}
