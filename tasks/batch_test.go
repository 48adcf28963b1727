package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
)

func TestBatchServerConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		enabled bool
		want    BatchConfig
	}{
		{true, BatchConfig{GroupGracePeriod: time.Second, GroupMaxDelay: 3 * time.Second, GroupMaxSize: 50}},
		{false, BatchConfig{GroupGracePeriod: time.Second, GroupMaxDelay: 3 * time.Second, GroupMaxSize: 50, PlainCalls: true}},
	}
	for _, tt := range tests {
		got := BatchServerConfig(tt.enabled)
		if got != tt.want {
			t.Errorf("BatchServerConfig(%v) = %+v, want %+v", tt.enabled, got, tt.want)
		}
		var ac asynq.Config
		got.Apply(&ac)
		if ac.GroupGracePeriod != got.GroupGracePeriod || ac.GroupMaxDelay != got.GroupMaxDelay ||
			ac.GroupMaxSize != got.GroupMaxSize || ac.GroupAggregator == nil {
			t.Errorf("Apply(%v) left %+v", tt.enabled, ac)
		}
	}
}

func TestAggregate(t *testing.T) {
	t.Parallel()
	d1, _ := NewDepartmentTask(DepartmentPayload{Portal: "p1", Name: "A", Parent: 1, ImportID: "imp", Key: "a"})
	d2, _ := NewDepartmentTask(DepartmentPayload{Portal: "p1", Name: "B", Parent: 1})
	tests := []struct {
		name   string
		group  string
		tasks  []*asynq.Task
		verify bool
		ids    []string
	}{
		{"plain", BatchGroup("p1", methodDepartmentAdd), []*asynq.Task{d1, d2}, false, []string{"import:imp:a", ""}},
		{"verify", verifyGroup("p1", methodDepartmentAdd), []*asynq.Task{d2}, true, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := NewBatchAggregator().Aggregate(tt.group, tt.tasks)
			if got.Type() != TypeBatchCreate {
				t.Fatalf("type %q", got.Type())
			}
			var p BatchPayload
			if err := json.Unmarshal(got.Payload(), &p); err != nil {
				t.Fatal(err)
			}
			if p.Portal != "p1" || p.Group != tt.group || p.Verify != tt.verify || len(p.Items) != len(tt.tasks) {
				t.Fatalf("payload %+v", p)
			}
			for i, it := range p.Items {
				if it.TaskID != tt.ids[i] || it.Type != TypeDepartmentCreate || string(it.Payload) != string(tt.tasks[i].Payload()) {
					t.Errorf("item %d = %+v", i, it)
				}
			}
		})
	}
	if g := BatchGroup("p1", methodWorkplaceAdd); g != "p1/crm.automatedsolution.add" {
		t.Errorf("BatchGroup = %q", g)
	}
}

// batchImport runs f through a batch-mode fleet and returns the finished
// status.
func batchImport(t *testing.T, bs *batchSetup, f *importer.File, timeout time.Duration) store.Status {
	t.Helper()
	res, err := bs.bimports.Submit(context.Background(), bs.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	return bs.waitBatchDone(t, res.ID, timeout)
}

// rate2 is the standard plan: 2 req/s, burst 50, for the portal and the
// limiter alike, with the limiter's defaults (a process paces itself to the
// rate: LocalBurst is one second's worth).
func rate2(c *setupConfig) {
	c.sim.Rate, c.sim.Burst = 2, 50
	c.limits = limiter.Config{Rate: 2, Burst: 50}
}

// rate2Burst is rate2 with the process allowed to use the shared bucket's
// whole burst (45 of the portal's 50) at once, as a fleet of processes
// does; the shared bucket still keeps the portal from answering 503.
func rate2Burst(c *setupConfig) {
	rate2(c)
	c.limits.LocalBurst = 45
}

// The acceptance test of batch mode: a 2,000-department tree of depth 5 and
// 50 workplaces on a standard plan portal (2 req/s, burst 50), in at most 60
// requests, without and with 10% of the commands failing. The two imports
// run at once, each on its own portal and queue, in one parallel test slot:
// they spend their time waiting for the portal's rate.
func TestBatchImport2000(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("two 2,000-item imports at 2 req/s take ~20 s")
	}
	type run struct {
		name    string
		faults  b24test.Faults
		bs      *batchSetup
		f       *importer.File
		st      store.Status
		err     error
		elapsed time.Duration
	}
	runs := []*run{
		{name: "clean"},
		{name: "10% command errors", faults: b24test.Faults{CommandErrorRate: 0.1}},
	}
	for _, r := range runs {
		b := setup(t, rate2Burst, func(c *setupConfig) { c.sim.Faults = r.faults; c.sim.Seed = 42 })
		r.bs = withBatch(t, b)
		// Four worker processes: each forms at most one batch per group
		// and grace period.
		r.bs.startBatch(t, BatchServerConfig(true), 4)
		r.f = treeFile([]int{1, 9, 90, 400, 1500}, 50)
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() {
			start := time.Now()
			r.st, r.err = r.bs.importAndWait(r.f, 90*time.Second)
			r.elapsed = time.Since(start)
		})
	}
	wg.Wait()
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.st.Counts != (store.Counts{Total: 2050, Created: 2050}) {
				t.Fatalf("counts %+v, failed %v", r.st.Counts, r.st.Failed)
			}
			checkSimulator(t, r.bs.bundle, r.f, r.st)
			s := r.bs.sim.Stats()
			t.Logf("%d items in %d requests (%.1f items/request) in %v; batch calls %v; command faults %d",
				2050, s.Requests, 2050/float64(s.Requests), r.elapsed.Round(time.Millisecond), s.Calls["batch"], s.Faults["command_error"])
			if s.Requests > 60 {
				t.Errorf("%d portal requests, want at most 60", s.Requests)
			}
			if s.Rejected503 != 0 {
				t.Errorf("%d requests refused with 503", s.Rejected503)
			}
			if r.faults.CommandErrorRate > 0 && s.Faults["command_error"] < 100 {
				t.Errorf("%d command errors injected, want about 10%% of the commands", s.Faults["command_error"])
			}
		})
	}
}

