package demo

import (
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

// The demo runs end to end on the embedded Redis (no Redis answers on port
// 1) and creates the whole built-in example org chart exactly once.
func TestDemoImportsTheExampleOnEmbeddedRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := Run(ctx, Options{
		RedisURL: "redis://127.0.0.1:1/0", // the built-in example org chart
		Rate:     50, Burst: 50,
		Listen: "127.0.0.1:0",
	}, &out)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"embedded in-process Redis", "/monitoring/", "/imports/", "43/43 created, 0 failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`portal: 40 departments and 3 workplaces created, \d+ requests, 0 answered 503, 0 duplicates`).MatchString(text) {
		t.Errorf("final portal line wrong:\n%s", text)
	}
}

// Ctrl-C during the import is a normal end: Run returns nil and says so.
func TestDemoInterruptedDuringTheImport(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testutil.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{RedisURL: "redis://127.0.0.1:1/0", Rate: 2, Burst: 2, Listen: "127.0.0.1:0"}, out)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "enqueued now") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Ctrl-C = %v, want nil\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after Ctrl-C")
	}
	if !strings.Contains(out.String(), "interrupted: stopping the workers") {
		t.Errorf("output does not say it was interrupted:\n%s", out.String())
	}
}

// A busy dashboard port is reported with what to do.
func TestDemoBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(context.Background(), Options{RedisURL: "redis://127.0.0.1:1/0", Listen: ln.Addr().String()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another process: give the demo another one, e.g. --listen") {
		t.Errorf("Run = %v, want the busy port explained", err)
	}
}
