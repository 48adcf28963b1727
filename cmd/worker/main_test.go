package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// deadRedis is a redis:// URL of a loopback port nobody listens on.
func deadRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "redis://" + addr + "/4"
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h"} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{arg}, env(map[string]string{"B24_WEBHOOK_URL": "https://a.bitrix24.ru/rest/1/topsecret99/"}), &out, &errOut)
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %s", arg, code, errOut.String())
		}
		for _, v := range []string{"REDIS_URL", "B24_WEBHOOK_URL", "B24_PORTALS_FILE", "B24_RATE", "B24_BURST",
			"B24_OPERATING_LIMIT", "B24_OPERATING_WINDOW", "B24_TIMEOUT", "WORKER_CONCURRENCY", "WORKER_LISTEN",
			"MONITOR_USER", "MONITOR_PASSWORD", "--concurrency", "--listen"} {
			if !strings.Contains(out.String(), v) {
				t.Errorf("%s: usage lacks %s", arg, v)
			}
		}
		if strings.Contains(out.String()+errOut.String(), "topsecret99") {
			t.Errorf("%s: usage shows the webhook secret", arg)
		}
	}
}

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string
		secrets []string
	}{
		{
			name: "no portal",
			env:  map[string]string{},
			want: []string{"no portal configured"},
		},
		{
			name:    "plain http webhook to a public host, bad redis URL",
			env:     map[string]string{"B24_WEBHOOK_URL": "http://acme.bitrix24.ru/rest/1/topsecret99/", "REDIS_URL": "mysql://u:redispass1@h/0"},
			want:    []string{"B24_WEBHOOK_URL", "https", "REDIS_URL"},
			secrets: []string{"topsecret99", "redispass1"},
		},
		{
			name:    "public listen without credentials",
			args:    []string{"--listen", "0.0.0.0:8080"},
			env:     map[string]string{"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/topsecret99/"},
			want:    []string{"--listen", "MONITOR_USER"},
			secrets: []string{"topsecret99"},
		},
		{
			name: "bad number",
			args: []string{"--concurrency", "zero"},
			env:  map[string]string{"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/topsecret99/"},
			want: []string{"--concurrency"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, env(tt.env), &out, &errOut)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			for _, s := range tt.secrets {
				if strings.Contains(out.String()+errOut.String(), s) {
					t.Errorf("output contains secret %q", s)
				}
			}
		})
	}
}

// TestRunStopsCleanly: a valid configuration whose context is already
// cancelled (a SIGTERM during start-up, Redis away) exits 0 with JSON logs.
func TestRunStopsCleanly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"--listen", "127.0.0.1:0"}, env(map[string]string{
		"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/topsecret99/",
		"REDIS_URL":       deadRedis(t),
	}), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr %s", code, errOut.String())
	}
	logs := errOut.String()
	for _, w := range []string{`"msg":"worker starting"`, `"msg":"worker stopped"`, `"portals":["default"]`} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs lack %s:\n%s", w, logs)
		}
	}
	if strings.Contains(logs, "topsecret99") {
		t.Error("logs contain the webhook secret")
	}
}

// TestRunRuntimeError: a side port that cannot be bound is a runtime
// failure, exit 1.
func TestRunRuntimeError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--listen", ln.Addr().String()}, env(map[string]string{
		"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/topsecret99/",
		"REDIS_URL":       deadRedis(t),
	}), &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "side port") {
		t.Errorf("stderr lacks the reason:\n%s", errOut.String())
	}
}
