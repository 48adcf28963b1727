//go:build e2e

// Package e2e holds multi-process tests: real binaries of cmd/worker,
// cmd/enqueue and cmd/b24sim against their own redis-server. They are behind
// the build tag e2e so that the default `go test ./...` stays fast:
//
//	go test -tags e2e -count=1 -timeout 15m ./e2e/
//
// The harness (this file) is the API other test files of the package use:
//
//   - binaries(t) builds the three commands once per test process and
//     returns their directory; bin(t, "worker") a binary's path.
//   - startRedis(t, args...) runs a private redis-server on a free port
//     (non-persistent unless args say otherwise), with Stop/Start/Restart/
//     Kill and URL(db). Every test uses its own server: no DB juggling.
//   - startSim(t, flags...) runs b24sim on a free port; Stats, Departments,
//     Workplaces, SetFaults and Block talk to its /_sim/ endpoints.
//   - startWorker(t, env, args...) runs a worker with the given environment
//     only (plus PATH/HOME), capturing stdout/stderr (Output) for later
//     secret grepping, and discovers its side port from the start-up log.
//     workerEnv(redis, sim, extra) builds the usual environment.
//   - runEnqueue(t, env, args...) runs the enqueue command to completion.
//   - genTree(t, n, depth) writes an import file of n departments;
//     waitImported and checkImported assert the simulator's state.
//
// Every process is stopped by t.Cleanup; a failing test logs the tail of
// each process's output.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24/b24test"
)

// binDir holds the built binaries; removed by TestMain.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	buildOut  []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the module root (the parent of this file's directory).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// binaries builds cmd/worker, cmd/enqueue and cmd/b24sim once per test
// process (safe for parallel tests) and returns the directory holding them.
// A build failure fails every test that needs them.
func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "b24q-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "./cmd/worker", "./cmd/enqueue", "./cmd/b24sim")
		cmd.Dir = repoRoot()
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v\n%s", buildErr, buildOut)
	}
	return binDir
}

// bin returns the path of the built command name ("worker", "enqueue", "b24sim").
func bin(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(binaries(t), name)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 50 ms until it returns true or d passes; it
// reports whether cond became true.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- processes

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a started process with its output captured. Safe for concurrent
// use; Wait may be called several times (later calls return the first
// result).
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error // of cmd.Wait, valid after done

	// Addr is the worker's side port (host:port) when discovered, else "".
	Addr string
}

// startProc starts path with args and exactly env (KEY=VALUE) and registers
// a cleanup that kills it if still running and logs its output tail when
// the test failed.
func startProc(t testing.TB, name, path string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s (pid %d) stdout tail:\n%s", name, p.cmd.Process.Pid, tail(p.stdout.String(), 3000))
			t.Logf("--- %s (pid %d) stderr tail:\n%s", name, p.cmd.Process.Pid, tail(p.stderr.String(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// Stdout and Stderr return everything the process wrote so far.
func (p *proc) Stdout() string { return p.stdout.String() }
func (p *proc) Stderr() string { return p.stderr.String() }

// Output is stdout followed by stderr.
func (p *proc) Output() string { return p.Stdout() + p.Stderr() }

// Pid is the process ID.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.Exited() {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *proc) Kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits at most d for the process to exit and returns its exit code
// (-1 when killed by a signal) and whether it exited in time.
func (p *proc) Wait(d time.Duration) (code int, exited bool) {
	select {
	case <-p.done:
	case <-time.After(d):
		return 0, false
	}
	if p.err == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), true
	}
	return -1, true
}

// URL returns http://Addr + path; it fails the test without a side port.
func (p *proc) URL(t testing.TB, path string) string {
	t.Helper()
	if p.Addr == "" {
		t.Fatalf("%s has no side port", p.name)
	}
	return "http://" + p.Addr + path
}

// LogLines returns the JSON log lines of stderr, decoded; other lines are
// skipped.
func (p *proc) LogLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Stderr()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// baseEnv is what every child process gets besides its own settings.
func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	if h := os.Getenv("HOME"); h != "" {
		env = append(env, "HOME="+h)
	}
	return env
}

func envList(m map[string]string) []string {
	env := baseEnv()
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return env
}

// ---------------------------------------------------------------- redis

// redisProc is a private redis-server on a free loopback port. Stop, Start,
// Restart and Kill keep the port and the directory, so a persistent server
// (AOF/RDB args) comes back with its data.
type redisProc struct {
	t    testing.TB
	Port int
	Dir  string
	args []string

	mu sync.Mutex
	p  *proc
}

// startRedis runs redis-server on a free port in a fresh directory. extra
// arguments are appended to the defaults `--save "" --appendonly no`, so
// `--appendonly yes --appendfsync always` turns AOF persistence on (same
// --dir on every Start). It fails the test unless the server answers PING
// within 10 s.
func startRedis(t testing.TB, extra ...string) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found in PATH: %v", err)
	}
	r := newRedis(t, freePort(t), extra...)
	r.Start()
	return r
}

