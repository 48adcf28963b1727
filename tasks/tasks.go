package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
)

// Task type names, in asynq's "domain:action" style.
const (
	TypeDepartmentCreate = "department:create"
	TypeWorkplaceCreate  = "workplace:create"
)

// DefaultPortal is the portal name used when a producer names none; it is the
// portal that B24_WEBHOOK_URL defines.
const DefaultPortal = "default"

// Defaults of the task options set by the constructors. They are chosen so
// that rate limiting can never exhaust the retries (parking for a limit does
// not count as a retry at all, see IsFailure) and so that finished tasks stay
// visible in the dashboard for a while.
const (
	DefaultMaxRetry  = 25
	DefaultTimeout   = 3 * time.Minute
	DefaultRetention = 72 * time.Hour
)

// QueueName is the asynq queue that carries the tasks of one portal. One queue
// per portal keeps a huge import on one portal from standing in front of the
// small jobs of another: the worker serves every portal's queue with equal
// weight.
func QueueName(portal string) string { return queuePrefix + portal }

// queuePrefix starts the name of every portal's queue.
const queuePrefix = "b24:"

// PortalOfQueue returns the portal whose queue is queue (QueueName), and
// false for a queue that is not a portal's.
func PortalOfQueue(queue string) (string, bool) {
	name, ok := strings.CutPrefix(queue, queuePrefix)
	return name, ok && ValidPortalName(name)
}

// PortalNamePattern is the rule for portal names: 1 to 63 lower-case ASCII
// letters, digits, '_' and '-', starting with a letter or digit. A portal's
// name goes into its queue name, its Redis hash tag and metric labels, so
// the rule keeps braces, ':' and white space out. Every producer and the
// worker's configuration check names against it.
const PortalNamePattern = `^[a-z0-9][a-z0-9_-]{0,62}$`

var portalName = regexp.MustCompile(PortalNamePattern)

// ValidPortalName reports whether name matches [PortalNamePattern].
func ValidPortalName(name string) bool { return portalName.MatchString(name) }

// CheckPortalName returns nil for a valid portal name and otherwise an
// error worded for the producer's user: `portal "NAME": must match
// PATTERN`.
func CheckPortalName(name string) error {
	if !ValidPortalName(name) {
		return fmt.Errorf("portal %q: must match %s", name, PortalNamePattern)
	}
	return nil
}

// MaxNameLength is the longest department name or workplace title accepted,
// in characters (importer.MaxNameLen: one rule for single tasks and import
// rows).
const MaxNameLength = importer.MaxNameLen

// ValidationError lists every problem found in a task's input.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid task: " + strings.Join(e.Problems, "; ")
}

func checkPortal(p string, problems []string) []string {
	if err := CheckPortalName(p); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// checkName checks a department name or workplace title by the rule of
// import rows (importer.TextProblem) after trimming it as import files are
// trimmed (importer.TrimName): the constructors send the trimmed value.
func checkName(field, v string, problems []string) []string {
	if msg := importer.TextProblem(field, importer.TrimName(v)); msg != "" {
		problems = append(problems, msg)
	}
	return problems
}

func problemsErr(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: problems}
}

// Options returns the task options the constructors use for a portal's
// task, followed by extra, which may override them (asynq applies options in
// order).
func Options(portal string, extra ...asynq.Option) []asynq.Option {
	opts := []asynq.Option{
		asynq.Queue(QueueName(portal)),
		asynq.MaxRetry(DefaultMaxRetry),
		asynq.Timeout(DefaultTimeout),
		asynq.Retention(DefaultRetention),
	}
	return append(opts, extra...)
}

// newTask validates p and encodes it as a task of type typ on portal's queue.
func newTask(typ, portal string, p interface{ Validate() error }, opts []asynq.Option) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	return asynq.NewTask(typ, data, Options(portal, opts...)...), nil
}

// ErrUnknownPortal is returned (wrapped) when a task names a portal the
// worker has no credentials for.
var ErrUnknownPortal = errors.New("unknown portal")
