package demo

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The demo runs end to end on the embedded Redis (no Redis answers on port
// 1) and creates the whole example org chart exactly once.
func TestDemoImportsTheExampleOnEmbeddedRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := Run(ctx, Options{
		File:     "../../examples/org.yaml",
		RedisURL: "redis://127.0.0.1:1/0",
		Rate:     50, Burst: 50,
		Listen: "127.0.0.1:0",
	}, &out)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"embedded in-process Redis", "/monitoring/", "43/43 created, 0 failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`portal: 40 departments and 3 workplaces created, \d+ requests, 0 answered 503, 0 duplicates`).MatchString(text) {
		t.Errorf("final portal line wrong:\n%s", text)
	}
}
