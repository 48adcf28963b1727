package tasks

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/keys"
)

// Activity is the fleet's set of portals that have work (keys.Active).
// Workers run a portal's asynq queue only while the portal is in the set,
// so a fleet of thousands of mostly idle portals costs Redis what its few
// busy ones need (see internal/fleet).
//
// The protocol that keeps a task from waiting unseen in the queue of a
// portal nobody runs:
//   - a producer enqueues first and marks the portal active after (every
//     producer of this package does: Producer, Imports, the batch and
//     import steps that enqueue children);
//   - a worker that finds a portal's queue empty first removes the portal
//     from the set, then looks at the queue again and puts the portal back
//     when a task arrived meanwhile (Settle).
//
// Whatever the interleaving, a task enqueued after the worker's second look
// is followed by its producer's mark, which comes after the removal. Tasks
// enqueued with a bare asynq.Client (not through this package) are not
// marked: the workers' slow sweep of every known portal (internal/fleet)
// finds them within minutes.
type Activity struct {
	rdb redis.UniversalClient
	key string
}

// NewActivity returns the activity set under prefix ("" means the default
// key prefix) in rdb.
func NewActivity(rdb redis.UniversalClient, prefix string) Activity {
	return Activity{rdb: rdb, key: keys.New(prefix).Active()}
}

// Key returns the Redis key of the set.
func (a Activity) Key() string { return a.key }

// Mark records that portal has work. Producers call it after enqueueing.
func (a Activity) Mark(ctx context.Context, portal string) error {
	if a.rdb == nil {
		return nil // a Producer without Redis of its own (see WithActivity)
	}
	if portal == "" {
		portal = DefaultPortal
	}
	if err := a.rdb.SAdd(ctx, a.key, portal).Err(); err != nil {
		return fmt.Errorf("mark portal %s active: %w", portal, err)
	}
	return nil
}

// Portals returns the portals that have work, sorted.
func (a Activity) Portals(ctx context.Context) ([]string, error) {
	names, err := a.rdb.SMembers(ctx, a.key).Result()
	if err != nil {
		return nil, fmt.Errorf("read the active portals: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// Has reports whether portal has work: one SISMEMBER, for a question about
// one portal where Portals would read the whole set.
func (a Activity) Has(ctx context.Context, portal string) (bool, error) {
	if portal == "" {
		portal = DefaultPortal
	}
	ok, err := a.rdb.SIsMember(ctx, a.key, portal).Result()
	if err != nil {
		return false, fmt.Errorf("read whether portal %s is active: %w", portal, err)
	}
	return ok, nil
}

// Settle removes portal from the set when its queue has no work, and
// reports whether it did. It looks at the queue after the removal and puts
// the portal back when work arrived meanwhile (see Activity).
func (a Activity) Settle(ctx context.Context, portal string) (idle bool, err error) {
	if busy, err := QueueHasWork(ctx, a.rdb, portal); err != nil || busy {
		return false, err
	}
	if err := a.rdb.SRem(ctx, a.key, portal).Err(); err != nil {
		return false, fmt.Errorf("settle portal %s: %w", portal, err)
	}
	busy, err := QueueHasWork(ctx, a.rdb, portal)
	if err == nil && !busy {
		return true, nil
	}
	// Work arrived (or the look failed): the portal stays active.
	if err2 := a.Mark(ctx, portal); err2 != nil {
		return false, err2
	}
	return false, err
}

// QueueHasWork reports whether portal's asynq queue holds a task that is
// waiting, running, scheduled (parked tasks are scheduled), retrying, in a
// group or being aggregated into a batch right now (aggregation_sets);
// archived and completed tasks are not work.
// It is one EXISTS over the queue's keys, which share one Cluster slot.
//
// It reads asynq's key layout (asynq v0.26 internal/base: asynq:{QUEUE}:...),
// which asynq's public API offers only through Inspector.GetQueueInfo, a far
// heavier script; TestQueueHasWorkFollowsAsynq keeps the two in step.
func QueueHasWork(ctx context.Context, rdb redis.UniversalClient, portal string) (bool, error) {
	if portal == "" {
		portal = DefaultPortal
	}
	base := "asynq:" + keys.Tag(QueueName(portal)) + ":"
	n, err := rdb.Exists(ctx, base+"pending", base+"active", base+"scheduled", base+"retry", base+"groups",
		base+"aggregation_sets").Result()
	if err != nil {
		return false, fmt.Errorf("look at the queue of portal %s: %w", portal, err)
	}
	return n > 0, nil
}
