package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

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
//   - *ValidationError: a task's fields or the portal name are invalid, or
//     (WithKnownPortals) no live worker serves the portal;
//   - *importer.ValidationError: an import file is invalid (every problem);
//   - importer.ErrInvalidID (wrapped): an import ID breaks importer.ValidateID;
//   - store.ErrConflict (wrapped): the import ID is taken by other content
//     or another portal;
//   - any other error: the queue's Redis failed.
//
// A Producer is safe for concurrent use.
type Producer struct {
	client   *asynq.Client
	imports  *Imports
	known    KnownPortals
	serves   ServesPortal
	activity Activity
}

// ProducerOption adjusts NewProducer.
type ProducerOption func(*Producer)

// WithKnownPortals makes the Producer refuse a portal that no live worker
// serves, with a *ValidationError naming the portals that are served, instead
// of queueing tasks nobody will ever run. known is asked once per request; an
// empty answer means nobody can tell (no worker is up) and any valid portal
// name is accepted then. Without this option every valid name is accepted.
func WithKnownPortals(known KnownPortals) ProducerOption {
	return func(p *Producer) { p.known = known }
}

// ServesPortal reports whether a live worker serves portal, cheaply (a
// fleet may know thousands of portals: listing them all per request is
// what it saves).
type ServesPortal func(ctx context.Context, portal string) (bool, error)

// WithServesPortal gives WithKnownPortals a quick yes: serves is asked
// first, and the list of known portals is read only when it says no (to
// tell whether anyone can tell, and to name the served portals).
func WithServesPortal(serves ServesPortal) ProducerOption {
	return func(p *Producer) { p.serves = serves }
}

// WithActivity makes the Producer mark a portal active (see Activity)
// after it enqueued a task for it, so that a fleet's workers start on the
// portal at once. A Producer with Imports uses the Imports' Redis for it
// already; this option is for one that only enqueues single tasks. Without
// either, tasks of an idle portal wait for the workers' slow sweep.
func WithActivity(a Activity) ProducerOption {
	return func(p *Producer) { p.activity = a }
}

