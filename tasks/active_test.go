package tasks

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// QueueHasWork agrees with asynq's own count of the work in a queue:
// waiting, scheduled (parked), retrying, being aggregated into a batch;
// archived and completed tasks are no work.
func TestQueueHasWorkFollowsAsynq(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	work := func() bool {
		t.Helper()
		busy, err := QueueHasWork(ctx, b.rdb, b.portal)
		if err != nil {
			t.Fatal(err)
		}
		info, err := b.inspector.GetQueueInfo(b.queue)
		asynqWork := err == nil && info.Pending+info.Active+info.Scheduled+info.Retry+info.Aggregating > 0
		if busy != asynqWork {
			t.Fatalf("QueueHasWork = %t, asynq's queue info %+v (%v)", busy, info, err)
		}
		return busy
	}
	if work() {
		t.Fatal("an unknown queue has work")
	}
	task := func(opts ...asynq.Option) *asynq.Task {
		tk, err := NewWorkplaceTask(WorkplacePayload{Portal: b.portal, Title: "HR"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	cases := []struct {
		name string
		opts []asynq.Option
	}{
		{"pending", nil},
		{"scheduled", []asynq.Option{asynq.ProcessIn(time.Hour)}},
		{"aggregating", []asynq.Option{asynq.Group("g")}},
	}
	for _, c := range cases {
		info, err := b.client.Enqueue(task(c.opts...))
		if err != nil {
			t.Fatal(err)
		}
		if !work() {
			t.Errorf("%s: no work seen", c.name)
		}
		if err := b.inspector.ArchiveTask(b.queue, info.ID); err != nil {
			t.Fatalf("%s: archive: %v", c.name, err)
		}
		if work() {
			t.Errorf("%s: an archived task counts as work", c.name)
		}
	}
}

// Settle never leaves a task waiting in the queue of a portal that is not
// active, however enqueues and settles interleave.
func TestSettleNeverHidesWork(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	act := NewActivity(b.rdb, b.prefix)
	producer := NewProducer(b.client, b.imports)
	for round := range 30 {
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := producer.EnqueueWorkplace(ctx, WorkplacePayload{Portal: b.portal, Title: "HR"}); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := act.Settle(ctx, b.portal); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		active, err := act.Portals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(active) != 1 || active[0] != b.portal {
			t.Fatalf("round %d: a task waits but the active set is %v", round, active)
		}
		// Empty the queue; the next Settle makes the portal idle.
		if _, err := b.inspector.DeleteAllPendingTasks(b.queue); err != nil {
			t.Fatal(err)
		}
		if idle, err := act.Settle(ctx, b.portal); err != nil || !idle {
			t.Fatalf("round %d: Settle of an empty queue = %t, %v", round, idle, err)
		}
	}
}
