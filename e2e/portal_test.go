//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// importUnderFaults runs an n-department import of the given depth through
// two workers against a simulator started with simFlags and checks the
// outcome: every department exactly once under the right parent, the import
// done without failure and its status matching the simulator. It returns
// the simulator.
func importUnderFaults(t *testing.T, n, depth int, extraEnv map[string]string, simFlags ...string) (st importStatus, s *simProc) {
	t.Helper()
	r := startRedis(t)
	s = startSim(t, append([]string{"--rate", "100", "--burst", "100"}, simFlags...)...)
	env := workerEnv(r, s, extraEnv)
	startTwoWorkers(t, env)
	tr := genTree(t, n, depth)
	id := submitImport(t, r, tr.Path)
	st = waitDone(t, r, id, 240*time.Second)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)
	return st, s
}

// TestPortalFaults: HTTP 500 before the work, responses lost after the
// department was created, and answers slower (2 s) than B24_TIMEOUT (1 s)
// after it was created. The ambiguous ones (lost, slow) are retried with a
// lookup first: zero duplicates. Call by call (B24_BATCH=0; 60 departments,
// since a failed call retries its whole group with backoff) the rates are
// the 10% each; batch mode sends a request per tree level and group, so its tree is deeper (12 levels) and its rates are
// 20% each, so that every kind of fault is hit among its few requests.
func TestPortalFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		batch    string
		n, depth int
		rate     string
	}{
		{"1", 200, 12, "0.2"},
		{"0", 60, 3, "0.1"},
	} {
		t.Run("batch="+tc.batch, func(t *testing.T) {
			t.Parallel()
			_, s := importUnderFaults(t, tc.n, tc.depth, map[string]string{"B24_TIMEOUT": "1s", "B24_BATCH": tc.batch},
				"--error-rate", tc.rate, "--lost-response-rate", tc.rate, "--slow-rate", tc.rate, "--slow-delay", "2s")
			st := s.Stats(t)
			t.Logf("faults injected: %v; requests %d", st.Faults, st.Requests)
			for _, k := range []string{"error", "lost_response", "slow"} {
				if st.Faults[k] == 0 {
					t.Errorf("no %q fault was injected: the test proves nothing", k)
				}
			}
		})
	}
}

// TestPortalNonJSON: an HTML 502 page from a front proxy is transient and
// retried; a 200 whose body is truncated JSON (the department was created)
// is not taken for success: the retry looks up and adopts the department,
// so the IDs in the import status are the simulator's and no department
// exists twice.
func TestPortalNonJSON(t *testing.T) {
	t.Parallel()
	_, s := importUnderFaults(t, 150, 4, map[string]string{"B24_BATCH": "0"},
		"--bad-gateway-rate", "0.1", "--malformed-rate", "0.1")
	st := s.Stats(t)
	t.Logf("faults injected: %v", st.Faults)
	if st.Faults["bad_gateway"] == 0 || st.Faults["malformed"] == 0 {
		t.Errorf("faults not injected: %v", st.Faults)
	}
}

// Test429Storm: department.add answers 429 OPERATION_TIME_LIMIT for 10 s
// (scaled from the 30 s; the sim's 429 carries no reset time, so the
// workers park the method for B24_OPERATING_WINDOW, also 10 s). At most one
// call per worker reaches the portal during the block; the tasks are parked
// (rescheduled, not polled) and the import resumes when the block ends.
func Test429Storm(t *testing.T) {
	t.Parallel()
	const block = 10 * time.Second
	r := startRedis(t)
	s := startSim(t, "--rate", "100", "--burst", "100", "--operating-window", "10s", "--operating-limit", "8s")
	env := workerEnv(r, s, map[string]string{"B24_OPERATING_WINDOW": "10s", "B24_OPERATING_LIMIT": "8s", "B24_BATCH": "0"})
	workers := []*proc{startWorker(t, env), startWorker(t, env)}
	for _, w := range workers {
		waitProcessing(t, w, 10*time.Second)
	}
	tr := genTree(t, 100, 3)
	base := s.Stats(t).Requests
	s.Block(t, "department.add", block)
	blockEnd := time.Now().Add(block)
	id := submitImport(t, r, tr.Path)

	// Watch the block: requests admitted while it lasts.
	var during int
	for time.Now().Before(blockEnd.Add(-200 * time.Millisecond)) {
		during = s.Stats(t).Requests - base
		time.Sleep(100 * time.Millisecond)
	}
	st := s.Stats(t)
	t.Logf("during the %v block: %d requests, %d refused with 429", block, during, st.Rejected429)
	if during > len(workers) {
		t.Errorf("%d requests during the block, want at most one per worker (%d)", during, len(workers))
	}
	if st.Rejected429 == 0 {
		t.Errorf("no 429 seen: the block did not act")
	}
	if st.DepartmentsCreated != 0 {
		t.Errorf("%d departments created during the block", st.DepartmentsCreated)
	}
	// Resume: the first creation comes within a few seconds of the reset.
	if !waitFor(block/2+5*time.Second, func() bool { return s.Stats(t).DepartmentsCreated > 0 }) {
		t.Fatalf("nothing created within %v after the block ended", block/2+5*time.Second)
	}
	t.Logf("first creation %v after the block ended", time.Since(blockEnd).Round(100*time.Millisecond))
	fin := waitDone(t, r, id, 60*time.Second)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, fin, ids)
	if got := s.Stats(t).Rejected429; got > len(workers) {
		t.Errorf("%d 429s in total, want at most one per worker", got)
	}
}
