//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"
)

// TestScaleSentinelFailover runs two workers and the enqueue command on
// REDIS_URL=redis-sentinel://S1,S2,S3?master=mymaster (one master, one
// replica, three sentinels), kills the master with SIGKILL in the middle of
// a 200-department import, and checks that the sentinels promote the
// replica, the workers reconnect on their own and finish, and every
// department exists exactly once with the import status agreeing.
//
// What a failover can lose: replication is asynchronous, so the writes the
// old master acknowledged but had not yet sent to the replica are gone. For
// asynq that can be an enqueue (the task never runs: the import item stays
// pending until `enqueue import` is run again, which re-enqueues it), a
// dequeue or a completion (the task runs again), a retry or a lease
// extension. For our own state it can be an import item's "created" record
// or an attempt marker. A task that runs again after its object was
// created finds it because the re-run is a retry (asynq counts the lost
// lease as a failure) or its attempt marker survived, and the handler then
// looks the object up by (NAME, PARENT) before creating; see the report of
// issue 10 for the one window this does not cover.
func TestScaleSentinelFailover(t *testing.T) {
	t.Parallel()
	g := startSentinelGroup(t, 3)
	s := startSim(t, "--rate", "20", "--burst", "20")
	redisEnv := map[string]string{"REDIS_URL": g.url()}
	// Batch off and a modest rate: the import takes about 10 s, so the
	// master dies with most of it still to do.
	env := scaleWorkerEnv(s, redisEnv, map[string]string{"B24_RATE": "20", "B24_BURST": "20", "B24_BATCH": "false"})
	w1 := startWorker(t, env)
	w2 := startWorker(t, env)
	waitProcessing(t, w1, 15*time.Second)
	waitProcessing(t, w2, 15*time.Second)

	tr := genTree(t, 200, 4)
	id := scaleSubmit(t, redisEnv, tr.Path)
	if !waitFor(30*time.Second, func() bool {
		if s.Stats(t).DepartmentsCreated >= 40 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
		return false
	}) {
		t.Fatalf("import did not get going: %+v", s.Stats(t))
	}
	before := s.Stats(t).DepartmentsCreated
	old := g.master.addr()
	killed := time.Now()
	g.master.kill()
	t.Logf("killed master %s with %d of %d departments created", old, before, len(tr.Depts))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitUntil(ctx, t, "sentinels to promote the replica", func() (bool, string) {
		addr, err := g.currentMaster(ctx)
		if err != nil {
			return false, err.Error()
		}
		return addr == g.replica.addr(), "master is " + addr
	})
	t.Logf("failover to %s after %v", g.replica.addr(), time.Since(killed).Round(time.Millisecond))

	// The workers' clients ride out the failover (config.FailoverMaxRetries),
	// so the import goes on within seconds. (Without that, a task whose
	// completion write failed stays "active" until asynq's lease recovery,
	// up to a minute and a half later, and this wait would time out.)
	waitImported(t, s, tr, 60*time.Second)
	st := scaleWaitDone(t, redisEnv, id, 30*time.Second)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)
	if before >= len(tr.Depts) {
		t.Errorf("the import had finished (%d created) before the master was killed: the test proved nothing", before)
	}
	for _, w := range []*proc{w1, w2} {
		if w.Exited() {
			t.Errorf("a worker exited during the failover")
		}
	}
	t.Logf("import done %v after the kill; sim stats %+v", time.Since(killed).Round(time.Millisecond), s.Stats(t))
}
