//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestScaleTwentyPortals: one worker fleet (two processes, ten slots each)
// serves 20 portals, each its own b24sim at rate 5, burst 5. Portal p00 has
// department.add held in an operating block for 45 s and a 300-department
// import queued; each of the 19 others gets a 150-department import at the
// same moment. No head-of-line blocking: every small import finishes while
// p00 is still blocked, at no less than 0.9 of its own portal's rate bound
// (created/elapsed ≥ 0.9·(R + B/elapsed), i.e. elapsed ≤ (N/0.9 − B)/R),
// without a single 503; p00's tasks are parked rather than retried against
// the portal, and p00 resumes once its block is over.
//
// It is not parallel: its verdict is a timing, which the e2e tests running
// beside it would skew. WORKER_CONCURRENCY is the default 10: each portal
// has its own asynq server in the worker with its own slots, so tasks that
// sleep for their portal's next request slot never take the slots another
// portal needs (an earlier single-server worker failed this test with 10,
// 20 and even 50 slots).
func TestScaleTwentyPortals(t *testing.T) {
	const (
		portals     = 20
		rate, burst = 5.0, 5
		// 150 departments take 30 s at 5/s: long enough that the one
		// aggregation grace period (1 s) an import pays before its first
		// request does not decide the ratio.
		small = 150 // departments per unblocked portal
		big   = 300 // departments queued on the blocked portal
		block = 45 * time.Second
	)
	r := startRedis(t)
	sims := make([]*simProc, portals)
	var wg sync.WaitGroup
	for i := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sims[i] = startSim(t, "--rate", fmt.Sprint(rate), "--burst", fmt.Sprint(burst))
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	name := func(i int) string { return fmt.Sprintf("p%02d", i) }

	// The blocked portal's operating window is 50 s, so a 429 without a
	// reset time parks its tasks for 50 s: past the 45 s block.
	var file strings.Builder
	file.WriteString("portals:\n")
	for i, s := range sims {
		fmt.Fprintf(&file, "  %s:\n    webhook_url: %s\n    rate: %g\n    burst: %d\n", name(i), s.WebhookURL, rate, burst)
		if i == 0 {
			file.WriteString("    operating_limit: 45s\n    operating_window: 50s\n")
		}
	}
	portalsFile := filepath.Join(t.TempDir(), "portals.yaml")
	if err := os.WriteFile(portalsFile, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := workerEnv(r, nil, map[string]string{
		"B24_PORTALS_FILE":   portalsFile,
		"B24_RATE":           fmt.Sprint(rate),
		"B24_BURST":          fmt.Sprint(burst),
		"B24_BATCH":          "false", // one request per department: the rate bound is tight
		"WORKER_CONCURRENCY": "10",
		"LOG_LEVEL":          "info",
	})
	w1 := startWorker(t, env)
	w2 := startWorker(t, env)
	waitProcessing(t, w1, 15*time.Second)
	waitProcessing(t, w2, 15*time.Second)

	sims[0].Block(t, "department.add", block)
	blockEnds := time.Now().Add(block)
	bigTree := genTree(t, big, 3)
	scaleSubmit(t, enqueueEnv(r), bigTree.Path, "--portal", name(0))

	// Submit the 19 small imports at once; time each from its submission.
	starts := make([]time.Time, portals)
	done := make([]time.Time, portals)
	for i := 1; i < portals; i++ {
		path := flatImport(t, name(i), small)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, errOut, code := runEnqueue(t, enqueueEnv(r), "import", path, "--portal", name(i)); code != 0 {
				t.Errorf("enqueue import for %s: exit %d\n%s%s", name(i), code, out, errOut)
			}
			// From the moment the import is queued: the start-up of 19
			// enqueue processes on a small CI machine is not the portal's.
			starts[i] = time.Now()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	left := portals - 1
	waitFor(time.Until(blockEnds), func() bool {
		for i := 1; i < portals; i++ {
			if done[i].IsZero() && sims[i].Stats(t).DepartmentsCreated >= small {
				done[i] = time.Now()
				left--
			}
		}
		if left > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		return left == 0
	})
	blocked := sims[0].Stats(t)

	// elapsed ≤ (N/0.9 − B)/R is created/elapsed ≥ 0.9·(R + B/elapsed).
	bound := (float64(small)/0.9 - burst) / rate // seconds
	maxElapsed := time.Duration(bound * float64(time.Second))
	var worst time.Duration
	for i := 1; i < portals; i++ {
		st := sims[i].Stats(t)
		if done[i].IsZero() {
			t.Errorf("%s: %d of %d departments created before %s's block ended", name(i), st.DepartmentsCreated, small, name(0))
			continue
		}
		el := done[i].Sub(starts[i])
		worst = max(worst, el)
		ratio := float64(small) / el.Seconds() / (rate + burst/el.Seconds())
		t.Logf("%s: %d departments in %v: %.2f/s, %.2f of the bound", name(i), small, el.Round(10*time.Millisecond), float64(small)/el.Seconds(), ratio)
		if el > maxElapsed {
			t.Errorf("%s: %d departments took %v, more than %v: %.2f of its rate bound, want ≥ 0.9", name(i), small, el.Round(10*time.Millisecond), maxElapsed.Round(10*time.Millisecond), ratio)
		}
		if st.Rejected503 != 0 {
			t.Errorf("%s: the portal answered 503 %d times", name(i), st.Rejected503)
		}
	}
	t.Logf("slowest small import %v (bound %v); blocked portal meanwhile: %d created, %d answers 429", worst.Round(10*time.Millisecond), maxElapsed.Round(10*time.Millisecond), blocked.DepartmentsCreated, blocked.Rejected429)
	if blocked.DepartmentsCreated != 0 {
		t.Errorf("%s created %d departments during its block", name(0), blocked.DepartmentsCreated)
	}
	// Parked, not hammering: at most the requests in flight when the first
	// 429 came back (one per worker slot) meet the block.
	if blocked.Rejected429 > 20 {
		t.Errorf("%s was asked %d times during its block; its tasks should be parked after the first 429s", name(0), blocked.Rejected429)
	}
	if !waitFor(time.Until(blockEnds)+20*time.Second, func() bool {
		if sims[0].Stats(t).DepartmentsCreated > 0 {
			return true
		}
		time.Sleep(200 * time.Millisecond)
		return false
	}) {
		t.Errorf("%s did not resume within 20 s after its block: %+v", name(0), sims[0].Stats(t))
	}
}

// flatImport writes a JSON import of n departments directly under the
// portal's root (parent_id 1): no parent waits, so only the rate limits
// the import. Names carry tag so each file (and import ID) is unique.
func flatImport(t *testing.T, tag string, n int) string {
	t.Helper()
	type dept struct {
		Key      string `json:"key"`
		Name     string `json:"name"`
		ParentID int64  `json:"parent_id"`
	}
	ds := make([]dept, n)
	stamp := time.Now().UnixNano() % 1e9
	for i := range ds {
		ds[i] = dept{Key: fmt.Sprintf("d%d", i), Name: fmt.Sprintf("Dept %d %s %d", i, tag, stamp), ParentID: 1}
	}
	b, err := json.Marshal(map[string]any{"departments": ds})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "flat-"+tag+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
