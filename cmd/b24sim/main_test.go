package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	outR, outW := io.Pipe()
	var stderr testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--secret", "topsecret", "--burst", "3", "--rate", "1"}, outW, &stderr)
		outW.Close()
	}()

	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("read stdout: %v (stderr: %s)", err, stderr.String())
	}
	webhook, ok := strings.CutPrefix(strings.TrimSpace(line), "B24_WEBHOOK_URL=")
	if !ok || !strings.HasSuffix(webhook, "/rest/1/topsecret/") {
		t.Fatalf("first stdout line %q", line)
	}
	go io.Copy(io.Discard, outR)

	var codes []int
	for range 4 {
		resp, err := http.Post(webhook+"department.add", "application/json", strings.NewReader(`{"NAME":"Sales","PARENT":1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{200, 200, 200, 503}; !slices.Equal(codes, want) {
		t.Errorf("statuses %v, want %v (burst flag applied)", codes, want)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	logs := stderr.String()
	if strings.Contains(logs, "topsecret") {
		t.Errorf("secret in logs:\n%s", logs)
	}
	if n := strings.Count(logs, `"method":"department.add"`); n != 4 {
		t.Errorf("%d request log lines, want 4:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"outcome":"QUERY_LIMIT_EXCEEDED"`) || !strings.Contains(logs, `"latency"`) {
		t.Errorf("log lines lack outcome/latency:\n%s", logs)
	}
}

// TestRunConditionAndFaultFlags: the portal starts in the conditions and
// with the faults the flags name.
func TestRunConditionAndFaultFlags(t *testing.T) {
	t.Parallel()
	webhook := startRun(t, "--webhook-revoked", "--head-error-rate", "1", "--hold-delay", "5ms")
	post := func(body string) (int, string) {
		resp, err := http.Post(webhook+"department.add", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := post(`{"NAME":"Sales","PARENT":1}`); status != 401 || !strings.Contains(body, "INVALID_CREDENTIALS") {
		t.Errorf("--webhook-revoked: %d %s", status, body)
	}
	base, _, _ := strings.Cut(webhook, "/rest/")
	resp, err := http.Post(base+"/_sim/webhook-revoked?on=0", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, body := post(`{"NAME":"Sales","PARENT":1,"UF_HEAD":7}`); status != 400 || !strings.Contains(body, "ERROR_CORE") {
		t.Errorf("--head-error-rate 1: %d %s", status, body)
	}
	resp, err = http.Get(base + "/_sim/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), `"hold_delay":5000000`) {
		t.Errorf("--hold-delay: faults %s", b)
	}
}

// startRun runs the command with args on a free port until the test ends
// and returns its webhook URL.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), outW, io.Discard)
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("read stdout: %v", err)
	}
	go io.Copy(io.Discard, outR)
	webhook, ok := strings.CutPrefix(strings.TrimSpace(line), "B24_WEBHOOK_URL=")
	if !ok {
		t.Fatalf("first stdout line %q", line)
	}
	return webhook
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   exitStatus // 0: help; 2: usage error
		stdout string     // help text
		stderr string
	}{
		{"help", []string{"--help"}, 0, "--operating-window DURATION", ""},
		{"help lists faults", []string{"--help"}, 0, "--hold-delay DURATION", ""},
		{"help lists conditions", []string{"--help"}, 0, "--webhook-revoked", ""},
		{"unknown flag", []string{"--nope"}, 2, "", "unknown flag --nope"},
		{"stray argument", []string{"extra"}, 2, "", "unexpected argument"},
		{"invalid config", []string{"--listen", "127.0.0.1:0", "--error-rate", "2"}, 2, "", "ErrorRate"},
		{"bad address", []string{"--listen", "256.0.0.1:99999"}, 2, "", "b24sim:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if code, ok := err.(exitStatus); !ok || code != tt.code {
				t.Errorf("err %v, want exit status %d", err, tt.code)
			}
			if !strings.Contains(stderr.String(), tt.stderr) || !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
			if (tt.code == 0) != (stderr.Len() == 0) || (tt.code != 0) != (stdout.Len() == 0) {
				t.Errorf("help goes to stdout only, errors to stderr only: stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

// One flag style with the other commands: help on stdout with status 0, a
// misspelled flag on stderr with status 2 and a suggestion.
func TestFlagStyle(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &out, &errOut)
	if code, ok := err.(exitStatus); !ok || code != 0 || !strings.Contains(out.String(), "--listen") || errOut.Len() != 0 {
		t.Errorf("--help: %v; stdout %q; stderr %q", err, out.String(), errOut.String())
	}
	out.Reset()
	err = run(context.Background(), []string{"--lisen", "x"}, &out, &errOut)
	if code, ok := err.(exitStatus); !ok || code != 2 || !strings.Contains(errOut.String(), "did you mean --listen?") || out.Len() != 0 {
		t.Errorf("--lisen: %v; stdout %q; stderr %q", err, out.String(), errOut.String())
	}
}
