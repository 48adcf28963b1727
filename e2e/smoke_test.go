//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// TestSmokeImport is the baseline the fault tests vary: two workers import
// a 60-department tree through the real binaries, exactly once.
func TestSmokeImport(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t, "--rate", "50", "--burst", "50")
	env := workerEnv(r, s, nil)
	w1 := startWorker(t, env)
	startWorker(t, env)
	waitProcessing(t, w1, 10*time.Second)
	tr := genTree(t, 60, 4)
	id := submitImport(t, r, tr.Path)
	st := waitDone(t, r, id, 60*time.Second)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)
}