// newRedis is startRedis without starting: the server is configured for
// port and started by Start (a test of "Redis down at worker start" starts
// it later).
func newRedis(t testing.TB, port int, extra ...string) *redisProc {
	t.Helper()
	r := &redisProc{t: t, Port: port, Dir: t.TempDir()}
	r.args = append([]string{"--save", "", "--appendonly", "no"}, extra...)
	t.Cleanup(func() { r.Kill() })
	return r
}

// Addr is 127.0.0.1:PORT.
func (r *redisProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is the redis:// URL of database db.
func (r *redisProc) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr(), db) }

// Client returns a go-redis client of db 0, closed at cleanup.
func (r *redisProc) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start starts the server (again) and waits until it answers PING.
func (r *redisProc) Start() {
	r.t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--daemonize", "no", "--protected-mode", "no", "--logfile", ""}, r.args...)
	var p *proc
	// The port may still be held briefly after a Kill: try a few times.
	ok := waitFor(10*time.Second, func() bool {
		p = startProc(r.t, "redis-server:"+strconv.Itoa(r.Port), "redis-server", baseEnv(), args...)
		up := waitFor(3*time.Second, func() bool { return p.Exited() || r.ping() })
		if up && !p.Exited() {
			return true
		}
		p.Kill(r.t)
		return false
	})
	if !ok {
		r.t.Fatalf("redis-server on %d did not start:\n%s", r.Port, tail(p.Output(), 2000))
	}
	r.mu.Lock()
	r.p = p
	r.mu.Unlock()
}

func (r *redisProc) ping() bool {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

// Stop shuts the server down gracefully (SIGTERM: an AOF server flushes,
// a server with --save "" saves nothing) and waits for it.
func (r *redisProc) Stop() {
	r.mu.Lock()
	p := r.p
	r.p = nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(10 * time.Second); !ok {
		p.Kill(r.t)
	}
}

// Kill stops the server with SIGKILL (nothing flushed beyond what the
// persistence settings already wrote).
func (r *redisProc) Kill() {
	r.mu.Lock()
	p := r.p
	r.p = nil
	r.mu.Unlock()
	if p != nil {
		p.Kill(r.t)
	}
}

// Restart is Stop then Start.
func (r *redisProc) Restart() {
	r.Stop()
	r.Start()
}

// ---------------------------------------------------------------- simulator

// simProc is a b24sim process.
type simProc struct {
	*proc
	// URL is http://127.0.0.1:PORT (no slash).
	URL string
	// WebhookURL is the inbound webhook with its secret.
	WebhookURL string
	// Secret is the webhook secret.
	Secret string
	// TokenEndpoint and ClientID are what the sim printed for OAuth.
	TokenEndpoint, ClientID string
}

// startSim runs b24sim on a free port with flags (see b24test.Config
// RegisterFlags: --rate, --burst, --access-ttl, --error-rate, ...) and waits
// for the webhook URL on its stdout.
func startSim(t testing.TB, flags ...string) *simProc {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0"}, flags...)
	p := startProc(t, "b24sim", bin(t, "b24sim"), baseEnv(), args...)
	s := &simProc{proc: p}
	ok := waitFor(10*time.Second, func() bool {
		for _, line := range strings.Split(p.Stdout(), "\n") {
			if v, ok := strings.CutPrefix(line, "B24_WEBHOOK_URL="); ok {
				s.WebhookURL = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "OAuth: portal "); ok {
				f := strings.Fields(v)
				// PORTAL token endpoint ENDPOINT client_id ID
				if len(f) == 6 {
					s.TokenEndpoint, s.ClientID = f[3], f[5]
				}
			}
		}
		return (s.WebhookURL != "" && s.TokenEndpoint != "") || p.Exited()
	})
	if !ok || s.WebhookURL == "" {
		t.Fatalf("b24sim did not print its webhook URL:\n%s", p.Output())
	}
	i := strings.Index(s.WebhookURL, "/rest/")
	s.URL = s.WebhookURL[:i]
	segs := strings.Split(strings.Trim(s.WebhookURL[i:], "/"), "/")
	s.Secret = segs[2]
	return s
}

func (s *simProc) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: decode: %v", path, err)
	}
}