// NewProducer returns a Producer that enqueues single tasks with client and
// submits imports with imports; both must use the same Redis. imports may be
// nil for a Producer that only enqueues single tasks (then see WithActivity).
func NewProducer(client *asynq.Client, imports *Imports, opts ...ProducerOption) *Producer {
	p := &Producer{client: client, imports: imports}
	if imports != nil {
		p.activity = imports.activity
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// EnqueueDepartment validates d (see DepartmentPayload.Validate; an empty
// Portal is DefaultPortal; the name is trimmed), checks that a worker
// serves the portal (WithKnownPortals) and enqueues a department:create task
// with the default options and opts.
func (p *Producer) EnqueueDepartment(ctx context.Context, d DepartmentPayload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	task, err := NewDepartmentTask(d, opts...)
	if err != nil {
		return nil, err
	}
	return p.enqueue(ctx, d.Portal, task)
}

// EnqueueWorkplace validates w (see WorkplacePayload.Validate; an empty
// Portal is DefaultPortal; the title is trimmed), checks that a worker
// serves the portal (WithKnownPortals) and enqueues a workplace:create task
// with the default options and opts.
func (p *Producer) EnqueueWorkplace(ctx context.Context, w WorkplacePayload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	task, err := NewWorkplaceTask(w, opts...)
	if err != nil {
		return nil, err
	}
	return p.enqueue(ctx, w.Portal, task)
}

func (p *Producer) enqueue(ctx context.Context, portal string, task *asynq.Task) (*asynq.TaskInfo, error) {
	if err := p.checkServed(ctx, portal); err != nil {
		return nil, err
	}
	info, err := p.client.EnqueueContext(ctx, task)
	if err != nil {
		return nil, err
	}
	// The task is queued: a failed mark must not make the caller enqueue
	// it again. The workers' sweep finds it (Activity).
	_ = p.activity.Mark(ctx, portal)
	return info, nil
}

// checkServed refuses a portal no live worker serves, when the Producer
// was given KnownPortals and they can tell.
func (p *Producer) checkServed(ctx context.Context, portal string) error {
	if p.known == nil {
		return nil
	}
	if portal == "" {
		portal = DefaultPortal
	}
	if p.serves != nil {
		if ok, err := p.serves(ctx, portal); err != nil {
			return fmt.Errorf("ask whether a worker serves portal %s: %w", portal, err)
		} else if ok {
			return nil
		}
	}
	served, err := p.known(ctx)
	if err != nil {
		return fmt.Errorf("list the portals workers serve: %w", err)
	}
	if len(served) == 0 || slices.Contains(served, portal) {
		return nil
	}
	return &ValidationError{Problems: []string{UnservedPortalProblem(portal, served)}}
}

// UnservedPortalProblem is the message of a portal no live worker serves
// while others are served. It names at most maxNamedPortals of them: a
// fleet may serve thousands.
func UnservedPortalProblem(portal string, served []string) string {
	names := strings.Join(served, ", ")
	if len(served) > maxNamedPortals {
		names = fmt.Sprintf("%s and %d more (enqueue portal list)", strings.Join(served[:maxNamedPortals], ", "), len(served)-maxNamedPortals)
	}
	return fmt.Sprintf("portal %q: no worker serves it; the portals served now are %s", portal, names)
}

// maxNamedPortals bounds the portals an error message lists.
const maxNamedPortals = 10

// KnownPortals returns the names of the portals that live workers serve,
// sorted. An empty list means that nobody can tell (no worker is up). It is
// the one place a producer learns which portals exist: the fleet's list
// (internal/fleet.Known: every live worker's own portals and the registered
// ones), which the enqueue command and the API use.
type KnownPortals func(ctx context.Context) ([]string, error)

// ServedPortals returns the KnownPortals of asynq's live servers. Workers
// run a portal's asynq server only while the portal has work, so this
// lists the busy portals only: it suits a check that a portal is being
// worked on, not a check that it exists (use the fleet's list for that).
//
// In detail, it is the list of asynq's live servers
// (Inspector.Servers): a worker serves portal NAME while one of its servers
// that has not stopped lists the queue QueueName(NAME). A server that died
// without stopping drops out when its heartbeat expires (asynq's server
// TTL, about 30 s). own are portals the caller serves itself (a worker's
// API: its own portals count before its servers have announced
// themselves).
func ServedPortals(insp *asynq.Inspector, own ...string) KnownPortals {
	return func(context.Context) ([]string, error) {
		servers, err := insp.Servers()
		if err != nil {
			return nil, err
		}
		names := slices.Clone(own)
		for _, s := range servers {
			if s.Status == "stopped" || s.Status == "closed" {
				continue
			}
			for q := range s.Queues {
				if name, ok := PortalOfQueue(q); ok && !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
		}
		slices.Sort(names)
		return names, nil
	}
}

// SubmitImport checks the portal ("" is DefaultPortal) and the import ID
// (when given) before the file, then validates the whole file, checks that
// a worker serves the portal (WithKnownPortals) and submits it (see
// Imports.Submit). An empty importID is DerivedImportID(portal, f).
func (p *Producer) SubmitImport(ctx context.Context, portal, importID string, f *importer.File) (SubmitResult, error) {
	return p.SubmitImportWith(ctx, portal, importID, f, SubmitOptions{})
}

// SubmitImportWith is SubmitImport with options (--update, --on-conflict).
func (p *Producer) SubmitImportWith(ctx context.Context, portal, importID string, f *importer.File, opts SubmitOptions) (SubmitResult, error) {
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
	if p.known != nil {
		// The file's problems come first: they are what the user fixes.
		if err := f.Validate(); err != nil {
			return SubmitResult{}, err
		}
		if err := p.checkServed(ctx, portal); err != nil {
			return SubmitResult{}, err
		}
	}
	return p.imports.SubmitWith(ctx, portal, importID, f, opts)
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

// WaitServed asks known every 20 ms until every one of portals is served,
// for at most timeout (or until ctx ends), and reports whether they are.
// A worker that just started its servers, or a producer that just started
// workers, waits so for asynq to list them.
func WaitServed(ctx context.Context, known KnownPortals, timeout time.Duration, portals ...string) bool {
	deadline := time.Now().Add(timeout)
	for {
		names, err := known(ctx)
		if err == nil && !slices.ContainsFunc(portals, func(p string) bool { return !slices.Contains(names, p) }) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TaskStatus is what became of one task, by its ID alone: `enqueue task
// TASK_ID --json` and GET /v1/tasks/{id} answer with it. Fields that do not
// apply are left out of the JSON.
type TaskStatus struct {
	ID     string `json:"id"`
	Portal string `json:"portal"`
	Queue  string `json:"queue"`
	Type   string `json:"type"`
	// State is asynq's: pending, active, scheduled (parked or delayed),
	// retry (waiting for its next attempt), completed, archived (failed
	// for good) or aggregating (waiting to join a batch).
	State string `json:"state"`
	// ImportID and Key name the import item a task belongs to; an item's
	// created ID is in the import's status, not here.
	ImportID string `json:"import_id,omitempty"`
	Key      string `json:"key,omitempty"`
	// CreatedID is the ID of the created (or adopted) department or
	// workplace of a completed single task; Adopted is set when an earlier
	// attempt had created it already.
	CreatedID int64 `json:"created_id,omitempty"`
	Adopted   bool  `json:"adopted,omitempty"`
	// Error is the last failure of a task that is not completed, and
	// ErrorCode its Bitrix24 error code when it has one (BX_EMPTY_REQUIRED,
	// LIMIT_EXCEEDED, ...).
	Error     string `json:"error,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
	// Retried is the number of failed attempts so far (parking for a
	// limit does not count), of at most MaxRetry.
	Retried  int `json:"retried"`
	MaxRetry int `json:"max_retry"`
	// NextAttemptAt is when a scheduled or retry task runs next.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastFailedAt  *time.Time `json:"last_failed_at,omitempty"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
}

// ErrTaskNotFound is returned (wrapped) by FindTask for an ID that no
// portal's queue holds: never enqueued, or finished longer ago than its
// retention (DefaultRetention).
var ErrTaskNotFound = errors.New("task not found")

// FindTask looks task id up in every portal's queue (queues named
// QueueName(PORTAL)), so that the ID a producer printed is enough.
func FindTask(insp *asynq.Inspector, id string) (TaskStatus, error) {
	queues, err := insp.Queues()
	if err != nil {
		return TaskStatus{}, fmt.Errorf("list queues: %w", err)
	}
	slices.Sort(queues)
	for _, q := range queues {
		portal, ok := PortalOfQueue(q)
		if !ok {
			continue
		}
		info, err := insp.GetTaskInfo(q, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			continue
		case err != nil:
			return TaskStatus{}, fmt.Errorf("read task %s in %s: %w", id, q, err)
		}
		return taskStatus(portal, info), nil
	}
	return TaskStatus{}, fmt.Errorf("%w: %q", ErrTaskNotFound, id)
}

func taskStatus(portal string, info *asynq.TaskInfo) TaskStatus {
	st := TaskStatus{
		ID: info.ID, Portal: portal, Queue: info.Queue, Type: info.Type, State: info.State.String(),
		Retried: info.Retried, MaxRetry: info.MaxRetry,
	}
	var item struct {
		ImportID string `json:"import_id"`
		Key      string `json:"key"`
	}
	if json.Unmarshal(info.Payload, &item) == nil {
		st.ImportID, st.Key = item.ImportID, item.Key
	}
	if info.State == asynq.TaskStateCompleted {
		var res createResult
		if json.Unmarshal(info.Result, &res) == nil {
			st.CreatedID, st.Adopted = res.ID, res.Adopted
		}
	} else if info.LastErr != "" {
		st.Error, st.ErrorCode = info.LastErr, ErrorCode(info.LastErr)
	}
	if (info.State == asynq.TaskStateScheduled || info.State == asynq.TaskStateRetry) && !info.NextProcessAt.IsZero() {
		st.NextAttemptAt = &info.NextProcessAt
	}
	if !info.LastFailedAt.IsZero() {
		st.LastFailedAt = &info.LastFailedAt
	}
	if !info.CompletedAt.IsZero() {
		st.CompletedAt = &info.CompletedAt
	}
	return st
}

// errorCodeRE finds the code in a task error written from a *b24.Error
// ("... b24: department.add: BX_EMPTY_REQUIRED: ..."): an upper-case code,
// or a lower-case one with an underscore (expired_token).
var errorCodeRE = regexp.MustCompile(`\bb24: (?:[a-z][a-zA-Z0-9]*(?:\.[a-zA-Z0-9]+)+: )?([A-Z][A-Z0-9_]+|[a-z]+(?:_[a-z]+)+)\b`)

// ErrorCode returns the Bitrix24 error code in a task's error message, or
// "" when it holds none.
func ErrorCode(msg string) string {
	if m := errorCodeRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}
