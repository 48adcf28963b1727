package tasks

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
	"github.com/hibiken/asynq"
)

// Three worker servers (concurrency 10 each, own limiter instances) drain 300
// departments and 20 workplaces through a portal that drains 10 req/s: every
// object is created once, the portal's bucket is (almost) never overrun, and
// a 503 is followed by a pause of the whole fleet.
func TestFleetDrainsWithinThePortalLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s end-to-end run")
	}
	t.Parallel()
	const rate, burst = 10, 20
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: rate, Burst: burst},
		limits:      limiter.Config{Rate: rate, Burst: burst, Cooldown: 2 * time.Second},
		servers:     3,
		concurrency: 10,
	})
	for i := range 300 {
		f.department(t, fmt.Sprintf("Dept %03d", i), 1)
	}
	for i := range 20 {
		f.workplace(t, fmt.Sprintf("Workplace %02d", i))
	}
	start := time.Now()
	q := f.drain(t, 320, 90*time.Second)
	elapsed := time.Since(start)

	st := f.sim.Stats()
	if q.Archived != 0 {
		t.Errorf("%d tasks archived: %v", q.Archived, f.archived(t))
	}
	if st.DepartmentsCreated != 300 || st.WorkplacesCreated != 20 {
		t.Errorf("created %d departments, %d workplaces; want 300, 20", st.DepartmentsCreated, st.WorkplacesCreated)
	}
	if st.DuplicateDepartments+st.DuplicateWorkplaces != 0 {
		t.Errorf("duplicates: %d departments, %d workplaces", st.DuplicateDepartments, st.DuplicateWorkplaces)
	}
	if st.Rejected503 > 2 {
		t.Errorf("%d answers were 503 QUERY_LIMIT_EXCEEDED, want ≤ 2", st.Rejected503)
	}
	// The fleet cannot beat the portal's bound; it should come close to it.
	bound := float64(burst) + rate*elapsed.Seconds()
	t.Logf("%d requests in %v: %.2f of the bound burst + rate×elapsed, %d 503s, max %d in 1 s",
		st.Requests, elapsed.Round(time.Millisecond), float64(st.Requests)/bound, st.Rejected503, st.MaxPerSecond)
	if st.MaxPerSecond > burst+rate {
		t.Errorf("max %d requests in a second, the portal allows %d", st.MaxPerSecond, burst+rate)
	}
}

