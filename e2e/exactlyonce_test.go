//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeTree writes depts as a JSON import file and returns it as a tree.
func writeTree(t *testing.T, name string, depts []treeDept) *tree {
	t.Helper()
	b, err := json.MarshalIndent(map[string]any{"departments": depts}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	tr := &tree{Path: filepath.Join(t.TempDir(), name), Depts: depts}
	if err := os.WriteFile(tr.Path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestConcurrentImportsShareDepartments: two files sharing a subtree, and
// the first file again under a second ID, submitted at once to two workers
// while the portal loses a tenth of its answers. Every department exists
// exactly once, and every import maps its keys to that one ID: the second
// comer waits for the first one's department and adopts it.
func TestConcurrentImportsShareDepartments(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t, "--rate", "100", "--burst", "100", "--latency", "50ms", "--seed", "21", "--lost-response-rate", "0.1")
	env := workerEnv(r, s, map[string]string{"B24_REQUEST_LIMIT": "1s"})
	startTwoWorkers(t, env)

	a := genTree(t, 150, 4)
	extra := []treeDept{{Key: "x1", Name: "Only in B 1", Parent: "top"}, {Key: "x2", Name: "Only in B 2", Parent: "d1"}}
	b := writeTree(t, "org-b.json", append(append([]treeDept(nil), a.Depts...), extra...))

	var wg sync.WaitGroup
	ids := make([]string, 3)
	for i, sub := range []struct {
		path string
		args []string
	}{{a.Path, nil}, {a.Path, []string{"--id", "twin"}}, {b.Path, nil}} {
		wg.Go(func() { ids[i] = submitImport(t, r, sub.path, sub.args...) })
	}
	wg.Wait()
	var sts []importStatus
	for _, id := range ids {
		sts = append(sts, waitDone(t, r, id, 3*time.Minute))
	}
	want := checkImported(t, s, b, 0) // b holds a's departments and its own
	for i, st := range sts {
		if st.Counts.Failed != 0 {
			t.Errorf("import %s: failed %v", ids[i], st.Failed)
		}
		for k, id := range st.Created {
			if want[k] != id {
				t.Errorf("import %s maps %s to %d, the portal holds it as %d", ids[i], k, id, want[k])
			}
		}
	}
}

// TestPausedWorkerPastItsLease: a worker is stopped (SIGSTOP) in the middle
// of an import for longer than its tasks' lease, the other worker takes its
// tasks over, then the first resumes. The resumed worker's runs were
// superseded: the limiter's grant refuses the creates they were about to
// send (their claims belong to the runs that took over), so every department
// exists exactly once.
func TestPausedWorkerPastItsLease(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t, "--rate", "100", "--burst", "100", "--latency", "300ms")
	env := workerEnv(r, s, map[string]string{"B24_BATCH": "0", "WORKER_CONCURRENCY": "4", "B24_REQUEST_LIMIT": "1s"})
	a, _ := startTwoWorkers(t, env)

	tr := genTree(t, 200, 3)
	id := submitImport(t, r, tr.Path)
	waitCreated(t, s, 30, time.Minute)
	a.Signal(t, syscall.SIGSTOP)
	// asynq's lease is 30 s; the other worker's recoverer hands the tasks
	// back within about a minute after that.
	time.Sleep(75 * time.Second)
	a.Signal(t, syscall.SIGCONT)
	st := waitDone(t, r, id, 3*time.Minute)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)
}
