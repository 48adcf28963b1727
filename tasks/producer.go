package tasks

import (
	"context"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
)

// Producer is what every producer of tasks shares: the enqueue command and
// the worker's HTTP API call it, so that they accept and refuse the same
// requests. Each method validates by the rules of this package and of
// package importer and writes to the queue only when the whole request is
// valid. Callers branch on the errors with errors.As / errors.Is and only
// translate them (exit code, HTTP status):
//
//   - *ValidationError: a task's fields or the portal name are invalid;
//   - *importer.ValidationError: an import file is invalid (every problem);
//   - importer.ErrInvalidID (wrapped): an import ID breaks importer.ValidateID;
//   - store.ErrConflict (wrapped): the import ID is taken by other content
//     or another portal;
//   - any other error: the queue's Redis failed.
//
// A Producer is safe for concurrent use.
type Producer struct {
	client  *asynq.Client
	imports *Imports
}

// NewProducer returns a Producer that enqueues single tasks with client and
// submits imports with imports; both must use the same Redis. imports may be
// nil for a Producer that only enqueues single tasks.
func NewProducer(client *asynq.Client, imports *Imports) *Producer {
	return &Producer{client: client, imports: imports}
}

// EnqueueDepartment validates d (see DepartmentPayload.Validate; an empty
// Portal is DefaultPortal) and enqueues a department:create task with the
// default options and opts.
func (p *Producer) EnqueueDepartment(ctx context.Context, d DepartmentPayload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	task, err := NewDepartmentTask(d, opts...)
	if err != nil {
		return nil, err
	}
	return p.client.EnqueueContext(ctx, task)
}

// EnqueueWorkplace validates w (see WorkplacePayload.Validate; an empty
// Portal is DefaultPortal) and enqueues a workplace:create task with the
// default options and opts.
func (p *Producer) EnqueueWorkplace(ctx context.Context, w WorkplacePayload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	task, err := NewWorkplaceTask(w, opts...)
	if err != nil {
		return nil, err
	}
	return p.client.EnqueueContext(ctx, task)
}

// SubmitImport checks the portal ("" is DefaultPortal) and the import ID
// (when given) before the file, then validates the whole file and submits
// it (see Imports.Submit). An empty importID is DerivedImportID(portal, f).
func (p *Producer) SubmitImport(ctx context.Context, portal, importID string, f *importer.File) (SubmitResult, error) {
	if portal == "" {
		portal = DefaultPortal
	}
	if err := problemsErr(checkPortal(portal, nil)); err != nil {
		return SubmitResult{}, err
	}
	if importID != "" {
		if err := importer.ValidateID(importID); err != nil {
			return SubmitResult{}, err
		}
	}
	return p.imports.Submit(ctx, portal, importID, f)
}

// DerivedImportID is the ID of the import of f on portal when the producer
// gives none: the content's ID (f.ID()), with "-PORTAL" appended for a
// portal other than DefaultPortal ("" counts as DefaultPortal), so that one
// file can go to two portals. Running the same content again therefore
// resumes the same import. Imports.Submit uses it, and `enqueue import
// --dry-run` prints it.
func DerivedImportID(portal string, f *importer.File) string {
	return derivedImportID(portal, f.ID())
}

// derivedImportID is DerivedImportID of a file whose ID is digest.
func derivedImportID(portal, digest string) string {
	if portal == "" || portal == DefaultPortal {
		return digest
	}
	return digest + "-" + portal
}
