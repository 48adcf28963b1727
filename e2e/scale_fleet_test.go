//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
)

// TestScaleFleetThousandsOfPortals is issue 19's benchmark: 10 and 10,000
// registered portals, 3 worker processes that serve only registered
// portals. Idle, the whole fleet costs Redis at most 100 commands per
// second; each process holds at most 20 Redis connections and under 100 MB;
// a quiet portal's first call follows its enqueue within 2 s; then 10
// portals import at once, each exactly once. Its figures are in
// docs/scaling.md.
func TestScaleFleetThousandsOfPortals(t *testing.T) {
	for _, n := range []int{10, 10_000} {
		t.Run(fmt.Sprintf("%d portals", n), func(t *testing.T) { scaleFleet(t, n) })
	}
}

func scaleFleet(t *testing.T, registered int) {
	const (
		busy      = 10
		workers   = 3
		perImport = 20
	)
	r := startRedis(t)
	s := startSim(t, "--rate", "200", "--burst", "200")
	rdb := r.Client()
	ctx := context.Background()

	start := time.Now()
	registerPortals(t, rdb, s.WebhookURL, registered)
	t.Logf("registered %d portals in %v", registered, time.Since(start).Round(time.Millisecond))

	env := workerEnv(r, nil, map[string]string{"WORKER_REGISTERED_ONLY": "true", "LOG_LEVEL": "info"})
	procs := make([]*proc, workers)
	for i := range procs {
		procs[i] = startWorker(t, env)
	}
	for _, p := range procs {
		waitProcessing(t, p, 20*time.Second)
	}
	time.Sleep(3 * time.Second) // start-up done: every worker has beaten and read the registry

	idle := commandRate(t, rdb, 10*time.Second)
	t.Logf("idle fleet (%d registered portals, no work): %.1f Redis commands/s", registered, idle)
	if idle > 100 {
		t.Errorf("idle fleet costs %.1f Redis commands/s, want <= 100", idle)
	}
	checkProcesses(t, procs, r.Port)

	// A quiet portal's first call follows its enqueue within 2 s.
	enq := enqueueEnv(r)
	name := fmt.Sprintf("Quiet %d", time.Now().UnixNano()%1e9)
	if out, errOut, code := runEnqueue(t, enq, "department", "--portal", portalName(registered/2), "--name", name, "--parent-id", "1"); code != 0 {
		t.Fatalf("enqueue department: exit %d\n%s%s", code, out, errOut)
	}
	enqueued := time.Now()
	if !waitFor(10*time.Second, func() bool { return hasDepartment(t, s, name) }) {
		t.Fatalf("the quiet portal's department was not created within 10 s")
	}
	latency := time.Since(enqueued)
	t.Logf("enqueue on a quiet portal to its department: %v", latency.Round(time.Millisecond))
	if latency > 2*time.Second {
		t.Errorf("enqueue on a quiet portal to its first call took %v, want <= 2s", latency)
	}

	// 10 portals import at once; each department exactly once.
	ids := make([]string, busy)
	var wg sync.WaitGroup
	for i := range busy {
		wg.Go(func() {
			ids[i] = scaleSubmit(t, enq, flatImport(t, portalName(i), perImport), "--portal", portalName(i))
		})
	}
	wg.Wait()
	activeRate := commandRate(t, rdb, 5*time.Second)
	t.Logf("fleet with %d portals importing: %.1f Redis commands/s", busy, activeRate)
	checkProcesses(t, procs, r.Port)
	for _, id := range ids {
		if st := scaleWaitDone(t, enq, id, 2*time.Minute); st.Counts.Created != perImport || st.Counts.Failed != 0 {
			t.Errorf("import %s: %+v", id, st.Counts)
		}
	}
	if n := len(s.Departments(t)); n != 1+1+busy*perImport {
		t.Errorf("the portal holds %d departments, want %d (root, the quiet one, %d imported): something was created twice or not at all",
			n, 2+busy*perImport, busy*perImport)
	}
	// Back to idle: every queue stops once its portal has no work.
	if !waitFor(30*time.Second, func() bool {
		n, _ := rdb.SCard(ctx, "b24q:active").Result()
		return n == 0
	}) {
		t.Errorf("portals still active 30 s after their work ended")
	}
	time.Sleep(3 * time.Second) // the stopped queues' servers have shut down
	again := commandRate(t, rdb, 10*time.Second)
	t.Logf("after the imports, idle again: %.1f Redis commands/s", again)
	if again > 100 {
		t.Errorf("idle fleet after the imports costs %.1f Redis commands/s, want <= 100", again)
	}
}

// portalName is the name of the i-th registered portal.
func portalName(i int) string { return fmt.Sprintf("app%05d", i) }

