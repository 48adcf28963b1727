package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the command itself when asked to (B24Q_DEMO_AS_MAIN=1), so
// the tests below can run it as a real process, with its real stderr and
// signals.
func TestMain(m *testing.M) {
	if os.Getenv("B24Q_DEMO_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// demoProcess runs the command in a fresh directory (not the repository:
// the example org chart is built in) with an unreachable REDIS_URL.
func demoProcess(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "B24Q_DEMO_AS_MAIN=1", "REDIS_URL=redis://127.0.0.1:1/0")
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	return cmd, &out, &errOut
}

// From any directory, without a Redis: the demo's own message comes first
// and no library logs a dial error on the terminal.
func TestDemoFromAnyDirectoryWithoutLibraryLogs(t *testing.T) {
	t.Parallel()
	cmd, out, errOut := demoProcess(t, "--listen", "127.0.0.1:0", "--rate", "50", "--burst", "50", "--stay=false")
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr is not empty:\n%s", errOut)
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	if !strings.HasPrefix(first, "no Redis answers at redis://127.0.0.1:1/0: using an embedded in-process Redis") {
		t.Errorf("first line %q, want the embedded Redis message", first)
	}
	if !strings.Contains(out.String(), "43/43 created, 0 failed") {
		t.Errorf("the example was not imported:\n%s", out)
	}
}

// Ctrl-C while the dashboard is up is the normal end: exit 0.
func TestDemoCtrlCExitsZero(t *testing.T) {
	t.Parallel()
	cmd, out, errOut := demoProcess(t, "--listen", "127.0.0.1:0", "--rate", "50", "--burst", "50")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "(Ctrl-C to stop)") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the demo did not reach its dashboard within 60 s:\n%s", errOut)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after Ctrl-C: %v, want exit 0; stderr:\n%s", err, errOut)
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, os.Getenv, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "Usage: demo [flags]") || !strings.Contains(out.String(), "--workers NUMBER") || errOut.Len() != 0 {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--wrokers", "3"}, os.Getenv, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "unknown flag --wrokers; did you mean --workers?") || out.Len() != 0 {
		t.Errorf("misspelled flag: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
