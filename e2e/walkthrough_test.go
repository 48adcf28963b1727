//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
)

// The README's walkthrough, command by command: TestWalkthrough extracts the
// commands of the fenced block between <!-- walkthrough:start --> and
// <!-- walkthrough:end --> and runs each, in order, in one bash (so
// variables, exports and background jobs carry over, as in the user's
// shell), with the built commands on PATH, a private redis-server as
// REDIS_URL, and a copy of examples/ as the current directory. The only
// change to the text is the ports: 127.0.0.1:8080, :8081 and :8090 become
// free ports (WORKER_LISTEN points the first worker's default at the
// first). Every command must have a check below; a README step without one
// fails the test, so the README cannot drift from what works.

const (
	walkthroughStart = "<!-- walkthrough:start -->"
	walkthroughEnd   = "<!-- walkthrough:end -->"
	// stepDone ends the output of a step, followed by its exit status.
	stepDone = "__WALKTHROUGH_STEP_DONE__"
)

// walkthroughCommands returns the commands of the README's walkthrough:
// the lines of its fenced block without comments and blank lines, with
// continuation lines (ending in "\") joined.
func walkthroughCommands(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), walkthroughStart)
	block, _, ok2 := strings.Cut(rest, walkthroughEnd)
	if !ok || !ok2 {
		t.Fatalf("README.md has no %s ... %s section", walkthroughStart, walkthroughEnd)
	}
	block = strings.TrimSpace(block)
	body, found := strings.CutPrefix(block, "```sh\n")
	body, found2 := strings.CutSuffix(body, "```")
	if !found || !found2 {
		t.Fatal("the walkthrough section is not exactly one ```sh fenced block")
	}
	var cmds []string
	pending := ""
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if pending == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending += cont + " "
			continue
		}
		cmds = append(cmds, pending+trimmed)
		pending = ""
	}
	if len(cmds) == 0 {
		t.Fatal("the walkthrough has no commands")
	}
	return cmds
}

// walkShell is one bash fed the steps on stdin.
type walkShell struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	log   strings.Builder // everything, for a failure
}

func startWalkShell(t *testing.T, dir string, env []string) *walkShell {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	sh := &walkShell{t: t, lines: make(chan string, 1024)}
	sh.cmd = exec.Command(bash, "--noprofile", "--norc")
	sh.cmd.Dir = dir
	sh.cmd.Env = env
	// Its own process group: the background jobs (no job control in a
	// non-interactive shell) stay in it, and the cleanup kills them all.
	sh.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if sh.stdin, err = sh.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := sh.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sh.cmd.Stderr = sh.cmd.Stdout
	if err := sh.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			sh.lines <- sc.Text()
		}
		close(sh.lines)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-sh.cmd.Process.Pid, syscall.SIGKILL)
		_ = sh.cmd.Wait()
		if t.Failed() {
			t.Logf("--- the walkthrough's shell:\n%s", tail(sh.log.String(), 8000))
			for _, f := range []string{"b24sim.log", "worker1.log", "worker2.log"} {
				if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					t.Logf("--- %s:\n%s", f, tail(string(data), 3000))
				}
			}
		}
	})
	// Every step's stderr joins its stdout, as on a terminal.
	sh.run("exec 2>&1", 5*time.Second)
	return sh
}

// run runs one command and returns its output and exit status.
func (sh *walkShell) run(command string, timeout time.Duration) (string, int) {
	sh.t.Helper()
	fmt.Fprintf(&sh.log, "$ %s\n", command)
	if _, err := fmt.Fprintf(sh.stdin, "%s\nprintf '\\n%s %%d\\n' \"$?\"\n", command, stepDone); err != nil {
		sh.t.Fatalf("write to the shell: %v", err)
	}
	var out []string
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-sh.lines:
			if !ok {
				sh.t.Fatalf("the shell ended during %q", command)
			}
			fmt.Fprintln(&sh.log, line)
			if code, done := strings.CutPrefix(line, stepDone+" "); done {
				n, _ := strconv.Atoi(code)
				return strings.TrimSuffix(strings.Join(out, "\n"), "\n"), n
			}
			out = append(out, line)
		case <-deadline:
			sh.t.Fatalf("%q did not finish within %s", command, timeout)
		}
	}
}

// walkCheck checks the output of the commands matching match.
type walkCheck struct {
	match   *regexp.Regexp
	timeout time.Duration
	check   func(t *testing.T, out string)
}

var taskIDLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func walkChecks(sim func() b24test.Stats) []walkCheck {
	quiet := func(t *testing.T, out string) {
		if out != "" {
			t.Errorf("printed %q, want nothing", out)
		}
	}
	taskID := func(t *testing.T, out string) {
		if !taskIDLine.MatchString(out) {
			t.Errorf("printed %q, want one task ID and nothing else", out)
		}
	}
	completed := func(t *testing.T, out string) {
		var st struct {
			State     string `json:"state"`
			CreatedID int64  `json:"created_id"`
			Error     string `json:"error"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != "completed" || st.CreatedID <= 0 || st.Error != "" {
			t.Errorf("task JSON %q (%v): want state completed with a created_id", out, err)
		}
	}
	return []walkCheck{
		{match: regexp.MustCompile(`^b24sim --listen \S+ > b24sim\.out 2> b24sim\.log &$`), check: quiet},
		{match: regexp.MustCompile(`^until grep -q '\^B24_WEBHOOK_URL=' b24sim\.out`), check: quiet},
		{match: regexp.MustCompile(`^export "\$\(grep '\^B24_WEBHOOK_URL=' b24sim\.out\)"$`), check: quiet},
		{match: regexp.MustCompile(`^(WORKER_LISTEN=\S+ )?worker > worker[12]\.log 2>&1 &$`), check: quiet},
		{match: regexp.MustCompile(`^until worker healthcheck`), timeout: time.Minute, check: quiet},
		{match: regexp.MustCompile(`^dept=\$\(enqueue department --name "Sales EU" --parent-id 1\); echo "\$dept"$`), check: taskID},
		{match: regexp.MustCompile(`^wp=\$\(enqueue workplace --title "Field service"\); echo "\$wp"$`), check: taskID},
		{match: regexp.MustCompile(`^enqueue import examples/org\.yaml --id org-walkthrough --wait$`), timeout: 5 * time.Minute,
			check: func(t *testing.T, out string) {
				lines := strings.Split(out, "\n")
				if !strings.HasPrefix(lines[0], "import org-walkthrough: 43 items, ") ||
					lines[len(lines)-1] != "import org-walkthrough: 43/43 created, 0 failed, 0 pending, 0 waiting" {
					t.Errorf("output:\n%s\nwant the submit line first and 43/43 created last", out)
				}
				if strings.Contains(out, "no worker is serving") {
					t.Errorf("two workers serve the portal, yet:\n%s", out)
				}
			}},
		{match: regexp.MustCompile(`^enqueue task "\$dept"$`), check: func(t *testing.T, out string) {
			if !regexp.MustCompile(`(?m)^task \S+ \(department:create, portal default\): completed\n  created ID\s+[1-9]\d*, created$`).MatchString(out) {
				t.Errorf("output:\n%s\nwant the department completed with its created ID", out)
			}
		}},
		{match: regexp.MustCompile(`^enqueue task "\$wp" --json$`), check: completed},
		{match: regexp.MustCompile(`^enqueue status org-walkthrough --json$`), check: func(t *testing.T, out string) {
			var st struct {
				Done    bool             `json:"done"`
				Counts  map[string]int   `json:"counts"`
				Created map[string]int64 `json:"created"`
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Done || st.Counts["created"] != 43 || st.Counts["failed"] != 0 || len(st.Created) != 43 {
				t.Errorf("status %q (%v): want done, 43 created by key", out, err)
			}
			// The portal holds each exactly once: the import, the single
			// department and the workplace.
			if s := sim(); s.DepartmentsCreated != 41 || s.WorkplacesCreated != 4 || s.DuplicateDepartments+s.DuplicateWorkplaces != 0 {
				t.Errorf("simulator: %d departments, %d workplaces, %d duplicates; want 41, 4, 0",
					s.DepartmentsCreated, s.WorkplacesCreated, s.DuplicateDepartments+s.DuplicateWorkplaces)
			}
		}},
		{match: regexp.MustCompile(`^curl -s "http://\S+/v1/tasks/\$dept"$`), check: completed},
		{match: regexp.MustCompile(`^curl -s http://\S+/monitoring/api/queues$`), check: func(t *testing.T, out string) {
			if !strings.Contains(out, `"queue":"b24:default"`) {
				t.Errorf("dashboard API %q does not list the queue b24:default", out)
			}
		}},
		{match: regexp.MustCompile(`^kill \$\(jobs -p\)$`), check: quiet},
	}
}

func TestWalkthrough(t *testing.T) {
	t.Parallel()
	cmds := walkthroughCommands(t)
	bins := binaries(t)
	r := startRedis(t)

	dir := t.TempDir()
	copyExamples(t, dir)
	ports := map[string]string{}
	for _, p := range []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8090"} {
		ports[p] = "127.0.0.1:" + strconv.Itoa(freePort(t))
	}
	env := append(baseEnv(),
		"PATH="+bins+string(os.PathListSeparator)+os.Getenv("PATH"),
		"REDIS_URL="+r.URL(0),
		"WORKER_LISTEN="+ports["127.0.0.1:8080"],
		"B24_REQUEST_LIMIT=1s", // as every e2e worker: the simulator holds no request
	)
	sh := startWalkShell(t, dir, env)
	simStats := func() b24test.Stats {
		var st b24test.Stats
		resp, err := http.Get("http://" + ports["127.0.0.1:8090"] + "/_sim/stats")
		if err != nil {
			t.Fatalf("simulator stats: %v", err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	checks := walkChecks(simStats)
	for i, c := range cmds {
		var chk *walkCheck
		for j := range checks {
			if checks[j].match.MatchString(c) {
				chk = &checks[j]
				break
			}
		}
		if chk == nil {
			t.Fatalf("README walkthrough step %d has no check in walkthrough_test.go: %s", i+1, c)
		}
		run := c
		for from, to := range ports {
			run = strings.ReplaceAll(run, from, to)
		}
		timeout := chk.timeout
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		out, code := sh.run(run, timeout)
		if code != 0 {
			t.Fatalf("step %d %q: exit status %d\n%s", i+1, c, code, out)
		}
		t.Run(fmt.Sprintf("step %02d", i+1), func(t *testing.T) {
			t.Logf("$ %s\n%s", c, out)
			chk.check(t, out)
		})
	}
	// Every check was used: a step the README lost is a check left over.
	for _, chk := range checks {
		used := false
		for _, c := range cmds {
			used = used || chk.match.MatchString(c)
		}
		if !used {
			t.Errorf("no README walkthrough step matches %s: update the README or the check", chk.match)
		}
	}
}

// copyExamples copies the repository's examples/ into dir.
func copyExamples(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join(repoRoot(), "examples")
	if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "examples", e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