func (s *simProc) post(t testing.TB, path string, body []byte) {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s", path, resp.Status, b)
	}
}

// Stats returns the simulator's counters.
func (s *simProc) Stats(t testing.TB) b24test.Stats {
	t.Helper()
	var st b24test.Stats
	s.getJSON(t, "/_sim/stats", &st)
	return st
}

// Departments returns every department of the portal, root included.
func (s *simProc) Departments(t testing.TB) []b24test.Department {
	t.Helper()
	var ds []b24test.Department
	s.getJSON(t, "/_sim/departments", &ds)
	return ds
}

// Workplaces returns every digital workplace of the portal.
func (s *simProc) Workplaces(t testing.TB) []b24test.Workplace {
	t.Helper()
	var ws []b24test.Workplace
	s.getJSON(t, "/_sim/workplaces", &ws)
	return ws
}

// SetFaults replaces the fault probabilities (zero Faults: none).
func (s *simProc) SetFaults(t testing.TB, f b24test.Faults) {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	s.post(t, "/_sim/faults", b)
}

// Block makes method answer 429 OPERATION_TIME_LIMIT for d.
func (s *simProc) Block(t testing.TB, method string, d time.Duration) {
	t.Helper()
	s.post(t, fmt.Sprintf("/_sim/block?method=%s&seconds=%g", method, d.Seconds()), nil)
}

// ---------------------------------------------------------------- worker

