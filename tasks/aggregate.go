package tasks

// Batch mode: up to 50 creates in one Bitrix24 `batch` request.
//
// A batch call carries up to 50 commands and costs ONE request of the
// portal's budget (2 req/s on standard plans), so an import that takes 17
// minutes call by call takes well under a minute in batches. Each command is
// still billed to its own method's operating time; the portal observer
// (Portal.observe in errors.go) already feeds every command's result_time
// to the limiter under the command's method, not under "batch".
//
// # Why asynq task aggregation and not a batching stage of our own
//
// Import item tasks are enqueued with asynq.Group(BatchGroup(portal,
// method)); a worker configured with NewBatchAggregator and
// BatchServerConfig lets asynq collect up to 50 of them and hand them to the
// TypeBatchCreate handler as one task. A home-made stage (a goroutine that
// pulls ready tasks and buffers them) would have to solve what asynq already
// solves: the group lives in Redis and is moved into an aggregation set by
// one Lua script, so no task is lost or taken twice when a worker crashes
// mid-aggregation (asynq reclaims stale sets), every worker process of the
// fleet aggregates the same groups safely, and the grouped tasks show up in
// asynqmon (state "aggregating") like any other. The cost is latency: a
// group is aggregated when it reaches GroupMaxSize, or once no task has
// joined it for GroupGracePeriod (asynq's minimum, 1 s), or after
// GroupMaxDelay; and one worker process forms at most one batch per group
// per grace period. So every level of a tree pays up to about a second, and
// one worker creates at most 50 departments (and 50 workplaces) per second —
// half of what a 2 req/s portal allows; a second worker process doubles it.

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
)

// TypeBatchCreate is the task type of an aggregated batch of item tasks.
const TypeBatchCreate = "batch:create"

// The methods the item task types create with; a batch group holds one.
const (
	methodDepartmentAdd = b24.MethodDepartmentAdd
	methodWorkplaceAdd  = b24.MethodAutomatedSolutionAdd
)

// verifySuffix marks the twin group of items that must be looked up first.
const verifySuffix = "/verify"

// BatchGroup is the asynq group of the item tasks of one portal that create
// with method ("department.add" or "crm.automatedsolution.add"):
// "PORTAL/METHOD". Portal names hold no '/', so groups never collide.
func BatchGroup(portal, method string) string { return portal + "/" + method }

func verifyGroup(portal, method string) string { return BatchGroup(portal, method) + verifySuffix }

// methodOf returns the create method of an item task type ("" if unknown).
func methodOf(taskType string) string {
	switch taskType {
	case TypeDepartmentCreate:
		return methodDepartmentAdd
	case TypeWorkplaceCreate:
		return methodWorkplaceAdd
	}
	return ""
}

// Defaults of BatchServerConfig.
const (
	// DefaultBatchGracePeriod is asynq's minimum GroupGracePeriod.
	DefaultBatchGracePeriod = time.Second
	// DefaultBatchMaxDelay bounds how long a steadily growing group waits.
	DefaultBatchMaxDelay = 3 * time.Second
)

// BatchConfig holds the asynq.Config fields of task aggregation.
type BatchConfig struct {
	GroupGracePeriod time.Duration
	GroupMaxDelay    time.Duration
	// GroupMaxSize is at most b24.MaxBatch.
	GroupMaxSize int
	// PlainCalls makes the batch tasks send their items one plain call at
	// a time instead of one batch request (B24_BATCH=0, for debugging).
	PlainCalls bool
}

// BatchServerConfig returns the aggregation settings of a worker: groups of
// up to b24.MaxBatch (50) items, sent as one batch request when enabled and
// as plain calls one after another otherwise (B24_BATCH=0, for debugging).
// Grouped tasks need the aggregator either way, so a worker always
// configures one; aggregating 50 at a time also when disabled keeps the
// debugging mode as fast as the portal's rate allows.
func BatchServerConfig(enabled bool) BatchConfig {
	return BatchConfig{GroupGracePeriod: DefaultBatchGracePeriod, GroupMaxDelay: DefaultBatchMaxDelay,
		GroupMaxSize: b24.MaxBatch, PlainCalls: !enabled}
}

// Apply sets cfg's GroupGracePeriod, GroupMaxDelay, GroupMaxSize and
// GroupAggregator (NewBatchAggregator).
func (c BatchConfig) Apply(cfg *asynq.Config) {
	cfg.GroupGracePeriod = c.GroupGracePeriod
	cfg.GroupMaxDelay = c.GroupMaxDelay
	cfg.GroupMaxSize = c.GroupMaxSize
	cfg.GroupAggregator = aggregator(c.PlainCalls)
}

// BatchPayload is the payload of a batch:create task, built by the
// aggregator from the grouped item tasks.
type BatchPayload struct {
	Portal string `json:"portal"`
	Group  string `json:"group"`
	// Verify is set for the verify twin group: every item is looked up
	// before it is created.
	Verify bool `json:"verify,omitempty"`
	// Plain asks for one plain call per item (BatchConfig.PlainCalls).
	Plain bool        `json:"plain,omitempty"`
	Items []BatchItem `json:"items"`
}

// BatchItem is one aggregated item task.
type BatchItem struct {
	// TaskID is the item's original task ID ("import:ID:KEY"), for logs and
	// for putting the item back on the queue; "" for an item outside an
	// import (asynq does not hand task IDs to the aggregator).
	TaskID  string          `json:"task_id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// NewBatchAggregator returns the asynq.GroupAggregator of batch mode: it
// turns the grouped item tasks of one group into one batch:create task with
// the default options of the group's portal. It is stateless and safe for
// concurrent use.
func NewBatchAggregator() asynq.GroupAggregator { return aggregator(false) }

func aggregator(plain bool) asynq.GroupAggregator {
	return asynq.GroupAggregatorFunc(func(group string, ts []*asynq.Task) *asynq.Task {
		return aggregate(group, ts, plain)
	})
}

func aggregate(group string, ts []*asynq.Task, plain bool) *asynq.Task {
	p := BatchPayload{Group: group, Verify: strings.HasSuffix(group, verifySuffix), Plain: plain, Items: make([]BatchItem, 0, len(ts))}
	for _, t := range ts {
		ref := refOf(t)
		if p.Portal == "" {
			p.Portal = ref.Portal
		}
		it := BatchItem{Type: t.Type(), Payload: t.Payload()}
		if ref.ImportID != "" {
			it.TaskID = ImportTaskID(ref.ImportID, ref.Key)
		}
		p.Items = append(p.Items, it)
	}
	if p.Portal == "" {
		p.Portal, _, _ = strings.Cut(group, "/")
	}
	data, _ := json.Marshal(p) // plain strings and raw JSON: cannot fail
	return asynq.NewTask(TypeBatchCreate, data, Options(p.Portal)...)
}

// BatchMux returns Mux() with the batch:create handler added behind the
// same middleware. A worker that runs import items in batch mode must use
// it (and NewBatchAggregator); single tasks work as with Mux.
func (h *Handler) BatchMux() *asynq.ServeMux {
	mux := h.Mux()
	mux.HandleFunc(TypeBatchCreate, h.processBatch)
	return mux
}
