//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis topologies of the scale tests (a 3-master Cluster, a Sentinel
// group) as local redis-server processes on free ports, each in its own
// temporary directory, killed on t.Cleanup. Names start with "scale" or
// "redisNode" so they do not collide with the shared harness.

// redisNode is one redis-server process (a data node or a sentinel).
type redisNode struct {
	port int
	dir  string
	cmd  *exec.Cmd
	log  string // path of its log file

	mu   sync.Mutex
	dead bool
}

// addr is the node's 127.0.0.1:PORT.
func (n *redisNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// kill sends SIGKILL (no shutdown, no save: a crash) and reaps the process.
// Calling it again is a no-op.
func (n *redisNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dead {
		return
	}
	n.dead = true
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
}

// logTail returns the last lines of the node's log, for failure messages.
func (n *redisNode) logTail(lines int) string {
	b, err := os.ReadFile(n.log)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// scaleNeedRedisBinaries skips (or, with CI set, fails) when redis-server or
// redis-cli is missing.
func scaleNeedRedisBinaries(t *testing.T) {
	t.Helper()
	for _, b := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") == "" {
				t.Skipf("%s not installed", b)
			}
			t.Fatalf("%s not installed (CI is set)", b)
		}
	}
}

// scalePortMu serialises picking ports within this process, so two parallel
// tests do not pick the same one between closing the probe and starting.
var (
	scalePortMu   sync.Mutex
	scalePortSeen = map[int]bool{}
)

// scaleFreePort returns a port p such that p and p+10000 (the cluster bus
// port) are free now and were not handed out before in this process.
func scaleFreePort(t *testing.T) int {
	t.Helper()
	scalePortMu.Lock()
	defer scalePortMu.Unlock()
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if p+10000 > 65535 || scalePortSeen[p] {
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		_ = bus.Close()
		scalePortSeen[p] = true
		return p
	}
	t.Fatal("no free port pair (p, p+10000) found")
	return 0
}