// Another application on the same portal drains its bucket: the fleet's next
// requests get 503, and after the first of them the whole fleet (every
// server, including requests whose slots were already reserved) pauses for
// the cooldown, then finishes without losing or duplicating anything.
func TestFleetPausesAfterA503(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s end-to-end run")
	}
	t.Parallel()
	const cooldown = 2 * time.Second
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: 10, Burst: 20},
		limits:      limiter.Config{Rate: 10, Burst: 20, Cooldown: cooldown},
		servers:     3,
		concurrency: 10,
	})
	const n = 100
	for i := range n {
		f.department(t, fmt.Sprintf("Paused %03d", i), 1)
	}
	// Wait until the fleet has spent its burst and paces at the portal's
	// rate (burst 20 plus a second's worth).
	testutil.WaitFor(t, 10*time.Second, "the fleet pacing", func() (bool, string) {
		n := len(f.log.snapshot())
		return n >= 30, fmt.Sprintf("%d requests", n)
	})
	// Keep the bucket full until one of the fleet's own requests meets a
	// 503 (at most 5 s), however the fleet's timing falls.
	fleetSaw503 := func() bool {
		for _, r := range f.log.snapshot() {
			if !r.foreign && r.status == http.StatusServiceUnavailable {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !fleetSaw503() && time.Now().Before(deadline); {
		req, _ := http.NewRequest(http.MethodPost, f.webhook+"profile", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Foreign", "1")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	f.drain(t, n, 60*time.Second)
	st := f.sim.Stats()
	if st.DepartmentsCreated != n || st.DuplicateDepartments != 0 {
		t.Fatalf("created %d (dups %d), want %d once each", st.DepartmentsCreated, st.DuplicateDepartments, n)
	}
	reqs := f.log.snapshot()
	var first time.Time
	for _, r := range reqs {
		if !r.foreign && r.status == http.StatusServiceUnavailable {
			first = r.at
			break
		}
	}
	if first.IsZero() {
		t.Fatal("the fleet never saw a 503: the foreign burst did not fill the bucket")
	}
	// Requests already on the wire may still arrive just after the 503;
	// after that, nothing until the cooldown has passed.
	for _, r := range reqs {
		if d := r.at.Sub(first); !r.foreign && d > 150*time.Millisecond && d < cooldown-100*time.Millisecond {
			t.Errorf("a fleet request reached the portal %v after the first 503 (cooldown %v)", d.Round(time.Millisecond), cooldown)
		}
	}
}

// With a scaled operating window (limit 1 s in 10 s, 0.25 s per call) every
// task still completes: the fleet stops at the limit (proactively, or after
// at most one 429 per worker per block) and the tasks are parked until the
// block's reset time rather than polled.
func TestFleetWaitsOutTheOperatingLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("25 s end-to-end run")
	}
	t.Parallel()
	f := startFleet(t, fleetConfig{
		sim: b24test.Config{Rate: 50, Burst: 50, OperatingLimit: time.Second, OperatingWindow: 10 * time.Second,
			CallCost: 250 * time.Millisecond},
		limits:      limiter.Config{Rate: 50, Burst: 50, OperatingLimit: time.Second, OperatingWindow: 10 * time.Second},
		servers:     3,
		concurrency: 4,
	})
	const n = 12
	for i := range n {
		f.department(t, fmt.Sprintf("Heavy %02d", i), 1)
	}
	start := time.Now()
	f.drain(t, n, 60*time.Second)
	elapsed := time.Since(start)
	st := f.sim.Stats()
	if st.DepartmentsCreated != n || st.DuplicateDepartments != 0 {
		t.Fatalf("created %d (dups %d), want %d once each", st.DepartmentsCreated, st.DuplicateDepartments, n)
	}
	// 4 calls fit in a 10 s window: 12 calls need at least two resets.
	if elapsed < 8*time.Second {
		t.Errorf("finished in %v: faster than the operating budget allows", elapsed)
	}
	// Blocks: at most one per call budget refill; at most one 429 per
	// worker (3) per block.
	blocks := (n + 3) / 4
	if st.Rejected429 > 3*blocks {
		t.Errorf("%d answers were 429 for %d blocks and 3 workers", st.Rejected429, blocks)
	}
	// Parked, not polled: the portal saw few more requests than creates.
	if extra := st.Requests - n; extra > 3*blocks {
		t.Errorf("%d requests beyond the %d creates: tasks polled the blocked method", extra, n)
	}
	t.Logf("%d creates in %v, %d requests, %d 429s", n, elapsed.Round(time.Millisecond), st.Requests, st.Rejected429)
}

// Near the operating limit the fleet counts its calls in flight, so the
// calls that leave while the answer crossing the margin is on its way do not
// meet a 429, nor does the herd of parked tasks at the reset time. (Budget
// 2 s per 10 s, 0.125 s per call: 16 calls per window; 3 workers × 4 slots.)
// A first round of 8 calls brings the portal's reports (operating at half
// the budget) so that the fleet knows what a call costs; the next 16 cross
// the margin with up to 12 slots free.
func TestFleetCountsCallsInFlightNearTheOperatingLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s end-to-end run")
	}
	t.Parallel()
	window := 10 * time.Second
	f := startFleet(t, fleetConfig{
		sim: b24test.Config{Rate: 50, Burst: 50, OperatingLimit: 2 * time.Second, OperatingWindow: window,
			CallCost: 125 * time.Millisecond},
		limits:      limiter.Config{Rate: 50, Burst: 50, OperatingLimit: 2 * time.Second, OperatingWindow: window},
		servers:     3,
		concurrency: 4,
	})
	for i := range 8 {
		f.department(t, fmt.Sprintf("Warm %02d", i), 1)
	}
	f.drain(t, 8, 20*time.Second)
	for i := range 16 {
		f.department(t, fmt.Sprintf("Heavy %02d", i), 1)
	}
	f.drain(t, 24, 3*window)
	st := f.sim.Stats()
	if st.DepartmentsCreated != 24 || st.DuplicateDepartments != 0 {
		t.Fatalf("created %d (dups %d), want 24 once each", st.DepartmentsCreated, st.DuplicateDepartments)
	}
	if st.Rejected429 != 0 {
		t.Errorf("%d answers were 429: calls in flight crossed the budget", st.Rejected429)
	}
	t.Logf("%d requests, %d 429s", st.Requests, st.Rejected429)
}

// 10% of answers lost after the department was created and 10% 500s: every
// department exists exactly once (lost answers are followed by a lookup).
func TestFleetSurvivesLostResponsesAndServerErrors(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: 100, Burst: 100, Seed: 7, Faults: b24test.Faults{LostResponseRate: 0.1, ErrorRate: 0.1}},
		limits:      limiter.Config{Rate: 100, Burst: 100},
		servers:     2,
		concurrency: 10,
	})
	const n = 100
	for i := range n {
		f.department(t, fmt.Sprintf("Flaky %03d", i), 1)
	}
	f.workplace(t, "Flaky workplace")
	q := f.drain(t, n+1, 60*time.Second)
	st := f.sim.Stats()
	if q.Archived != 0 {
		t.Errorf("%d tasks archived", q.Archived)
	}
	if st.DepartmentsCreated != n || st.DuplicateDepartments != 0 || st.WorkplacesCreated != 1 || st.DuplicateWorkplaces != 0 {
		t.Errorf("created %d departments (dups %d), %d workplaces (dups %d); want %d, 0, 1, 0",
			st.DepartmentsCreated, st.DuplicateDepartments, st.WorkplacesCreated, st.DuplicateWorkplaces, n)
	}
	if st.Faults["lost_response"] == 0 || st.Faults["error"] == 0 {
		t.Errorf("faults not exercised: %v", st.Faults)
	}
	t.Logf("faults %v, lookups %v", st.Faults, st.Calls["department.get"])
}

