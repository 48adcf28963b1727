//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/tasks"
)

// TestScaleCapacity measures what the README's "Scaling out" section
// quotes, each on a private redis-server, and prints it (go test -v):
//
//   - Redis memory (INFO used_memory) per 10,000 queued department tasks,
//     per 10,000 completed tasks kept for their retention, and per
//     10,000-item import state (when submitted and when fully created);
//   - Redis round trips and commands (counted by a proxy in front of Redis;
//     the idle worker's own polling subtracted) per created department, for
//     single tasks and for an import, with batch mode off and on.
//
// The bounds asserted are loose (an order of magnitude above what was
// measured): they catch a regression that bloats the state or adds round
// trips per item, not noise.
func TestScaleCapacity(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		scaleMemory(t)
	})
	for _, batch := range []bool{false, true} {
		t.Run("commands/batch="+strconv.FormatBool(batch), func(t *testing.T) {
			t.Parallel()
			scaleCommands(t, batch)
		})
	}
}

func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := redisInfo(ctx, c, "memory")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(m["used_memory"], 10, 64)
	if err != nil {
		t.Fatalf("used_memory %q: %v", m["used_memory"], err)
	}
	return n
}

func scaleMemory(t *testing.T) {
	const n = 10000
	ctx := context.Background()
	r := startRedis(t)
	c := r.Client()

	// 10,000 queued department tasks, as `enqueue department` makes them.
	client := asynq.NewClientFromRedisClient(c)
	m0 := usedMemory(t, c)
	for i := range n {
		task, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{Name: fmt.Sprintf("Department %05d", i), Parent: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.EnqueueContext(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	m1 := usedMemory(t, c)
	perTask := float64(m1-m0) / n
	t.Logf("CAPACITY memory: %d queued department tasks: %.1f MB (%.0f bytes per task)", n, float64(m1-m0)/1e6, perTask)
	if perTask < 50 || perTask > 5000 {
		t.Errorf("%.0f bytes per queued task: outside the plausible 50..5000", perTask)
	}

	// A 10,000-item import's state (a tree, 10 children per parent).
	imp := store.New(c, "")
	one := int64(1)
	f := &importer.File{}
	for i := range n {
		d := importer.Department{Key: "d" + strconv.Itoa(i), Name: fmt.Sprintf("Department %05d", i)}
		if i == 0 {
			d.ParentID = &one
		} else {
			d.Parent = "d" + strconv.Itoa((i-1)/10)
		}
		f.Departments = append(f.Departments, d)
	}
	m2 := usedMemory(t, c)
	if _, err := imp.Create(ctx, "capacity", "default", f.ID(), f); err != nil {
		t.Fatal(err)
	}
	m3 := usedMemory(t, c)
	for i := range n {
		if _, err := imp.Complete(ctx, "capacity", "d"+strconv.Itoa(i), int64(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	m4 := usedMemory(t, c)
	t.Logf("CAPACITY memory: %d-item import state: %.1f MB submitted (%.0f bytes per item), %.1f MB when all created",
		n, float64(m3-m2)/1e6, float64(m3-m2)/n, float64(m4-m2)/1e6)
	if per := float64(m4-m2) / n; per < 20 || per > 5000 {
		t.Errorf("%.0f bytes per created import item: outside the plausible 20..5000", per)
	}
}

// scaleCommands counts Redis commands and round trips per created
// department through a counting proxy: n single department tasks, then an
// n-department import, through one worker against a fast simulator.
func scaleCommands(t *testing.T, batch bool) {
	const n = 200
	ctx := context.Background()
	r := startRedis(t)
	c := r.Client()
	px := startRedisCounter(t, r.Addr())
	viaProxy := "redis://" + px.addr() + "/0"
	s := startSim(t, "--rate", "1000", "--burst", "1000")
	env := workerEnv(r, s, map[string]string{
		"REDIS_URL": viaProxy,
		"B24_RATE":  "1000", "B24_BURST": "1000", "B24_BATCH": strconv.FormatBool(batch),
		"WORKER_CONCURRENCY": "10", "LOG_LEVEL": "info",
	})
	type count struct {
		cmds, rts int64
		at        time.Time
	}
	snap := func() count { return count{px.commands.Load(), px.roundTrips.Load(), time.Now()} }
	// per returns (commands, round trips) per created department between a
	// and b, less the idle worker's own traffic over that time.
	var idleCmds, idleRTs float64
	per := func(a, b count) (float64, float64) {
		d := b.at.Sub(a.at).Seconds()
		return (float64(b.cmds-a.cmds) - idleCmds*d) / n, (float64(b.rts-a.rts) - idleRTs*d) / n
	}
	created := func() int { return s.Stats(t).DepartmentsCreated }

	// Enqueueing, without a worker.
	pc := redis.NewClient(&redis.Options{Addr: px.addr()})
	t.Cleanup(func() { _ = pc.Close() })
	client := asynq.NewClientFromRedisClient(pc)
	c0 := snap()
	for i := range n {
		task, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{Name: fmt.Sprintf("Single %03d", i), Parent: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.EnqueueContext(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	enqCmds, enqRTs := per(c0, snap())

	w := startWorker(t, env)
	waitProcessing(t, w, 15*time.Second)
	c1 := snap()
	if !waitFor(60*time.Second, func() bool { return created() >= n }) {
		t.Fatalf("%d of %d single tasks done", created(), n)
	}
	time.Sleep(300 * time.Millisecond) // the last tasks' completion writes
	c2 := snap()
	time.Sleep(3 * time.Second) // the idle worker's own polling
	c3 := snap()
	idleCmds = float64(c3.cmds-c2.cmds) / c3.at.Sub(c2.at).Seconds()
	idleRTs = float64(c3.rts-c2.rts) / c3.at.Sub(c2.at).Seconds()
	singleCmds, singleRTs := per(c1, c2)

	// What the completed tasks keep for their retention: the keys of their
	// queue (used_memory would be dominated, at this n, by fixed costs such
	// as the script cache and client buffers).
	w.Signal(t, syscall.SIGTERM)
	if _, ok := w.Wait(15 * time.Second); !ok {
		t.Fatal("worker did not stop")
	}
	retained := float64(keysMemory(t, c, "asynq:{"+tasks.QueueName(tasks.DefaultPortal)+"}:*")) / n

	w = startWorker(t, env)
	waitProcessing(t, w, 15*time.Second)
	tr := genTree(t, n, 4)
	c4 := snap()
	if out, errOut, code := runEnqueue(t, map[string]string{"REDIS_URL": viaProxy}, "import", tr.Path); code != 0 {
		t.Fatalf("enqueue import: exit %d\n%s%s", code, out, errOut)
	}
	waitImported(t, s, tr, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	impCmds, impRTs := per(c4, snap())
	checkImported(t, s, tr, n)

	t.Logf("CAPACITY round trips (batch=%t): enqueue %.1f per task; single task %.1f per created department; import %.1f per created department (incl. submit); idle worker %.1f/s",
		batch, enqRTs, singleRTs, impRTs, idleRTs)
	t.Logf("CAPACITY commands (batch=%t): enqueue %.1f per task; single task %.1f per created department; import %.1f per created department; idle worker %.1f/s",
		batch, enqCmds, singleCmds, impCmds, idleCmds)
	t.Logf("CAPACITY memory: a completed task kept for its retention (%v): %.0f bytes", tasks.DefaultRetention, retained)
	if singleRTs > 40 || impRTs > 40 {
		t.Errorf("more than 40 Redis round trips per created department (single %.1f, import %.1f)", singleRTs, impRTs)
	}
	if retained < 50 || retained > 5000 {
		t.Errorf("%.0f bytes per completed task: outside the plausible 50..5000", retained)
	}
}

// keysMemory sums MEMORY USAGE of the keys matching pattern (a test-only
// SCAN of a private server).
func keysMemory(t *testing.T, c *redis.Client, pattern string) int64 {
	t.Helper()
	ctx := context.Background()
	var total int64
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n, err := c.MemoryUsage(ctx, iter.Val(), 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