// registerPortals registers n portals, all reaching the simulator's webhook.
func registerPortals(t *testing.T, rdb *redis.Client, webhook string, n int) {
	t.Helper()
	reg := fleet.NewRegistry(rdb, "")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				p, err := config.ParsePortal(portalName(i), []byte(`{"webhook_url": "`+webhook+`", "rate": 20, "burst": 20}`), config.Limits{}, nil)
				if err == nil {
					_, _, err = reg.Add(context.Background(), p)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// commandRate returns the Redis commands per second over d (INFO stats,
// without the two INFO calls themselves).
func commandRate(t *testing.T, rdb *redis.Client, d time.Duration) float64 {
	t.Helper()
	read := func() int64 {
		info, err := rdb.Info(context.Background(), "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("INFO stats has no total_commands_processed")
		return 0
	}
	before := read()
	time.Sleep(d)
	return float64(read()-before-1) / d.Seconds()
}

// checkProcesses asserts each worker holds at most 20 Redis connections
// and under 100 MB of memory.
func checkProcesses(t *testing.T, procs []*proc, redisPort int) {
	t.Helper()
	for i, p := range procs {
		conns := redisConnections(t, p.Pid(), redisPort)
		rss := residentMB(t, p.Pid())
		_, metrics := httpGet(t, p.URL(t, "/metrics"), "", "")
		held := "?"
		for _, l := range strings.Split(metrics, "\n") {
			if v, ok := strings.CutPrefix(l, "b24q_portals_held "); ok {
				held = v
			}
		}
		t.Logf("worker %d: %s portal queues held, %d Redis connections, %.1f MB resident", i, held, conns, rss)
		if conns > 20 {
			t.Errorf("worker %d holds %d Redis connections, want <= 20", i, conns)
		}
		if rss >= 100 {
			t.Errorf("worker %d uses %.1f MB, want < 100", i, rss)
		}
	}
}

// redisConnections counts the TCP connections process pid holds to the
// local port: its socket inodes matched against /proc/net/tcp.
func redisConnections(t *testing.T, pid, port int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatal(err)
	}
	remote := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) > 9 && strings.HasSuffix(f[2], remote) && f[3] == "01" && inodes[f[9]] {
			n++
		}
	}
	return n
}

// residentMB returns process pid's resident memory in MB.
func residentMB(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// hasDepartment reports whether the simulator holds a department named name.
func hasDepartment(t *testing.T, s *simProc, name string) bool {
	for _, d := range s.Departments(t) {
		if d.Name == name {
			return true
		}
	}
	return false
}

// TestFleetHandsOverADeadWorkersPortal: with one owner per portal
// (WORKER_PORTAL_REPLICAS=1), the worker running a registered portal's
// import is killed (SIGKILL, no goodbye); another worker takes the portal
// over once the dead one's heartbeat expires, and the import finishes with
// every department exactly once.
func TestFleetHandsOverADeadWorkersPortal(t *testing.T) {
	t.Parallel()
	const n = 100
	r := startRedis(t)
	s := startSim(t, "--rate", "5", "--burst", "5")
	enq := enqueueEnv(r)
	entry := filepath.Join(t.TempDir(), "handover.json")
	if err := os.WriteFile(entry, []byte(`{"webhook_url": "`+s.WebhookURL+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runEnqueue(t, enq, "portal", "add", "handover", entry); code != 0 {
		t.Fatalf("enqueue portal add: exit %d\n%s%s", code, out, errOut)
	}
	env := workerEnv(r, nil, map[string]string{"WORKER_REGISTERED_ONLY": "true", "WORKER_PORTAL_REPLICAS": "1",
		"B24_RATE": "5", "B24_BURST": "5", "B24_BATCH": "false"})
	procs := []*proc{startWorker(t, env), startWorker(t, env), startWorker(t, env)}
	for _, p := range procs {
		waitProcessing(t, p, 15*time.Second)
	}
	id := scaleSubmit(t, enq, flatImport(t, "handover", n), "--portal", "handover")
	waitCreated(t, s, 10, 30*time.Second)

	holders := func(ps []*proc) []int {
		var out []int
		for i, p := range ps {
			if p.Exited() {
				continue
			}
			_, m := httpGet(t, p.URL(t, "/metrics"), "", "")
			if strings.Contains(m, "\nb24q_portals_held 1\n") {
				out = append(out, i)
			}
		}
		return out
	}
	held := holders(procs)
	if len(held) != 1 {
		t.Fatalf("workers holding the portal: %v, want exactly one", held)
	}
	dead := held[0]
	procs[dead].Kill(t)
	killed := time.Now()
	created := s.Stats(t).DepartmentsCreated
	t.Logf("killed worker %d with %d of %d departments created", dead, created, n)

	if !waitFor(30*time.Second, func() bool { return len(holders(procs)) == 1 }) {
		t.Fatalf("no surviving worker took the portal over within 30 s")
	}
	t.Logf("taken over by worker %v after %v", holders(procs), time.Since(killed).Round(100*time.Millisecond))
	st := scaleWaitDone(t, enq, id, 3*time.Minute)
	if st.Counts.Created != n || st.Counts.Failed != 0 {
		t.Errorf("import after the handover: %+v", st.Counts)
	}
	seen := map[string]int{}
	for _, d := range s.Departments(t) {
		seen[d.Name]++
	}
	for name, c := range seen {
		if c > 1 {
			t.Errorf("department %q created %d times", name, c)
		}
	}
	if len(seen) != n+1 {
		t.Errorf("the portal holds %d distinct departments, want %d (root and the import)", len(seen), n+1)
	}
}