// workerEnv returns the usual worker environment: the redis server, the
// simulator's webhook as portal "default", fast limits matching a sim
// started with --rate 50 --burst 50, a side port on a free loopback port,
// a 5 s shutdown timeout, info logs and a 1 s request limit. extra entries
// override (an empty value removes the variable).
func workerEnv(r *redisProc, s *simProc, extra map[string]string) map[string]string {
	env := map[string]string{
		"REDIS_URL":               r.URL(0),
		"B24_RATE":                "50",
		"B24_BURST":               "50",
		"B24_TIMEOUT":             "5s",
		"WORKER_CONCURRENCY":      "5",
		"WORKER_LISTEN":           "127.0.0.1:0",
		"WORKER_SHUTDOWN_TIMEOUT": "5s",
		"LOG_LEVEL":               "info",
		"B24_REQUEST_LIMIT":       "1s", // the simulator runs no request after dropping its answer (unless told to hold it)
	}
	if s != nil {
		env["B24_WEBHOOK_URL"] = s.WebhookURL
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	return env
}

// startWorker runs the worker binary with exactly env (plus PATH/HOME) and
// args. It waits up to 10 s for the "worker starting" log line and takes the
// side port from its "addr" (empty when the side port is off), or for the
// process to exit (a configuration error: check with Wait). It does not
// wait for Redis.
func startWorker(t testing.TB, env map[string]string, args ...string) *proc {
	t.Helper()
	p := startProc(t, "worker", bin(t, "worker"), envList(env), args...)
	ok := waitFor(10*time.Second, func() bool {
		if p.Exited() {
			return true
		}
		for _, l := range p.LogLines() {
			if l["msg"] == "worker starting" {
				p.Addr, _ = l["addr"].(string)
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("worker did not log its start within 10 s:\n%s", p.Output())
	}
	return p
}

// waitProcessing waits until the worker logged that it processes tasks
// (Redis reached, asynq started).
func waitProcessing(t testing.TB, p *proc, d time.Duration) {
	t.Helper()
	if !waitFor(d, func() bool { return p.Exited() || strings.Contains(p.Stderr(), `"processing tasks"`) }) {
		t.Fatalf("worker did not start processing within %v", d)
	}
	if p.Exited() {
		code, _ := p.Wait(0)
		t.Fatalf("worker exited with %d instead of processing:\n%s", code, tail(p.Stderr(), 2000))
	}
}

// httpGet does a GET with optional basic auth and returns status and body.
func httpGet(t testing.TB, url, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ---------------------------------------------------------------- enqueue

// runEnqueue runs the enqueue command with exactly env (plus PATH/HOME) and
// args, for at most 4 minutes, and returns its output and exit code (-1
// when it was killed).
func runEnqueue(t testing.TB, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "enqueue"), args...)
	cmd.Env = envList(env)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run enqueue %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return so.String(), se.String(), code
}

// enqueueEnv is the environment of enqueue against r.
func enqueueEnv(r *redisProc) map[string]string {
	return map[string]string{"REDIS_URL": r.URL(0)}
}

// importStatus is `enqueue status --json`.
type importStatus struct {
	ID     string `json:"id"`
	Portal string `json:"portal"`
	Done   bool   `json:"done"`
	Counts struct {
		Total, Created, Adopted, Updated, Pending, Waiting, Failed int
	} `json:"counts"`
	Created map[string]int64  `json:"created"`
	Failed  map[string]string `json:"failed"`
}

// status runs `enqueue status ID --json` and decodes it; ok is false when
// the command failed without JSON (the raw output is returned then).
func status(t testing.TB, r *redisProc, id string) (st importStatus, raw string, code int) {
	t.Helper()
	out, errOut, code := runEnqueue(t, enqueueEnv(r), "status", id, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, out + errOut, code
	}
	return st, out, code
}

// submitImport runs `enqueue import FILE` (no --wait) and returns the import
// ID it printed.
func submitImport(t testing.TB, r *redisProc, file string, args ...string) string {
	t.Helper()
	out, errOut, code := runEnqueue(t, enqueueEnv(r), append([]string{"import", file}, args...)...)
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

// waitDone polls the import's status until done or d passes, and returns
// the last status.
func waitDone(t testing.TB, r *redisProc, id string, d time.Duration) importStatus {
	t.Helper()
	var st importStatus
	var raw string
	if !waitFor(d, func() bool {
		st, raw, _ = status(t, r, id)
		if !st.Done {
			time.Sleep(500 * time.Millisecond)
		}
		return st.Done
	}) {
		t.Fatalf("import %s not done within %v; last status: %s", id, d, raw)
	}
	return st
}

// ---------------------------------------------------------------- trees

// treeDept is one department of a generated import file.
type treeDept struct {
	Key      string `json:"key"`
	Name     string `json:"name"`
	Parent   string `json:"parent,omitempty"`
	ParentID int64  `json:"parent_id,omitempty"`
}

// tree is a generated import file.
type tree struct {
	Path  string
	Depts []treeDept // parents before children
}

// genTree writes a JSON import file of n departments (n >= 1) under the
// portal's root department 1: one top department, then the others spread
// round-robin over depth-1 further levels. Names repeat across parents
// ("Team 1" exists under several parents, and "Team 1" is a LIKE-prefix of
// "Team 10"), so only an exact (NAME, PARENT) lookup keeps the creation
// exactly once. A random tag makes the file, and so its import ID, unique.
func genTree(t testing.TB, n, depth int) *tree {
	t.Helper()
	if n < 1 || depth < 1 {
		t.Fatalf("genTree(%d, %d)", n, depth)
	}
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	tr := &tree{}
	tr.Depts = append(tr.Depts, treeDept{Key: "top", Name: "Top " + tag, ParentID: 1})
	levels := [][]string{{"top"}}
	perLevel := (n - 1 + depth - 2) / max(depth-1, 1)
	for i := 1; i < n; i++ {
		lvl := len(levels) - 1
		if len(levels[lvl]) >= perLevel && lvl+1 < depth || lvl == 0 {
			levels = append(levels, nil)
			lvl++
		}
		parents := levels[lvl-1]
		parent := parents[i%len(parents)]
		key := "d" + strconv.Itoa(i)
		tr.Depts = append(tr.Depts, treeDept{Key: key, Name: "Team " + strconv.Itoa(i%23), Parent: parent})
		levels[lvl] = append(levels[lvl], key)
	}
	// Unique (NAME, PARENT) within the file: suffix repeated names under the
	// same parent.
	seen := map[string]bool{}
	for i := range tr.Depts {
		d := &tr.Depts[i]
		for seen[d.Parent+"\x00"+d.Name] {
			d.Name += "0"
		}
		seen[d.Parent+"\x00"+d.Name] = true
	}
	b, err := json.MarshalIndent(map[string]any{"departments": tr.Depts}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	tr.Path = filepath.Join(t.TempDir(), "org-"+tag+".json")
	if err := os.WriteFile(tr.Path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return tr
}

// resolve maps the tree's keys to the simulator's department IDs by exact
// (NAME, PARENT), parents first. missing lists keys with no department;
// dups keys with more than one.
func (tr *tree) resolve(ds []b24test.Department) (ids map[string]int64, missing, dups []string) {
	byPair := map[string][]int64{}
	for _, d := range ds {
		k := strconv.FormatInt(d.Parent, 10) + "\x00" + d.Name
		byPair[k] = append(byPair[k], d.ID)
	}
	ids = map[string]int64{}
	for _, d := range tr.Depts {
		parent := d.ParentID
		if d.Parent != "" {
			p, ok := ids[d.Parent]
			if !ok {
				missing = append(missing, d.Key)
				continue
			}
			parent = p
		}
		got := byPair[strconv.FormatInt(parent, 10)+"\x00"+d.Name]
		switch len(got) {
		case 0:
			missing = append(missing, d.Key)
		case 1:
			ids[d.Key] = got[0]
		default:
			dups = append(dups, d.Key)
			ids[d.Key] = got[0]
		}
	}
	return ids, missing, dups
}

// waitImported waits until every department of tr exists in the simulator
// or d passes, failing the test then with how many are missing.
func waitImported(t testing.TB, s *simProc, tr *tree, d time.Duration) {
	t.Helper()
	var missing []string
	if !waitFor(d, func() bool {
		_, missing, _ = tr.resolve(s.Departments(t))
		if len(missing) > 0 {
			time.Sleep(250 * time.Millisecond)
		}
		return len(missing) == 0
	}) {
		t.Fatalf("after %v, %d of %d departments are not created (e.g. %v); sim stats %+v",
			d, len(missing), len(tr.Depts), missing[:min(5, len(missing))], s.Stats(t))
	}
}

// checkImported asserts the simulator holds every department of tr exactly
// once under the right parent, no duplicate (NAME, PARENT) pair at all, and
// no department beyond the root and the tree's (unless extra more were
// created by the test itself). It returns key → ID.
func checkImported(t testing.TB, s *simProc, tr *tree, extra int) map[string]int64 {
	t.Helper()
	ds := s.Departments(t)
	ids, missing, dups := tr.resolve(ds)
	if len(missing) > 0 {
		t.Errorf("%d departments missing or under a wrong parent, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if len(dups) > 0 {
		t.Errorf("%d departments created more than once, e.g. %v", len(dups), dups[:min(5, len(dups))])
	}
	pairs := map[string]int{}
	for _, d := range ds {
		pairs[strconv.FormatInt(d.Parent, 10)+"\x00"+d.Name]++
	}
	for k, n := range pairs {
		if n > 1 {
			t.Errorf("duplicate (PARENT, NAME) %q: %d departments", k, n)
		}
	}
	if want := 1 + len(tr.Depts) + extra; len(ds) != want {
		t.Errorf("simulator holds %d departments, want %d (root + %d imported + %d extra)", len(ds), want, len(tr.Depts), extra)
	}
	if st := s.Stats(t); st.DuplicateDepartments != 0 {
		t.Errorf("simulator counted %d duplicate departments", st.DuplicateDepartments)
	}
	return ids
}

// checkStatus asserts the import's status matches the simulator: done, no
// failure, every key created with the ID the simulator holds.
func checkStatus(t testing.TB, st importStatus, ids map[string]int64) {
	t.Helper()
	if !st.Done || st.Counts.Failed != 0 || len(st.Failed) != 0 {
		t.Errorf("import status: done=%v failed=%d %v", st.Done, st.Counts.Failed, st.Failed)
	}
	for k, id := range ids {
		if st.Created[k] != id {
			t.Errorf("status says %s → %d, simulator has %d", k, st.Created[k], id)
		}
	}
	if len(st.Created) != len(ids) {
		t.Errorf("status has %d created keys, simulator %d", len(st.Created), len(ids))
	}
}

// startTwoWorkers starts two workers with env and waits until both process.
func startTwoWorkers(t *testing.T, env map[string]string) (*proc, *proc) {
	t.Helper()
	a := startWorker(t, env)
	b := startWorker(t, env)
	waitProcessing(t, a, 10*time.Second)
	waitProcessing(t, b, 10*time.Second)
	return a, b
}
