//go:build e2e

package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
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

// faultSeed seeds the simulator's dice so that, at 10% each for error,
// lost response and slow answer, its first ten requests roll
// "...L...E.S": each kind once (b24test rolls error, then lost, then slow).
const faultSeed = "89"

// TestFaultSeedHitsEveryKindEarly keeps faultSeed honest: with it, the
// simulator's first ten requests inject each kind of fault.
func TestFaultSeedHitsEveryKindEarly(t *testing.T) {
	t.Parallel()
	seed, _ := strconv.ParseInt(faultSeed, 10, 64)
	sim := b24test.NewServer(t, b24test.Config{Seed: seed, Faults: b24test.Faults{
		ErrorRate: 0.1, LostResponseRate: 0.1, SlowRate: 0.1, SlowDelay: time.Millisecond}})
	for range 10 {
		resp, err := http.Post(sim.WebhookURL()+"department.get", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
	}
	faults := sim.Stats().Faults
	for _, k := range []string{"error", "lost_response", "slow"} {
		if faults[k] != 1 {
			t.Errorf("seed %s: %d %q faults in the first 10 requests, want 1 (all: %v)", faultSeed, faults[k], k, faults)
		}
	}
}

// TestPortalFaults: HTTP 500 before the work, responses lost after the
// department was created, and answers slower (2 s) than B24_TIMEOUT (1 s)
// after it was created, at the 10% each. The ambiguous ones (lost,
// slow) are retried with a lookup first: zero duplicates. Batch mode sends
// a request per tree level and group, so its tree is deep (12 levels);
// call by call (B24_BATCH=0) it is 60 departments, since a failed call
// retries its whole group with backoff.
//
// The simulator's dice are seeded (faultSeed) so that every kind of fault
// is hit among the first ten requests, however few requests a run needs;
// the rest of the run rolls them at 10% as usual.
func TestPortalFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		batch    string
		n, depth int
	}{
		{"1", 200, 12},
		{"0", 60, 3},
	} {
		t.Run("batch="+tc.batch, func(t *testing.T) {
			t.Parallel()
			_, s := importUnderFaults(t, tc.n, tc.depth, map[string]string{"B24_TIMEOUT": "1s", "B24_BATCH": tc.batch},
				"--seed", faultSeed, "--error-rate", "0.1", "--lost-response-rate", "0.1", "--slow-rate", "0.1", "--slow-delay", "2s")
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