func TestBatchLostResponseLooksUp(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *setupConfig) { c.sim.Seed = 3 })
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	// Every answer is lost until three were: the portal did the work each
	// time, so the retried batches must find and adopt what they created.
	b.sim.SetFaults(b24test.Faults{LostResponseRate: 1})
	go func() {
		_ = testutil.Poll(time.Minute, func() (bool, string) { return b.sim.Stats().Faults["lost_response"] >= 3, "" })
		b.sim.SetFaults(b24test.Faults{})
	}()
	f := treeFile([]int{1, 4, 60}, 8)
	st := batchImport(t, bs, f, 40*time.Second)
	if st.Counts != (store.Counts{Total: 73, Created: 73}) {
		t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
	}
	checkSimulator(t, b, f, st)
	s := b.sim.Stats()
	if s.Faults["lost_response"] < 3 {
		t.Errorf("%d lost responses, want 3", s.Faults["lost_response"])
	}
	if s.Calls["department.get"]["ok"] == 0 {
		t.Error("no department.get: the retried batch did not look up")
	}
}

func TestBatchDisabledCallByCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(false), 2)
	f := treeFile([]int{1, 2, 60}, 2) // 60 leaves in one level: fast only if aggregated
	start := time.Now()
	st := batchImport(t, bs, f, 30*time.Second)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("B24_BATCH=0 took %v for %d items: items must still be aggregated, only sent one by one", d, st.Counts.Total)
	}
	if st.Counts != (store.Counts{Total: st.Counts.Total, Created: st.Counts.Total}) || st.Counts.Total < 60 {
		t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
	}
	checkSimulator(t, b, f, st)
	s := b.sim.Stats()
	// One batch read the portal before the import (its reconcile step).
	if s.Calls["batch"]["ok"] != 1 || s.Requests != st.Counts.Total+1 {
		t.Errorf("B24_BATCH=0: %d requests, batch calls %v; want the reconcile read and %d plain calls", s.Requests, s.Calls["batch"], st.Counts.Total)
	}
}

func TestBatchMuxRunsSingleTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	task, err := NewDepartmentTask(DepartmentPayload{Portal: b.portal, Name: "Solo", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStatePending {
		t.Fatalf("an ungrouped task is %v, want pending", info.State)
	}
	waitTask(t, b, info.ID, asynq.TaskStateCompleted, 10*time.Second)
	d := b.sim.Departments()
	if len(d) != 2 || d[1].Name != "Solo" || d[1].Parent != 1 {
		t.Errorf("departments %+v", d)
	}
	if n := b.sim.Stats().Calls["batch"]["ok"]; n != 0 {
		t.Errorf("%d batch calls for a single task", n)
	}
}

// waitTask polls the task until it reaches state.
func waitTask(t *testing.T, b *bundle, id string, state asynq.TaskState, timeout time.Duration) *asynq.TaskInfo {
	t.Helper()
	var info *asynq.TaskInfo
	testutil.WaitFor(t, timeout, fmt.Sprintf("task %s %v", id, state), func() (bool, string) {
		var err error
		info, err = b.inspector.GetTaskInfo(b.queue, id)
		return err == nil && info.State == state, fmt.Sprintf("%+v, %v", info, err)
	})
	return info
}

// A grouped task's ID is free again once the aggregator consumed it, so an
// item can be put back under its deterministic ID.
func TestBatchTaskIDFreeAfterAggregation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := &importer.File{Departments: []importer.Department{{Key: "x", Name: "X", ParentID: pid(1)}}}
	st := batchImport(t, bs, f, 15*time.Second)
	if st.Counts.Created != 1 {
		t.Fatalf("counts %+v", st.Counts)
	}
	task, err := NewDepartmentTask(DepartmentPayload{Portal: b.portal, Name: "X", Parent: 1, ImportID: st.ID, Key: "x"},
		asynq.TaskID(ImportTaskID(st.ID, "x")), asynq.Group(BatchGroup(b.portal, methodDepartmentAdd)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Enqueue(task); err != nil {
		t.Fatalf("enqueue under the same ID after aggregation: %v", err)
	}
}

func TestBatchPartialFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := &importer.File{
		Departments: []importer.Department{
			{Key: "bad", Name: "Bad", ParentID: pid(987654)}, // ERROR_CORE
			{Key: "kid", Name: "Kid", Parent: "bad"},
			{Key: "good", Name: "Good", ParentID: pid(1)},
			{Key: "good2", Name: "Good 2", ParentID: pid(1)},
		},
		Workplaces: []importer.Workplace{{Key: "w", Title: "HR"}},
	}
	st := batchImport(t, bs, f, 15*time.Second)
	if st.Counts != (store.Counts{Total: 5, Created: 3, Failed: 2}) {
		t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
	}
	if r := st.Failed["bad"]; !strings.Contains(r, "ERROR_CORE") {
		t.Errorf("reason of bad = %q", r)
	}
	if r := st.Failed["kid"]; !strings.HasPrefix(r, "parent bad failed: ") {
		t.Errorf("reason of kid = %q", r)
	}
	// One batch read the portal (the reconcile step); the three departments
	// went in one batch; the workplace, alone in its group, as a plain call.
	if s := b.sim.Stats(); s.Requests != 3 || s.Calls["batch"]["ok"] != 2 || s.Calls[methodWorkplaceAdd]["ok"] != 1 {
		t.Errorf("%d requests, calls %v; want the reconcile read, 1 batch and 1 plain workplace call", s.Requests, s.Calls)
	}
}

// A batch task that fails for good fails each of its items with the reason.
func TestBatchFinalFailureFailsItems(t *testing.T) {
	t.Parallel()
	// A front that refuses every batch request that creates, for good (an
	// unknown code below 500 is permanent), as a proxy in front of the
	// portal might.
	b := setup(t, func(c *setupConfig) {
		c.front = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if strings.HasSuffix(r.URL.Path, "/batch") && bytes.Contains(body, []byte("department.add")) {
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"error":"WRONG_ENCODING","error_description":"Request is not in UTF-8"}`))
					return
				}
				next.ServeHTTP(w, r)
			})
		}
	})
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := &importer.File{Departments: []importer.Department{
		{Key: "a", Name: "A", ParentID: pid(1)},
		{Key: "b", Name: "B", ParentID: pid(1)},
		{Key: "c", Name: "C", Parent: "a"},
	}}
	st := batchImport(t, bs, f, 15*time.Second)
	if st.Counts != (store.Counts{Total: 3, Failed: 3}) {
		t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
	}
	for _, k := range []string{"a", "b"} {
		if r := st.Failed[k]; !strings.HasPrefix(r, "batch failed: ") || !strings.Contains(r, "WRONG_ENCODING") {
			t.Errorf("reason of %s = %q", k, r)
		}
	}
	if r := st.Failed["c"]; !strings.HasPrefix(r, "parent a failed: batch failed: ") {
		t.Errorf("reason of c = %q", r)
	}
}

// Each command is billed to its own method: a batch that uses up
// department.add's operating time blocks department.add in the shared
// limiter, not "batch"; the refused commands come back after the block.
func TestBatchOperatingTimePerMethod(t *testing.T) {
	t.Parallel()
	const window = 3 * time.Second
	b := setup(t, func(c *setupConfig) {
		c.sim.OperatingLimit, c.sim.OperatingWindow = time.Second, window
		c.sim.MethodCost = map[string]time.Duration{methodDepartmentAdd: 40 * time.Millisecond}
		c.limits.OperatingLimit, c.limits.OperatingWindow = time.Second, window
	})
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := treeFile([]int{40}, 0) // 40 × 40 ms: over the 1 s budget within one batch
	for i := range f.Departments {
		f.Departments[i].ParentID = pid(1)
	}
	res, err := bs.bimports.Submit(context.Background(), b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	testutil.WaitFor(t, 15*time.Second, "department.add blocked", func() (bool, string) {
		_, blocked, err := b.limiter.Blocked(ctx, b.portal, methodDepartmentAdd)
		return err == nil && blocked, fmt.Sprintf("portal stats %+v", b.sim.Stats())
	})
	if _, blocked, _ := b.limiter.Blocked(ctx, b.portal, "batch"); blocked {
		t.Error(`"batch" is blocked: commands were billed to the batch`)
	}
	st := b.waitDone(t, res.ID, 30*time.Second)
	if st.Counts != (store.Counts{Total: 40, Created: 40}) {
		t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
	}
	checkSimulator(t, b, f, st)
	s := b.sim.Stats()
	if got := s.Calls[methodDepartmentAdd]["OPERATION_TIME_LIMIT"]; got == 0 || got > 40-25 {
		// 25 commands fit the budget; the others were refused at most once
		// each: after the block nobody sent department.add until it ended.
		t.Errorf("department.add refused %d times, want 1..15", got)
	}
}

// Importing the same file again while its items wait inside a batch task
// (their task IDs are free then) queues copies; the copies' batch must not
// create anything a second time.
func TestBatchResubmitWhileRunningCreatesNothingTwice(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *setupConfig) { c.sim.Latency = 1500 * time.Millisecond })
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := treeFile([]int{20}, 3)
	for i := range f.Departments {
		f.Departments[i].ParentID = pid(1)
	}
	ctx := context.Background()
	res, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "a batch active", func() (bool, string) {
		active, err := b.inspector.ListActiveTasks(b.queue)
		for _, a := range active {
			if a.Type == TypeBatchCreate {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%v; %s", err, bs.where())
	})
	again, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	if again.Enqueued == 0 {
		t.Fatalf("second Submit = %+v: no copies were queued, the test proves nothing", again)
	}
	st := bs.waitBatchDone(t, res.ID, 30*time.Second)
	if st.Counts != (store.Counts{Total: 23, Created: 23}) {
		t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
	}
	bs.waitIdle(t, 10*time.Second) // the copies' batches finish too
	checkSimulator(t, b, f, st)
	if s := b.sim.Stats(); s.DepartmentsCreated != 20 || s.WorkplacesCreated != 3 {
		t.Errorf("created %d departments and %d workplaces, want 20 and 3", s.DepartmentsCreated, s.WorkplacesCreated)
	}
}

// Items of a verify group are looked up in one batch request before any is
// created: existing objects are adopted, the others created.
func TestBatchVerifyGroupAdopts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	ctx := context.Background()
	c := b.b24portal.Client
	existingDept, _, err := c.AddDepartment(ctx, b24.DepartmentFields{Name: "Dup A", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddAutomatedSolution(ctx, b24.AutomatedSolutionFields{Title: "Dup W"}); err != nil {
		t.Fatal(err)
	}
	// A department whose name contains the other's: LIKE matches both.
	if _, _, err := c.AddDepartment(ctx, b24.DepartmentFields{Name: "Dup A plus", Parent: 1}); err != nil {
		t.Fatal(err)
	}
	enqueue := func(task *asynq.Task, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	dg, wg := asynq.Group(verifyGroup(b.portal, methodDepartmentAdd)), asynq.Group(verifyGroup(b.portal, methodWorkplaceAdd))
	enqueue(NewDepartmentTask(DepartmentPayload{Portal: b.portal, Name: "Dup A", Parent: 1}, dg))
	enqueue(NewDepartmentTask(DepartmentPayload{Portal: b.portal, Name: "New B", Parent: 1}, dg))
	enqueue(NewDepartmentTask(DepartmentPayload{Portal: b.portal, Name: "New C", Parent: existingDept}, dg))
	enqueue(NewWorkplaceTask(WorkplacePayload{Portal: b.portal, Title: "Dup W"}, wg))
	enqueue(NewWorkplaceTask(WorkplacePayload{Portal: b.portal, Title: "New W"}, wg))
	before := b.sim.Stats()
	bs.startBatch(t, BatchServerConfig(true), 1)

	testutil.WaitFor(t, 15*time.Second, "both batches done", func() (bool, string) {
		q, err := b.inspector.GetQueueInfo(b.queue)
		return err == nil && q.Completed == 2 && q.Size == q.Completed, bs.where()
	})
	s := b.sim.Stats()
	if s.DuplicateDepartments != 0 || s.DuplicateWorkplaces != 0 {
		t.Errorf("duplicates: %d departments, %d workplaces", s.DuplicateDepartments, s.DuplicateWorkplaces)
	}
	if got := s.DepartmentsCreated - before.DepartmentsCreated; got != 2 {
		t.Errorf("%d departments created, want 2 (New B, New C)", got)
	}
	if got := s.WorkplacesCreated - before.WorkplacesCreated; got != 1 {
		t.Errorf("%d workplaces created, want 1 (New W)", got)
	}
	// Per group: one lookup batch and one create batch.
	if got := s.Requests - before.Requests; got != 4 {
		t.Errorf("%d requests, want 4; calls %v", got, s.Calls)
	}
}

// An item put back after transient failures carries the count in its
// payload; past maxRequeues it fails (and its subtree with it) instead of
// circling for ever, with the last reason. Parking (blocked method, 503)
// does not count.
func TestBatchItemRequeuesAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	bs.bhandler.maxRequeues = 2
	ctx := context.Background()
	f := &importer.File{Departments: []importer.Department{
		{Key: "x", Name: "X", ParentID: pid(1)},
		{Key: "kid", Name: "Kid", Parent: "x"},
	}}
	res, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	group := BatchGroup(b.portal, methodDepartmentAdd)
	// No server runs: take the queued item off the queue as the aggregator
	// would, and play the batch run's part.
	if _, err := b.inspector.DeleteAllAggregatingTasks(b.queue, group); err != nil {
		t.Fatal(err)
	}
	taskID := ImportTaskID(res.ID, "x")
	item := func(requeued int) *batchItem {
		p, err := json.Marshal(DepartmentPayload{Portal: b.portal, Name: "X", Parent: 1, ImportID: res.ID, Key: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if requeued > 0 {
			if p, err = withRequeued(p, requeued); err != nil {
				t.Fatal(err)
			}
		}
		return &batchItem{BatchItem: BatchItem{TaskID: taskID, Type: TypeDepartmentCreate, Payload: p}, method: methodDepartmentAdd,
			ref: itemRef{Portal: b.portal, ImportID: res.ID, Key: "x", Requeued: requeued}}
	}
	run := &batchRun{h: bs.bhandler, portal: b.b24portal, owner: "test-batch"}
	queued := func(want asynq.TaskState) itemRef {
		t.Helper()
		info, err := b.inspector.GetTaskInfo(b.queue, taskID)
		if err != nil {
			t.Fatalf("item not back on the queue: %v", err)
		}
		if info.State != want {
			// A scheduled grouped task loses its group in asynq and runs
			// alone, without the verify group's lookup.
			t.Fatalf("requeued item is %v, want %v", info.State, want)
		}
		var ref itemRef
		if err := json.Unmarshal(info.Payload, &ref); err != nil {
			t.Fatal(err)
		}
		if _, err := b.inspector.DeleteAllAggregatingTasks(b.queue, info.Group); err != nil {
			t.Fatal(err)
		}
		_ = b.inspector.DeleteTask(b.queue, taskID) // scheduled, not aggregating
		return ref
	}

	// Parked: not counted.
	if err := run.requeue(ctx, item(0), group, time.Now().Add(time.Minute), false, "blocked"); err != nil {
		t.Fatal(err)
	}
	if ref := queued(asynq.TaskStateScheduled); ref.Requeued != 0 {
		t.Fatalf("a parked item counts %d requeues, want 0", ref.Requeued)
	}
	// Transient: counted, up to the bound.
	if err := run.requeue(ctx, item(1), group, time.Time{}, true, "INTERNAL_SERVER_ERROR"); err != nil {
		t.Fatal(err)
	}
	if ref := queued(asynq.TaskStateAggregating); ref.Requeued != 2 {
		t.Fatalf("requeued %d, want 2", ref.Requeued)
	}
	if err := run.requeue(ctx, item(2), group, time.Time{}, true, "INTERNAL_SERVER_ERROR: boom"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.inspector.GetTaskInfo(b.queue, taskID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatalf("item past the bound is queued again (%v)", err)
	}
	st, err := bs.imports.Status(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || st.Counts.Failed != 2 {
		t.Fatalf("status %+v, want done with x and kid failed", st)
	}
	reasons := st.Failed
	if want := "gave up after 2 transient failures, the last: INTERNAL_SERVER_ERROR: boom"; reasons["x"] != want {
		t.Errorf("reason of x %q, want %q", reasons["x"], want)
	}
	if !strings.Contains(reasons["kid"], "parent x failed") {
		t.Errorf("reason of kid %q, want it to name its failed parent", reasons["kid"])
	}
}