// startRedisNode starts redis-server on a free port in a fresh directory with
// persistence off plus args, and waits until it answers PING. With sentinel
// true it writes args as the lines of a sentinel config file and starts
// redis-server CONFIG --sentinel instead (a sentinel rewrites its config).
func startRedisNode(t *testing.T, sentinel bool, args ...string) *redisNode {
	t.Helper()
	port := scaleFreePort(t)
	dir := t.TempDir()
	n := &redisNode{port: port, dir: dir, log: filepath.Join(dir, "redis.log")}
	var argv []string
	if sentinel {
		conf := filepath.Join(dir, "sentinel.conf")
		lines := append([]string{"port " + strconv.Itoa(port), "bind 127.0.0.1", "dir " + dir, "logfile " + n.log}, args...)
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		argv = []string{conf, "--sentinel"}
	} else {
		argv = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--logfile", n.log, "--save", "", "--appendonly", "no"}, args...)
	}
	n.cmd = exec.Command("redis-server", argv...)
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(n.kill)
	c := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s does not answer: %v\n%s", n.addr(), err, n.logTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster starts a Redis Cluster of masters nodes without replicas,
// creates it with redis-cli --cluster create and waits until every node
// reports cluster_state:ok. It returns the nodes.
func startCluster(t *testing.T, masters int) []*redisNode {
	t.Helper()
	scaleNeedRedisBinaries(t)
	nodes := make([]*redisNode, masters)
	addrs := make([]string, masters)
	for i := range nodes {
		nodes[i] = startRedisNode(t, false, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		addrs[i] = nodes[i].addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.addr()})
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if ctx.Err() != nil {
				c.Close()
				t.Fatalf("cluster node %s not ok: %v %q", n.addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return nodes
}

// clusterAddrs is the REDIS_CLUSTER_ADDRS value of nodes.
func clusterAddrs(nodes []*redisNode) string {
	a := make([]string, len(nodes))
	for i, n := range nodes {
		a[i] = n.addr()
	}
	return strings.Join(a, ",")
}

// sentinelGroup is a master, its replica and the sentinels watching them.
type sentinelGroup struct {
	master, replica *redisNode
	sentinels       []*redisNode
	name            string
}

// url is the REDIS_URL of the group (asynq's redis-sentinel:// form).
func (g *sentinelGroup) url() string {
	a := make([]string, len(g.sentinels))
	for i, s := range g.sentinels {
		a[i] = s.addr()
	}
	return "redis-sentinel://" + strings.Join(a, ",") + "?master=" + g.name
}

// startSentinelGroup starts a master, one replica of it and n sentinels
// (quorum n/2+1) with a 1 s down-after and a short failover timeout, and
// waits until the replica is in sync and every sentinel knows the replica
// and the other sentinels (so a failover can be elected at once).
func startSentinelGroup(t *testing.T, n int) *sentinelGroup {
	t.Helper()
	scaleNeedRedisBinaries(t)
	g := &sentinelGroup{name: "mymaster"}
	g.master = startRedisNode(t, false)
	g.replica = startRedisNode(t, false, "--replicaof", "127.0.0.1", strconv.Itoa(g.master.port))
	quorum := n/2 + 1
	for range n {
		g.sentinels = append(g.sentinels, startRedisNode(t, true,
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", g.name, g.master.port, quorum),
			"sentinel down-after-milliseconds "+g.name+" 1000",
			"sentinel failover-timeout "+g.name+" 5000",
			"sentinel parallel-syncs "+g.name+" 1"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: g.replica.addr()})
	defer rc.Close()
	waitUntil(ctx, t, "replica in sync", func() (bool, string) {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up"), info
	})
	for _, s := range g.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
		waitUntil(ctx, t, "sentinel "+s.addr()+" sees the replica and its peers", func() (bool, string) {
			m, err := sc.Master(ctx, g.name).Result()
			if err != nil {
				return false, err.Error()
			}
			return m["num-slaves"] == "1" && m["num-other-sentinels"] == strconv.Itoa(n-1), fmt.Sprint(m)
		})
		sc.Close()
	}
	return g
}

// currentMaster asks the first live sentinel for the master's address.
func (g *sentinelGroup) currentMaster(ctx context.Context) (string, error) {
	var errs []error
	for _, s := range g.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
		addr, err := sc.GetMasterAddrByName(ctx, g.name).Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// waitUntil polls cond every 50 ms until it holds or ctx ends (then the test
// fails with what, and cond's last detail).
func waitUntil(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var detail string
	for {
		var ok bool
		if ok, detail = cond(); ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %s", what, detail)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// redisInfo returns the fields of INFO section of one node.
func redisInfo(ctx context.Context, c *redis.Client, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// commandCalls sums the calls= of every command in INFO commandstats but
// INFO itself.
func commandCalls(ctx context.Context, c *redis.Client) (int64, error) {
	m, err := redisInfo(ctx, c, "commandstats")
	if err != nil {
		return 0, err
	}
	var total int64
	for k, v := range m {
		if !strings.HasPrefix(k, "cmdstat_") || k == "cmdstat_info" { // not our measuring
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				x, _ := strconv.ParseInt(n, 10, 64)
				total += x
			}
		}
	}
	return total, nil
}

// scaleWorkerEnv is workerEnv (the harness's usual worker environment) with
// the Redis settings replaced by redisEnv (REDIS_URL or REDIS_CLUSTER_ADDRS)
// and extra applied last.
func scaleWorkerEnv(s *simProc, redisEnv, extra map[string]string) map[string]string {
	env := workerEnv(&redisProc{}, s, map[string]string{"REDIS_URL": ""})
	for _, m := range []map[string]string{redisEnv, extra} {
		for k, v := range m {
			if v == "" {
				delete(env, k)
				continue
			}
			env[k] = v
		}
	}
	return env
}

// scaleSubmit runs `enqueue import FILE args...` with env and returns the
// import ID it printed (the harness's submitImport for any Redis kind).
func scaleSubmit(t testing.TB, env map[string]string, file string, args ...string) string {
	t.Helper()
	out, errOut, code := runEnqueue(t, env, append([]string{"import", file}, args...)...)
	if code != 0 {
		t.Fatalf("enqueue import: exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "imp-") || (len(args) > 1 && args[0] == "--id" && strings.TrimSuffix(f, ":") == args[1]) {
			return strings.TrimSuffix(f, ":")
		}
	}
	t.Fatalf("enqueue import printed no import ID:\n%s", out)
	return ""
}

// scaleWaitDone polls `enqueue status ID --json` with env until the import
// is done or d passes (then the test fails), and returns the last status.
func scaleWaitDone(t testing.TB, env map[string]string, id string, d time.Duration) importStatus {
	t.Helper()
	var st importStatus
	var raw string
	if !waitFor(d, func() bool {
		out, errOut, _ := runEnqueue(t, env, "status", id, "--json")
		st, raw = importStatus{}, out+errOut
		if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Done {
			time.Sleep(300 * time.Millisecond)
			return false
		}
		return true
	}) {
		t.Fatalf("import %s not done within %v; last status: %s", id, d, raw)
	}
	return st
}
