package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/claim"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
)

func TestClaimsFailLoudlyWithoutRedis(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testutil.ClosedAddr(t), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	c := NewClaims(rdb, "x")
	if _, err := c.take(context.Background(), []claim.Claim{c.of("acme", kindDepartment, "1\x00s", "t", "r")}); err == nil {
		t.Fatal("take without Redis returned no error: the handler would create without knowing")
	}
}

// The single-task path takes the object's claim with the limiter's grant:
// one round trip, in Redis before the call leaves. A task whose earlier run
// held the claim (a run interrupted by a shutdown, which does not count as
// a retry) looks up and adopts instead of creating a second department; a
// fresh task creates and settles its claim, so the next creator of the same
// department looks first; a task the limiter parks takes no claim.
func TestFirstAttemptClaimIsTakenWithTheGrant(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: 50, Burst: 50},
		limits:      limiter.Config{Rate: 50, Burst: 50},
		servers:     1,
		concurrency: 2,
	})
	ctx := context.Background()
	rdb := bundleRedis(t)
	claims := NewClaims(rdb, f.prefix)
	state := func(parent int64, name string) string {
		return rdb.HGet(ctx, claims.keys.Object(f.portal, kindDepartment, departmentIdentity(parent, name)), "s").Val()
	}

	// An interrupted run of task "interrupted" created "Sales"; its claim
	// is left behind, its request long answered.
	c, err := b24.NewWebhook(f.webhook)
	if err != nil {
		t.Fatal(err)
	}
	salesID, _, err := c.AddDepartment(ctx, b24.DepartmentFields{Name: "Sales", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claims.take(ctx, []claim.Claim{claims.of(f.portal, kindDepartment, departmentIdentity(1, "Sales"), "interrupted", "old-run")}); err != nil {
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
	if got := state(1, "Marketing"); got != "look" {
		t.Errorf("claim of the created department is %q, want look", got)
	}
	if got := f.sim.Stats().Calls["department.get"]["ok"]; got != 1 {
		t.Errorf("%d lookups, want 1 (the interrupted task's; a fresh task does not look)", got)
	}

	// A parked first attempt sent nothing and took no claim.
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
	if got := state(1, "Parked"); got != "" {
		t.Errorf("a parked attempt left a claim (%q): others would wait for nothing", got)
	}
}

// Two tasks that create the same department (two API calls, or two imports
// sharing it) take turns: the second waits for the first and adopts its
// department. Exactly once holds per portal, not per task.
func TestTwoTasksForOneDepartmentCreateItOnce(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: 50, Burst: 50, Latency: 300 * time.Millisecond},
		limits:      limiter.Config{Rate: 50, Burst: 50},
		servers:     2,
		concurrency: 4,
	})
	var ids []string
	for range 6 {
		ids = append(ids, f.department(t, "Operations", 1))
	}
	f.drain(t, len(ids), 40*time.Second)
	st := f.sim.Stats()
	if st.DepartmentsCreated != 1 {
		t.Fatalf("portal created %d departments, want 1; stats %+v", st.DepartmentsCreated, st)
	}
	var first int64
	adopted := 0
	for _, id := range ids {
		info, err := f.inspector.GetTaskInfo(QueueName(f.portal), id)
		if err != nil {
			t.Fatal(err)
		}
		var res createResult
		if err := json.Unmarshal(info.Result, &res); err != nil {
			t.Fatalf("task %s result %q: %v", id, info.Result, err)
		}
		if first == 0 {
			first = res.ID
		}
		if res.ID != first {
			t.Errorf("task %s got ID %d, another %d", id, res.ID, first)
		}
		if res.Adopted {
			adopted++
		}
	}
	if adopted != len(ids)-1 {
		t.Errorf("%d tasks adopted, want %d", adopted, len(ids)-1)
	}
}

// A run whose earlier create request may still be running at the portal
// (sent moments ago; its answer lost) must not look up yet: the lookup
// would miss a department the portal is about to save. It waits until the
// request can no longer be running, then looks and adopts.
func TestResumedRunLooksOnlyOnceTheEarlierRequestIsOver(t *testing.T) {
	t.Parallel()
	const requestCap = 1500 * time.Millisecond
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: 50, Burst: 50},
		limits:      limiter.Config{Rate: 50, Burst: 50},
		servers:     1,
		concurrency: 2,
		claims:      []ClaimsOption{WithRequestCap(requestCap)},
	})
	ctx := context.Background()
	rdb := bundleRedis(t)
	claims := NewClaims(rdb, f.prefix)
	// The earlier run of task "held" sent its create just now.
	cl := claims.of(f.portal, kindDepartment, departmentIdentity(1, "Held"), "held", "old-run")
	if _, err := claims.take(ctx, []claim.Claim{cl}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, cl.Key, "at", time.Now().UnixMicro()).Err(); err != nil {
		t.Fatal(err)
	}
	task, err := NewDepartmentTask(DepartmentPayload{Portal: f.portal, Name: "Held", Parent: 1}, asynq.TaskID("held"))
	f.enqueue(t, task, err)
	testutil.WaitFor(t, 5*time.Second, "the resumed run parked", func() (bool, string) {
		info, err := f.inspector.GetTaskInfo(QueueName(f.portal), "held")
		return err == nil && info.State == asynq.TaskStateRetry && strings.Contains(info.LastErr, "may still be running"),
			fmt.Sprintf("%+v, %v", info, err)
	})
	// Meanwhile the held request lands at the portal.
	c, err := b24.NewWebhook(f.webhook)
	if err != nil {
		t.Fatal(err)
	}
	heldID, _, err := c.AddDepartment(ctx, b24.DepartmentFields{Name: "Held", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.drain(t, 1, 20*time.Second)
	if st := f.sim.Stats(); st.DepartmentsCreated != 1 {
		t.Fatalf("portal created %d departments, want 1 (the held request's)", st.DepartmentsCreated)
	}
	info, _ := f.inspector.GetTaskInfo(QueueName(f.portal), "held")
	if want := fmt.Sprintf(`{"id":%d,"adopted":true}`, heldID); string(info.Result) != want {
		t.Errorf("result %s, want %s", info.Result, want)
	}
}
