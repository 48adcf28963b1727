package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// TestRunBusySidePort: a side port another process holds is a
// configuration problem (exit 2) that names WORKER_LISTEN and --listen and
// says what to do; a second worker on one machine needs its own port.
func TestRunBusySidePort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	for _, viaFlag := range []bool{false, true} {
		e := map[string]string{"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/topsecret99/", "REDIS_URL": deadRedis(t)}
		var args []string
		if viaFlag {
			args = []string{"--listen", ln.Addr().String()}
		} else {
			e["WORKER_LISTEN"] = ln.Addr().String()
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, env(e), &out, &errOut)
		if code != 2 {
			t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
		}
		want := fmt.Sprintf("worker: invalid configuration:\n  WORKER_LISTEN (--listen) %s: the address is already in use by another process (another worker?); "+
			"give each worker on this machine its own side port, e.g. WORKER_LISTEN=127.0.0.1:%d, or turn it off with WORKER_LISTEN=off\n", ln.Addr(), port+1)
		if !strings.HasPrefix(errOut.String(), want) {
			t.Errorf("stderr:\n%s\nwant it to start with:\n%s", errOut.String(), want)
		}
		if strings.Contains(errOut.String(), "topsecret99") {
			t.Error("stderr shows the webhook secret")
		}
	}
}

// A misspelled flag or command is a usage error with a suggestion.
func TestRunSuggests(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/topsecret99/"})
	for args, want := range map[string]string{
		"--concurency 3": "unknown flag --concurency; did you mean --concurrency?",
		"-lisen x":       "unknown flag --lisen; did you mean --listen?",
		"helthcheck":     "did you mean healthcheck?",
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), strings.Fields(args), e, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", args, code, errOut.String(), want)
		}
	}
}

// worker healthcheck asks /healthz on the side port: 0 on 200, 1 otherwise,
// 0.0.0.0 asked on loopback, WORKER_LISTEN or --listen.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	status := http.StatusOK
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	check := func(args []string, e map[string]string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"healthcheck"}, args...), env(e), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, _, errOut := check(nil, map[string]string{"WORKER_LISTEN": "0.0.0.0:" + port}); code != 0 {
		t.Errorf("healthy via WORKER_LISTEN 0.0.0.0: exit %d, %s", code, errOut)
	}
	if code, _, errOut := check([]string{"--listen", "127.0.0.1:" + port}, nil); code != 0 {
		t.Errorf("healthy via --listen: exit %d, %s", code, errOut)
	}
	if code, _, errOut := check([]string{"--listen", "127.0.0.1:" + port, "--path", "/other"}, nil); code != 1 || !strings.Contains(errOut, "/other: 404") {
		t.Errorf("--path: exit %d, %s", code, errOut)
	}
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	if code, _, errOut := check([]string{"--listen=:" + port}, nil); code != 1 || !strings.Contains(errOut, "unhealthy") || !strings.Contains(errOut, "503") {
		t.Errorf("unhealthy: exit %d, %q", code, errOut)
	}
	closed := deadRedis(t)[len("redis://"):]
	closed = closed[:strings.LastIndex(closed, "/")]
	if code, _, errOut := check([]string{"--listen", closed, "--timeout", "1s"}, nil); code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("nobody listening: exit %d, %q", code, errOut)
	}
	if code, out, _ := check([]string{"--help"}, nil); code != 0 || !strings.Contains(out, "Usage: worker healthcheck") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
	if code, _, errOut := check([]string{"--lisen", "x"}, nil); code != 2 || !strings.Contains(errOut, "did you mean --listen?") {
		t.Errorf("bad flag: exit %d, %q", code, errOut)
	}
	if code, _, errOut := check(nil, map[string]string{"WORKER_LISTEN": "off"}); code != 2 || !strings.Contains(errOut, "the side port is off") {
		t.Errorf("side port off: exit %d, %q", code, errOut)
	}
}
