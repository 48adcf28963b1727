package tasks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
)

// redisWithPrefix returns a client on this package's test DB and a key
// prefix of the test's own.
func redisWithPrefix(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	rdb := bundleRedis(t)
	t.Cleanup(func() { rdb.Close() })
	return rdb, fmt.Sprintf("t%d", time.Now().UnixNano())
}

func TestAttemptMarkerTellsAnUnexplainedEarlierAttempt(t *testing.T) {
	t.Parallel()
	rdb, prefix := redisWithPrefix(t)
	a := NewAttempts(rdb, prefix)
	ctx := context.Background()

	uncertain, err := a.Begin(ctx, "acme", "task-1")
	if err != nil || uncertain {
		t.Fatalf("first Begin = %v, %v; want false, nil", uncertain, err)
	}
	// The worker dies here; the task runs again.
	uncertain, err = a.Begin(ctx, "acme", "task-1")
	if err != nil || !uncertain {
		t.Fatalf("Begin after an unfinished attempt = %v, %v; want true, nil", uncertain, err)
	}
	ttl := rdb.TTL(ctx, a.key("acme", "task-1")).Val()
	if ttl <= 0 || ttl > DefaultAttemptTTL {
		t.Errorf("marker TTL = %v, want (0, %v]", ttl, DefaultAttemptTTL)
	}
	if err := a.Clear(ctx, "acme", "task-1"); err != nil {
		t.Fatal(err)
	}
	if uncertain, _ := a.Begin(ctx, "acme", "task-1"); uncertain {
		t.Error("Begin after Clear reports an unexplained attempt")
	}
	if uncertain, _ := a.Begin(ctx, "acme", "task-2"); uncertain {
		t.Error("another task sees task-1's marker")
	}
	t.Cleanup(func() { rdb.Del(context.Background(), a.key("acme", "task-1"), a.key("acme", "task-2")) })
}

func TestAttemptMarkerFailsLoudlyWithoutRedis(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	if _, err := NewAttempts(rdb, "x").Begin(context.Background(), "acme", "t"); err == nil {
		t.Fatal("Begin without Redis returned no error: the handler would create without knowing")
	}
}

// The single-task path sets the attempt marker together with the limiter's
// grant (Attempts.Mark, limiter.WaitMarked): one round trip, and still in
// Redis before the call leaves. A first attempt that finds a marker (its
// run was interrupted by a shutdown, which does not count as a retry) looks
// up and adopts instead of creating a second department; a first attempt
// without one creates and leaves its marker; an attempt the limiter parks
// leaves none.
func TestFirstAttemptMarkerIsSetWithTheGrant(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: 50, Burst: 50},
		limits:      limiter.Config{Rate: 50, Burst: 50},
		servers:     1,
		concurrency: 2,
	})
	ctx := context.Background()
	rdb := bundleRedis(t)
	t.Cleanup(func() { rdb.Close() })
	attempts := NewAttempts(rdb, f.prefix)
	marker := func(taskID string) (bool, time.Duration) {
		ttl, err := rdb.PTTL(ctx, attempts.key(f.portal, taskID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return ttl > 0, ttl
	}

	// An interrupted run created "Sales" and left its marker.
	c, err := b24.NewWebhook(f.webhook)
	if err != nil {
		t.Fatal(err)
	}
	salesID, _, err := c.AddDepartment(ctx, b24.DepartmentFields{Name: "Sales", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, attempts.key(f.portal, "interrupted"), 1, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	task, err := NewDepartmentTask(DepartmentPayload{Portal: f.portal, Name: "Sales", Parent: 1}, asynq.TaskID("interrupted"))
	f.enqueue(t, task, err)
	task, err = NewDepartmentTask(DepartmentPayload{Portal: f.portal, Name: "Marketing", Parent: 1}, asynq.TaskID("fresh"))
	f.enqueue(t, task, err)
	f.drain(t, 2, 20*time.Second)

	st := f.sim.Stats()
	if st.DepartmentsCreated != 2 || st.DuplicateDepartments != 0 {
		t.Fatalf("portal has %d departments (%d duplicates), want Sales and Marketing once", st.DepartmentsCreated, st.DuplicateDepartments)
	}
	info, err := f.inspector.GetTaskInfo(QueueName(f.portal), "interrupted")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"id":%d,"adopted":true}`, salesID); string(info.Result) != want {
		t.Errorf("interrupted task result %s, want %s", info.Result, want)
	}
	if set, ttl := marker("fresh"); !set || ttl > DefaultAttemptTTL {
		t.Errorf("fresh task's marker: set %v, TTL %v; want set with at most %v", set, ttl, DefaultAttemptTTL)
	}

	// A parked first attempt sent nothing and leaves no marker behind.
	lim := limiter.New(rdb, limiter.Config{Rate: 50, Burst: 50}, limiter.WithPrefix(f.prefix))
	t.Cleanup(func() { lim.Close() })
	if err := lim.Block(ctx, f.portal, "department.add", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	task, err = NewDepartmentTask(DepartmentPayload{Portal: f.portal, Name: "Parked", Parent: 1}, asynq.TaskID("parked"))
	f.enqueue(t, task, err)
	testutil.WaitFor(t, 10*time.Second, "the task of a blocked method parked", func() (bool, string) {
		info, err := f.inspector.GetTaskInfo(QueueName(f.portal), "parked")
		return err == nil && info.State == asynq.TaskStateRetry, fmt.Sprintf("%+v, %v", info, err)
	})
	if set, _ := marker("parked"); set {
		t.Error("a parked attempt left an attempt marker: its retry would look up for nothing")
	}
}