// Permanent errors end archived after exactly one portal call, with the
// Bitrix24 code and description in the task's last error and no secret in it.
func TestPermanentErrorsAreArchivedAfterOneCall(t *testing.T) {
	t.Parallel()
	t.Run("bad input and plan cap", func(t *testing.T) {
		t.Parallel()
		f := startFleet(t, fleetConfig{
			sim:     b24test.Config{Rate: 50, Burst: 50, WorkplaceCap: 1},
			limits:  limiter.Config{Rate: 50, Burst: 50},
			servers: 1, concurrency: 1, // one at a time: the cap hits the second workplace
		})
		unknownParent := f.department(t, "Orphan", 99999)
		f.workplace(t, "First")
		overCap := f.workplace(t, "Second")
		f.drain(t, 3, 20*time.Second)
		checkArchived(t, f, map[string]string{unknownParent: "ERROR_CORE", overCap: "LIMIT_EXCEEDED"})
		st := f.sim.Stats()
		if got := st.Calls["department.add"]["ERROR_CORE"]; got != 1 {
			t.Errorf("department.add answered ERROR_CORE %d times, want 1 (no retry)", got)
		}
		if got := st.Calls["crm.automatedsolution.add"]["LIMIT_EXCEEDED"]; got != 1 {
			t.Errorf("crm.automatedsolution.add answered LIMIT_EXCEEDED %d times, want 1", got)
		}
	})
	t.Run("wrong webhook secret parks the portal, fails nothing", func(t *testing.T) {
		t.Parallel()
		const wrong = "wrong-secret-0123456789"
		f := startFleet(t, fleetConfig{
			sim:     b24test.Config{Rate: 50, Burst: 50},
			limits:  limiter.Config{Rate: 50, Burst: 50},
			servers: 1, concurrency: 1,
			webhook: func(good string) string {
				return good[:strings.LastIndex(strings.TrimSuffix(good, "/"), "/")+1] + wrong + "/"
			},
		})
		id := f.department(t, "Sales", 1)
		var info *asynq.TaskInfo
		testutil.WaitFor(t, 10*time.Second, "the task parked", func() (bool, string) {
			var err error
			info, err = f.inspector.GetTaskInfo(QueueName(f.portal), id)
			return err == nil && info.State == asynq.TaskStateRetry && strings.Contains(info.LastErr, "unavailable"), fmt.Sprintf("%+v %v", info, err)
		})
		if info.Retried != 0 || strings.Contains(info.LastErr, wrong) {
			t.Errorf("parked task: retried %d (parking is no failure), last error %q (must not hold the secret)", info.Retried, info.LastErr)
		}
		if got := f.sim.Stats().Calls["department.add"]["NO_AUTH_FOUND"]; got != 1 {
			t.Errorf("NO_AUTH_FOUND answered %d times, want 1: the whole portal waits for its probe", got)
		}
	})
	t.Run("empty name never reaches the portal", func(t *testing.T) {
		t.Parallel()
		f := startFleet(t, fleetConfig{sim: b24test.Config{Rate: 50, Burst: 50}, limits: limiter.Config{Rate: 50, Burst: 50}, servers: 1, concurrency: 1})
		// A producer that skipped validation (another service) sends garbage.
		info, err := f.client.Enqueue(asynqTask(TypeDepartmentCreate, fmt.Sprintf(`{"portal":%q,"name":"","parent":1}`, f.portal)), Options(f.portal)...)
		if err != nil {
			t.Fatal(err)
		}
		f.drain(t, 1, 20*time.Second)
		checkArchived(t, f, map[string]string{info.ID: "name is empty"})
		if st := f.sim.Stats(); st.Requests != 0 {
			t.Errorf("%d requests reached the portal for an invalid task", st.Requests)
		}
	})
}

// checkArchived asserts that each task ID is archived with a last error
// containing its substring and returns the last errors by ID.
func checkArchived(t *testing.T, f *fleet, want map[string]string) map[string]string {
	t.Helper()
	last := map[string]string{}
	for _, ti := range f.archived(t) {
		last[ti.ID] = ti.LastErr
	}
	for id, sub := range want {
		got, ok := last[id]
		switch {
		case !ok:
			t.Errorf("task %s is not archived; archived: %v", id, last)
		case !strings.Contains(got, sub):
			t.Errorf("task %s last error %q lacks %q", id, got, sub)
		case !strings.Contains(got, "permanent"):
			t.Errorf("task %s last error %q does not say the failure is permanent", id, got)
		}
	}
	return last
}
