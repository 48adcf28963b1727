//go:build e2e

package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/tasks"
)

// waitCreated waits until the simulator created at least n departments.
func waitCreated(t testing.TB, s *simProc, n int, d time.Duration) {
	t.Helper()
	if !waitFor(d, func() bool { return s.Stats(t).DepartmentsCreated >= n }) {
		t.Fatalf("fewer than %d departments created within %v: %+v", n, d, s.Stats(t))
	}
}

// slowImportEnv is the environment of the process-fault tests: one call at
// a time per task (no batches) against a simulator with 150 ms latency per
// call, so that a 300-department import lasts long enough to be
// interrupted in the middle.
func slowImportEnv(r *redisProc, s *simProc) map[string]string {
	return workerEnv(r, s, map[string]string{"B24_BATCH": "0", "WORKER_CONCURRENCY": "4"})
}

// TestKillWorker: kill -9 one of two workers in the middle of a
// 300-department import. Its running tasks stay "active" with a lease
// nobody extends; asynq's recoverer (every minute, for leases expired
// 30 s or more) hands them back to the queue and the surviving worker
// finishes the import, each department exactly once (the retry looks up
// before it creates). Then the killed worker is restarted and works.
func TestKillWorker(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t, "--rate", "100", "--burst", "100", "--latency", "150ms")
	env := slowImportEnv(r, s)
	a, b := startTwoWorkers(t, env)

	tr := genTree(t, 300, 4)
	id := submitImport(t, r, tr.Path)
	waitCreated(t, s, 60, 60*time.Second)
	a.Kill(t)
	killedAt := time.Now()
	if n := s.Stats(t).DepartmentsCreated; n >= len(tr.Depts) {
		t.Fatalf("import finished (%d) before the kill: slow the simulator", n)
	}
	in := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr()})
	t.Cleanup(func() { _ = in.Close() })
	active, err := in.ListActiveTasks(tasks.QueueName("default"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed worker A at %d created; %d tasks active (A's orphans among them)", s.Stats(t).DepartmentsCreated, len(active))

	// Recovery needs lease (30 s) + asynq's 30 s skew allowance + up to one
	// recoverer period (60 s) of worker B.
	st := waitDone(t, r, id, 150*time.Second)
	t.Logf("import done %v after the kill", time.Since(killedAt).Round(time.Second))
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)

	// B leaves; the restarted A alone creates a new department.
	b.Signal(t, syscall.SIGTERM)
	if code, ok := b.Wait(20 * time.Second); !ok || code != 0 {
		t.Fatalf("worker B: exit %d (exited %v)", code, ok)
	}
	a2 := startWorker(t, env)
	waitProcessing(t, a2, 10*time.Second)
	if code, body := httpGet(t, a2.URL(t, "/healthz"), "", ""); code != 200 {
		t.Fatalf("restarted worker /healthz: %d %s", code, body)
	}
	out, errOut, code := runEnqueue(t, enqueueEnv(r), "department", "--name", "After restart", "--parent", "1")
	if code != 0 {
		t.Fatalf("enqueue department: %d %s%s", code, out, errOut)
	}
	if !waitFor(20*time.Second, func() bool {
		for _, d := range s.Departments(t) {
			if d.Name == "After restart" && d.Parent == 1 {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the restarted worker did not create a new department")
	}
	checkImported(t, s, tr, 1)
}

// TestSigtermWorker: SIGTERM to a worker during an import. It stops
// fetching, lets running calls finish within WORKER_SHUTDOWN_TIMEOUT, puts
// unfinished tasks back in the queue and exits 0 in time; the other worker
// finishes the import, exactly once.
func TestSigtermWorker(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t, "--rate", "100", "--burst", "100", "--latency", "150ms")
	env := slowImportEnv(r, s)
	env["WORKER_SHUTDOWN_TIMEOUT"] = "3s"
	a, _ := startTwoWorkers(t, env)

	tr := genTree(t, 200, 4)
	id := submitImport(t, r, tr.Path)
	waitCreated(t, s, 40, 60*time.Second)
	a.Signal(t, syscall.SIGTERM)
	began := time.Now()
	// Bound: shutdown timeout (3 s) + the 2 s grace for abandoned runs +
	// process exit; a hung shutdown would take the side port's 5 s or more.
	code, exited := a.Wait(7 * time.Second)
	if !exited {
		t.Fatalf("worker A still running 7 s after SIGTERM with WORKER_SHUTDOWN_TIMEOUT=3s")
	}
	t.Logf("worker A exited %d after %v", code, time.Since(began).Round(10*time.Millisecond))
	if code != 0 {
		t.Errorf("worker A exit code %d after SIGTERM, want 0", code)
	}
	if n := s.Stats(t).DepartmentsCreated; n >= len(tr.Depts) {
		t.Fatalf("import finished (%d) before the SIGTERM took effect: slow the simulator", n)
	}
	if !strings.Contains(a.Stderr(), `"worker stopping`) || !strings.Contains(a.Stderr(), `"worker stopped"`) {
		t.Errorf("worker A did not log its graceful stop")
	}
	st := waitDone(t, r, id, 90*time.Second)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)
}
