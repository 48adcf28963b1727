package config

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/testutil"
)

const (
	hookSecret = "s3cr3tw3bh00k"
	hook       = "https://acme.bitrix24.ru/rest/1/" + hookSecret + "/"
	monPass    = "m0n1t0rpa55"
	redisPass  = "r3d1spa55"
)

// env turns a map into a getenv function.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// with returns base plus kv pairs (a copy).
func with(base map[string]string, kv ...string) map[string]string {
	m := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var minimal = map[string]string{"B24_WEBHOOK_URL": hook}

// noSecret fails when s contains any of the test secrets.
func noSecret(t *testing.T, s string, extra ...string) {
	t.Helper()
	for _, sec := range append([]string{hookSecret, monPass, redisPass}, extra...) {
		if strings.Contains(s, sec) {
			t.Errorf("secret %q leaked in:\n%s", sec, s)
		}
	}
}

// usageProblems asserts err is a *UsageError and returns its problems.
func usageProblems(t *testing.T, err error) []string {
	t.Helper()
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want *UsageError", err, err)
	}
	if got := strings.Join(ue.Problems, "\n"); ue.Error() != got {
		t.Errorf("Error() = %q, want problems one per line %q", ue.Error(), got)
	}
	return ue.Problems
}

func TestLoadWorkerDefaults(t *testing.T) {
	t.Parallel()
	w, err := LoadWorker(nil, env(minimal))
	if err != nil {
		t.Fatal(err)
	}
	defLimits := Limits{Rate: 2, Burst: 50, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	want := Worker{
		Redis:           Redis{URL: "redis://127.0.0.1:6379/0"},
		Portals:         []Portal{{Name: "default", WebhookURL: hook, Limits: defLimits}},
		Defaults:        defLimits,
		Timeout:         75 * time.Second,
		RequestLimit:    65 * time.Second,
		Concurrency:     10,
		PortalReplicas:  2,
		Listen:          "127.0.0.1:8080",
		ShutdownTimeout: 30 * time.Second,
		Batch:           true,
		LogLevel:        "info",
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("LoadWorker defaults:\n got %#v\nwant %#v", w, want)
	}
	if w.Level() != slog.LevelInfo {
		t.Errorf("Level() = %v", w.Level())
	}
}

func TestLoadWorkerEachVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		check func(Worker) bool
	}{
		{"REDIS_URL", with(minimal, "REDIS_URL", "redis://10.0.0.1:6380/3"), func(w Worker) bool { return w.Redis.URL == "redis://10.0.0.1:6380/3" }},
		{"REDIS_CLUSTER_ADDRS", with(minimal, "REDIS_CLUSTER_ADDRS", " a:7000, b:7001 ,"), func(w Worker) bool {
			return reflect.DeepEqual(w.Redis.ClusterAddrs, []string{"a:7000", "b:7001"})
		}},
		{"B24_WEBHOOK_URL without trailing slash", map[string]string{"B24_WEBHOOK_URL": strings.TrimSuffix(hook, "/")}, func(w Worker) bool {
			return len(w.Portals) == 1 && w.Portals[0].WebhookURL == hook
		}},
		{"B24_WEBHOOK_URL http loopback", map[string]string{"B24_WEBHOOK_URL": "http://127.0.0.1:9000/rest/1/x/"}, func(w Worker) bool {
			return w.Portals[0].WebhookURL == "http://127.0.0.1:9000/rest/1/x/"
		}},
		{"B24_WEBHOOK_URL http localhost", map[string]string{"B24_WEBHOOK_URL": "http://localhost/rest/1/x/"}, func(w Worker) bool { return len(w.Portals) == 1 }},
		{"B24_WEBHOOK_URL http ::1", map[string]string{"B24_WEBHOOK_URL": "http://[::1]:80/rest/1/x/"}, func(w Worker) bool { return len(w.Portals) == 1 }},
		{"B24_WEBHOOK_URL http 127.8.9.10", map[string]string{"B24_WEBHOOK_URL": "http://127.8.9.10/rest/1/x/"}, func(w Worker) bool { return len(w.Portals) == 1 }},
		{"B24_RATE", with(minimal, "B24_RATE", "5"), func(w Worker) bool { return w.Defaults.Rate == 5 && w.Portals[0].Limits.Rate == 5 }},
		{"B24_RATE fraction", with(minimal, "B24_RATE", "0.5"), func(w Worker) bool { return w.Defaults.Rate == 0.5 }},
		{"B24_BURST", with(minimal, "B24_BURST", "250"), func(w Worker) bool { return w.Defaults.Burst == 250 && w.Portals[0].Limits.Burst == 250 }},
		{"B24_OPERATING_LIMIT", with(minimal, "B24_OPERATING_LIMIT", "2s"), func(w Worker) bool { return w.Defaults.OperatingLimit == 2*time.Second }},
		{"B24_OPERATING_WINDOW", with(minimal, "B24_OPERATING_WINDOW", "20s", "B24_OPERATING_LIMIT", "2s"), func(w Worker) bool {
			return w.Defaults.OperatingWindow == 20*time.Second && w.Portals[0].Limits.OperatingWindow == 20*time.Second
		}},
		{"B24_TIMEOUT", with(minimal, "B24_TIMEOUT", "5s"), func(w Worker) bool { return w.Timeout == 5*time.Second }},
		{"B24_REQUEST_LIMIT", with(minimal, "B24_REQUEST_LIMIT", "1s"), func(w Worker) bool { return w.RequestLimit == time.Second }},
		{"WORKER_CONCURRENCY", with(minimal, "WORKER_CONCURRENCY", "3"), func(w Worker) bool { return w.Concurrency == 3 }},
		{"WORKER_LISTEN", with(minimal, "WORKER_LISTEN", "127.0.0.1:9999"), func(w Worker) bool { return w.Listen == "127.0.0.1:9999" }},
		{"WORKER_LISTEN off", with(minimal, "WORKER_LISTEN", "off"), func(w Worker) bool { return w.Listen == "" }},
		{"WORKER_LISTEN localhost", with(minimal, "WORKER_LISTEN", "localhost:8080"), func(w Worker) bool { return w.Listen == "localhost:8080" }},
		{"WORKER_LISTEN public with auth", with(minimal, "WORKER_LISTEN", "0.0.0.0:8080", "MONITOR_USER", "ops", "MONITOR_PASSWORD", monPass), func(w Worker) bool {
			return w.Listen == "0.0.0.0:8080" && w.MonitorUser == "ops" && w.MonitorPassword == monPass
		}},
		{"MONITOR_USER and MONITOR_PASSWORD", with(minimal, "MONITOR_USER", "ops", "MONITOR_PASSWORD", monPass), func(w Worker) bool {
			return w.MonitorUser == "ops" && w.MonitorPassword == monPass
		}},
		{"WORKER_SHUTDOWN_TIMEOUT", with(minimal, "WORKER_SHUTDOWN_TIMEOUT", "1m"), func(w Worker) bool { return w.ShutdownTimeout == time.Minute }},
		{"B24_BATCH 0", with(minimal, "B24_BATCH", "0"), func(w Worker) bool { return !w.Batch }},
		{"B24_BATCH false", with(minimal, "B24_BATCH", "false"), func(w Worker) bool { return !w.Batch }},
		{"B24_BATCH 1", with(minimal, "B24_BATCH", "1"), func(w Worker) bool { return w.Batch }},
		{"LOG_LEVEL", with(minimal, "LOG_LEVEL", "DEBUG"), func(w Worker) bool { return w.LogLevel == "debug" && w.Level() == slog.LevelDebug }},
		{"LOG_LEVEL warn", with(minimal, "LOG_LEVEL", "warn"), func(w Worker) bool { return w.Level() == slog.LevelWarn }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := LoadWorker(nil, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(w) {
				t.Errorf("unexpected config %#v", w)
			}
		})
	}
}

func TestLoadWorkerFlagOverridesEnv(t *testing.T) {
	t.Parallel()
	e := with(minimal,
		"REDIS_URL", "redis://10.0.0.1:6379/1", "B24_RATE", "3", "B24_BURST", "60",
		"B24_OPERATING_LIMIT", "100s", "B24_OPERATING_WINDOW", "5m", "B24_TIMEOUT", "10s", "B24_REQUEST_LIMIT", "70s",
		"WORKER_CONCURRENCY", "4", "WORKER_LISTEN", "127.0.0.1:1", "WORKER_SHUTDOWN_TIMEOUT", "9s",
		"B24_BATCH", "false", "LOG_LEVEL", "error")
	other := "https://other.bitrix24.de/rest/7/" + hookSecret + "/"
	args := []string{
		"--redis-url", "redis://10.0.0.2:6379/2", "--webhook-url", other, "--rate=5", "--burst=250",
		"--operating-limit=2s", "--operating-window=20s", "--timeout=1s", "-request-limit", "3s", "--concurrency=20", "--portal-replicas=3",
		"--listen=127.0.0.2:2", "--shutdown-timeout=2m", "--batch", "--log-level=debug",
	}
	w, err := LoadWorker(args, env(e))
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{Rate: 5, Burst: 250, OperatingLimit: 2 * time.Second, OperatingWindow: 20 * time.Second}
	want := Worker{
		Redis:           Redis{URL: "redis://10.0.0.2:6379/2"},
		Portals:         []Portal{{Name: "default", WebhookURL: other, Limits: lim}},
		Defaults:        lim,
		Timeout:         time.Second,
		RequestLimit:    3 * time.Second,
		Concurrency:     20,
		PortalReplicas:  3,
		Listen:          "127.0.0.2:2",
		ShutdownTimeout: 2 * time.Minute,
		Batch:           true,
		LogLevel:        "debug",
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("flags did not override env:\n got %#v\nwant %#v", w, want)
	}

	// A bool flag takes an explicit value too, and an empty --listen turns the port off.
	w, err = LoadWorker([]string{"--batch=false", "--listen="}, env(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if w.Batch || w.Listen != "" {
		t.Errorf("Batch = %t, Listen = %q; want false, \"\"", w.Batch, w.Listen)
	}

	// A bad flag value is reported under the flag's name, not the variable's.
	_, err = LoadWorker([]string{"--rate=x"}, env(with(minimal, "B24_RATE", "3")))
	if ps := usageProblems(t, err); len(ps) != 1 || !strings.HasPrefix(ps[0], `--rate "x"`) {
		t.Errorf("problems = %q, want one naming --rate", ps)
	}
}

func TestLoadWorkerLookupEmptyListenIsOff(t *testing.T) {
	t.Parallel()
	m := with(minimal, "WORKER_LISTEN", "")
	lookup := func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	w, err := LoadWorkerLookup(nil, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if w.Listen != "" {
		t.Errorf("WORKER_LISTEN set empty: Listen = %q, want off", w.Listen)
	}
	// Through getenv an empty variable is indistinguishable from unset: default.
	w, err = LoadWorker(nil, env(m))
	if err != nil {
		t.Fatal(err)
	}
	if w.Listen != "127.0.0.1:8080" {
		t.Errorf("LoadWorker: Listen = %q, want default", w.Listen)
	}
}

func TestLoadWorkerProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // each must be a substring of some problem
	}{
		{"no portal", nil, map[string]string{}, []string{"set B24_WEBHOOK_URL or B24_PORTALS_FILE"}},
		{"REDIS_URL scheme", nil, with(minimal, "REDIS_URL", "http://x:1"), []string{`REDIS_URL http://x:1: unsupported scheme "http"`}},
		{"REDIS_URL unparseable", nil, with(minimal, "REDIS_URL", "redis://:"+redisPass+"@host:port/0"), []string{`REDIS_URL redis://***@host:port/0: invalid port ":port" after host`}},
		{"REDIS_URL db", nil, with(minimal, "REDIS_URL", "redis://:"+redisPass+"@h:6379/abc"), []string{"REDIS_URL redis://:***@h:6379/abc: the path must be a database number"}},
		{"REDIS_URL no host", nil, with(minimal, "REDIS_URL", "redis:///0"), []string{"REDIS_URL redis:///0: has no host"}},
		{"REDIS_URL sentinel no master", nil, with(minimal, "REDIS_URL", "redis-sentinel://h1:26379,h2:26379"), []string{"has no ?master=NAME"}},
		{"REDIS_URL socket no path", nil, with(minimal, "REDIS_URL", "redis-socket://"), []string{"has no socket path"}},
		{"--redis-url", []string{"--redis-url=nope://"}, minimal, []string{`--redis-url nope://: unsupported scheme`}},
		{"REDIS_CLUSTER_ADDRS", nil, with(minimal, "REDIS_CLUSTER_ADDRS", "a:7000,b,c:99999"), []string{`REDIS_CLUSTER_ADDRS item "b": must be host:port`, `REDIS_CLUSTER_ADDRS item "c:99999": port`}},
		{"webhook not https", nil, map[string]string{"B24_WEBHOOK_URL": "http://acme.bitrix24.ru/rest/1/" + hookSecret + "/"}, []string{"B24_WEBHOOK_URL http://acme.bitrix24.ru/rest/1/***/: must be https://"}},
		{"webhook http public IP", nil, map[string]string{"B24_WEBHOOK_URL": "http://10.1.2.3/rest/1/" + hookSecret + "/"}, []string{"B24_WEBHOOK_URL http://10.1.2.3/rest/1/***/: must be https://"}},
		{"webhook no secret", nil, map[string]string{"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/"}, []string{"B24_WEBHOOK_URL https://acme.bitrix24.ru/rest/1/: must have the form https://HOST/rest/USER_ID/SECRET/"}},
		{"webhook no user", nil, map[string]string{"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/" + hookSecret + "/"}, []string{"B24_WEBHOOK_URL https://acme.bitrix24.ru/rest/***/: must have the form"}},
		{"webhook method appended", nil, map[string]string{"B24_WEBHOOK_URL": hook + "department.add"}, []string{"B24_WEBHOOK_URL https://acme.bitrix24.ru/rest/1/***/department.add: must have the form"}},
		{"webhook other path", nil, map[string]string{"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/" + hookSecret}, []string{"B24_WEBHOOK_URL https://acme.bitrix24.ru/***: must have the form"}},
		{"webhook scheme", nil, map[string]string{"B24_WEBHOOK_URL": "ftp://acme/rest/1/" + hookSecret + "/"}, []string{"must be an https:// URL"}},
		{"webhook query", nil, map[string]string{"B24_WEBHOOK_URL": hook + "?auth=" + hookSecret + "x"}, []string{"must not contain a ?query"}},
		{"webhook userinfo", nil, map[string]string{"B24_WEBHOOK_URL": "https://u:" + hookSecret + "@acme.bitrix24.ru/rest/1/x/"}, []string{"must not contain user:password@"}},
		{"webhook unparseable", nil, map[string]string{"B24_WEBHOOK_URL": "https://acme bitrix24.ru/rest/1/" + hookSecret + "/"}, []string{"B24_WEBHOOK_URL https://acme bitrix24.ru/rest/1/***/:"}},
		{"--webhook-url", []string{"--webhook-url=http://example.com/rest/1/" + hookSecret + "/"}, nil, []string{"--webhook-url http://example.com/rest/1/***/: must be https://"}},
		{"B24_RATE zero", nil, with(minimal, "B24_RATE", "0"), []string{"B24_RATE 0: must be a number of requests per second > 0"}},
		{"B24_RATE negative", nil, with(minimal, "B24_RATE", "-1"), []string{"B24_RATE -1: must be"}},
		{"B24_RATE text", nil, with(minimal, "B24_RATE", "fast"), []string{`B24_RATE "fast": must be a number`}},
		{"B24_RATE NaN", nil, with(minimal, "B24_RATE", "NaN"), []string{"B24_RATE NaN: must be"}},
		{"B24_BURST zero", nil, with(minimal, "B24_BURST", "0"), []string{"B24_BURST 0: must be at least 1"}},
		{"B24_BURST text", nil, with(minimal, "B24_BURST", "1.5"), []string{`B24_BURST "1.5": must be a whole number`}},
		{"B24_OPERATING_LIMIT", nil, with(minimal, "B24_OPERATING_LIMIT", "480"), []string{`B24_OPERATING_LIMIT "480": must be a duration`}},
		{"B24_OPERATING_LIMIT zero", nil, with(minimal, "B24_OPERATING_LIMIT", "0s"), []string{"B24_OPERATING_LIMIT 0s: must be > 0"}},
		{"B24_OPERATING_WINDOW", nil, with(minimal, "B24_OPERATING_WINDOW", "ten"), []string{`B24_OPERATING_WINDOW "ten": must be a duration`}},
		{"limit over window", nil, with(minimal, "B24_OPERATING_LIMIT", "11m"), []string{"B24_OPERATING_LIMIT: operating limit 11m0s must not exceed operating window 10m0s"}},
		{"B24_TIMEOUT", nil, with(minimal, "B24_TIMEOUT", "-1s"), []string{"B24_TIMEOUT -1s: must be > 0"}},
		{"B24_TIMEOUT text", nil, with(minimal, "B24_TIMEOUT", "soon"), []string{`B24_TIMEOUT "soon": must be a duration`}},
		{"B24_REQUEST_LIMIT", nil, with(minimal, "B24_REQUEST_LIMIT", "0s"), []string{"B24_REQUEST_LIMIT 0s: must be > 0"}},
		{"--request-limit text", []string{"--request-limit=long"}, minimal, []string{`--request-limit "long": must be a duration`}},
		{"webhook bare code", nil, map[string]string{"B24_WEBHOOK_URL": hookSecret}, []string{"B24_WEBHOOK_URL (value of 13 characters not shown: it is not a URL and may be the secret itself): must be an https:// URL"}},
		{"webhook code with spaces", nil, map[string]string{"B24_WEBHOOK_URL": "code " + hookSecret}, []string{"B24_WEBHOOK_URL (value of 18 characters not shown"}},
		{"--webhook-url bare code", []string{"--webhook-url", hookSecret}, nil, []string{"--webhook-url (value of 13 characters not shown"}},
		{"WORKER_CONCURRENCY", nil, with(minimal, "WORKER_CONCURRENCY", "0"), []string{"WORKER_CONCURRENCY 0: must be at least 1"}},
		{"WORKER_CONCURRENCY text", nil, with(minimal, "WORKER_CONCURRENCY", "many"), []string{`WORKER_CONCURRENCY "many": must be a whole number`}},
		{"WORKER_SHUTDOWN_TIMEOUT", nil, with(minimal, "WORKER_SHUTDOWN_TIMEOUT", "0s"), []string{"WORKER_SHUTDOWN_TIMEOUT 0s: must be > 0"}},
		{"B24_BATCH", nil, with(minimal, "B24_BATCH", "maybe"), []string{`B24_BATCH "maybe": must be true or false`}},
		{"LOG_LEVEL", nil, with(minimal, "LOG_LEVEL", "loud"), []string{`LOG_LEVEL "loud": must be debug, info, warn or error`}},
		{"WORKER_LISTEN bad", nil, with(minimal, "WORKER_LISTEN", "8080"), []string{"WORKER_LISTEN 8080: must be host:port"}},
		{"WORKER_LISTEN port", nil, with(minimal, "WORKER_LISTEN", "127.0.0.1:http"), []string{"WORKER_LISTEN 127.0.0.1:http: port must be a number"}},
		{"WORKER_LISTEN not loopback", nil, with(minimal, "WORKER_LISTEN", "0.0.0.0:8080"), []string{"WORKER_LISTEN 0.0.0.0:8080 is not loopback: set MONITOR_USER and MONITOR_PASSWORD"}},
		{"WORKER_LISTEN all interfaces", nil, with(minimal, "WORKER_LISTEN", ":8080"), []string{"WORKER_LISTEN :8080 is not loopback"}},
		{"WORKER_LISTEN host name", nil, with(minimal, "WORKER_LISTEN", "worker1.internal:8080", "MONITOR_USER", "ops"), []string{"WORKER_LISTEN worker1.internal:8080 is not loopback", "MONITOR_USER and MONITOR_PASSWORD must be set together"}},
		{"--listen not loopback", []string{"--listen", "10.0.0.5:80"}, with(minimal, "MONITOR_PASSWORD", monPass), []string{"--listen 10.0.0.5:80 is not loopback", "MONITOR_USER and MONITOR_PASSWORD must be set together"}},
		{"password without user", nil, with(minimal, "MONITOR_PASSWORD", monPass), []string{"MONITOR_USER and MONITOR_PASSWORD must be set together"}},
		{"unknown flag", []string{"--colour"}, minimal, []string{"unknown flag --colour (see --help)"}},
		{"misspelled flag", []string{"--concurency", "3"}, minimal, []string{"unknown flag --concurency; did you mean --concurrency? (see --help)"}},
		{"misspelled single-dash flag", []string{"-lsiten", "x"}, minimal, []string{"unknown flag --lsiten; did you mean --listen?"}},
		{"positional argument", []string{"extra"}, minimal, []string{`unexpected argument "extra"`}},
		{"misspelled command", []string{"helthcheck"}, minimal, []string{`unexpected argument "helthcheck": worker takes flags only, or the command healthcheck (see --help); did you mean healthcheck?`}},
		{"flag without value", []string{"--rate"}, minimal, []string{"flag --rate needs a value"}},
		{"B24_PORTALS_FILE missing", nil, map[string]string{"B24_PORTALS_FILE": "/nonexistent/portals.yaml"}, []string{"B24_PORTALS_FILE /nonexistent/portals.yaml: does not exist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadWorker(tc.args, env(tc.env))
			ps := usageProblems(t, err)
			checkProblems(t, ps, tc.want)
			noSecret(t, err.Error())
		})
	}
}

func TestLoadWorkerReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	e := map[string]string{
		"REDIS_URL": "mysql://db", "B24_RATE": "0", "B24_BURST": "0", "B24_TIMEOUT": "x",
		"WORKER_CONCURRENCY": "0", "WORKER_LISTEN": "0.0.0.0:1", "LOG_LEVEL": "trace",
	}
	_, err := LoadWorker(nil, env(e))
	ps := usageProblems(t, err)
	for _, name := range []string{"REDIS_URL", "B24_RATE", "B24_BURST", "B24_TIMEOUT", "WORKER_CONCURRENCY", "WORKER_LISTEN", "LOG_LEVEL", "B24_WEBHOOK_URL or B24_PORTALS_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("no problem names %s", name)
		}
	}
	if len(ps) != 8 {
		t.Errorf("got %d problems, want 8:\n%s", len(ps), err)
	}
}

func TestLoadWorkerHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h", "-help"} {
		_, err := LoadWorker([]string{arg}, env(nil))
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestWorkerUsage(t *testing.T) {
	t.Parallel()
	u := WorkerUsage()
	// Every variable of design.md's Configuration table, with its default.
	table := map[string]string{
		"REDIS_URL": "redis://127.0.0.1:6379/0", "B24_WEBHOOK_URL": "none", "B24_PORTALS_FILE": "none",
		"B24_RATE": "2", "B24_BURST": "50", "B24_OPERATING_LIMIT": "480s", "B24_OPERATING_WINDOW": "10m",
		"B24_TIMEOUT": "75s", "WORKER_CONCURRENCY": "10", "WORKER_LISTEN": "127.0.0.1:8080",
		"MONITOR_USER": "none", "MONITOR_PASSWORD": "none",
		// extensions
		"REDIS_CLUSTER_ADDRS": "none", "WORKER_SHUTDOWN_TIMEOUT": "30s", "B24_BATCH": "true", "LOG_LEVEL": "info",
		"B24_REQUEST_LIMIT": "65s",
	}
	for v, def := range table {
		if !strings.Contains(u, v+" (default "+def+")") {
			t.Errorf("usage lacks %s with default %s", v, def)
		}
	}
	for _, f := range []string{"redis-url", "webhook-url", "portals-file", "rate", "burst", "operating-limit",
		"operating-window", "timeout", "request-limit", "concurrency", "listen", "shutdown-timeout", "batch", "log-level"} {
		if !strings.Contains(u, "--"+f+", ") {
			t.Errorf("usage lacks flag --%s next to its variable", f)
		}
	}
	for _, s := range []string{"portals:", "webhook_url", "oauth", "client_secret", "${"} {
		if !strings.Contains(u, s) {
			t.Errorf("usage lacks portals file format element %q", s)
		}
	}
	noSecret(t, u)
}

func TestWorkerUsageNotFromEnvironment(t *testing.T) {
	// Not parallel: sets process environment to prove usage does not read it.
	t.Setenv("B24_WEBHOOK_URL", hook)
	t.Setenv("MONITOR_PASSWORD", monPass)
	noSecret(t, WorkerUsage())
}

// writeFile writes a portals file in a fresh temp dir.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portals.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPortalsFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
portals:
  beta:
    oauth:
      portal_url: https://beta.bitrix24.de
      client_id: app.1
      client_secret: ${BETA_SECRET}
      access_token: "${BETA_ACCESS}"
      refresh_token: pre-${BETA_REFRESH}-post
    operating_limit: 2s
    operating_window: 20s
  acme:
    webhook_url: ${ACME_HOOK}
    rate: 5
    burst: 250
  sim:
    webhook_url: http://127.0.0.1:9000/rest/1/simsecret/
`)
	e := map[string]string{
		"B24_PORTALS_FILE": path, "B24_RATE": "3",
		"ACME_HOOK": hook, "BETA_SECRET": "cs", "BETA_ACCESS": "at", "BETA_REFRESH": "rt",
	}
	w, err := LoadWorker(nil, env(e))
	if err != nil {
		t.Fatal(err)
	}
	def := Limits{Rate: 3, Burst: 50, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	want := []Portal{
		{Name: "acme", WebhookURL: hook, Limits: Limits{Rate: 5, Burst: 250, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}},
		{Name: "beta", OAuth: &OAuth{PortalURL: "https://beta.bitrix24.de/", ClientID: "app.1", ClientSecret: "cs", AccessToken: "at", RefreshToken: "pre-rt-post"},
			Limits: Limits{Rate: 3, Burst: 50, OperatingLimit: 2 * time.Second, OperatingWindow: 20 * time.Second}},
		{Name: "sim", WebhookURL: "http://127.0.0.1:9000/rest/1/simsecret/", Limits: def},
	}
	if !reflect.DeepEqual(w.Portals, want) {
		t.Errorf("portals:\n got %+v\nwant %+v", w.Portals, want)
	}
	if p, ok := w.Portal("beta"); !ok || p.OAuth == nil {
		t.Errorf("Portal(beta) = %v, %t", p, ok)
	}
	if _, ok := w.Portal("default"); ok {
		t.Error("Portal(default) found without B24_WEBHOOK_URL")
	}

	// Together with B24_WEBHOOK_URL the file adds to portal "default".
	w, err = LoadWorker([]string{"--portals-file", path}, env(with(e, "B24_PORTALS_FILE", "", "B24_WEBHOOK_URL", hook)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range w.Portals {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "acme,beta,default,sim" {
		t.Errorf("portal names = %s", got)
	}
}

func TestPortalsFileProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		env  map[string]string
		want []string
	}{
		{"unknown field", "portals:\n  acme:\n    webhook_url: " + hook + "\n    ratelimit: 5\n", nil,
			[]string{"line 4: field ratelimit not found"}},
		{"unknown top-level field", "portal:\n  acme: {}\n", nil, []string{"line 1: field portal not found"}},
		{"empty file", "", nil, []string{"is empty"}},
		{"no portals", "portals: {}\n", nil, []string{"defines no portals"}},
		{"not yaml", "portals: [\n", nil, []string{"B24_PORTALS_FILE"}},
		{"wrong type hides value", "portals:\n  acme:\n    webhook_url: " + hook + "\n    rate: " + hookSecret + "\n", nil,
			[]string{"line 4: cannot unmarshal !!str into float64"}},
		{"unset env reference", "portals:\n  acme:\n    webhook_url: ${NOPE}\n", nil,
			[]string{"portals.acme.webhook_url: ${NOPE} is unset or empty"}},
		{"bad env reference", "portals:\n  acme:\n    webhook_url: ${1X}\n", nil,
			[]string{`portals.acme.webhook_url: "${1X}" is not a valid ${NAME} reference`}},
		{"bad webhook", "portals:\n  acme:\n    webhook_url: ${H}\n", map[string]string{"H": "http://acme.bitrix24.ru/rest/1/" + hookSecret + "/"},
			[]string{"portals.acme.webhook_url http://acme.bitrix24.ru/rest/1/***/: must be https://"}},
		{"both auths", "portals:\n  acme:\n    webhook_url: " + hook + "\n    oauth: {portal_url: https://a.bitrix24.ru/}\n", nil,
			[]string{"portals.acme: set exactly one of webhook_url and oauth"}},
		{"no auth", "portals:\n  acme:\n    rate: 5\n", nil, []string{"portals.acme: needs webhook_url or oauth"}},
		{"null portal", "portals:\n  acme:\n", nil, []string{"portals.acme: needs webhook_url or oauth"}},
		{"oauth missing fields", "portals:\n  beta:\n    oauth: {portal_url: https://beta.bitrix24.de/, client_secret: cs0123}\n", nil,
			[]string{"portals.beta.oauth.client_id: required", "portals.beta.oauth.access_token: required", "portals.beta.oauth.refresh_token: required"}},
		{"oauth bad urls", "portals:\n  beta:\n    oauth: {portal_url: 'http://beta.bitrix24.de/', client_id: a, client_secret: b, access_token: c, refresh_token: d, token_endpoint: 'ftp://x/'}\n", nil,
			[]string{"portals.beta.oauth.portal_url http://beta.bitrix24.de/: must be https://", "portals.beta.oauth.token_endpoint ftp://x/: must be an https:// URL"}},
		{"bad name", "portals:\n  Acme:\n    webhook_url: " + hook + "\n", nil, []string{`portal name "Acme" must match`}},
		{"default twice", "portals:\n  default:\n    webhook_url: " + hook + "\n", map[string]string{"B24_WEBHOOK_URL": hook},
			[]string{"portals.default is also defined by B24_WEBHOOK_URL"}},
		{"bad limits", "portals:\n  acme:\n    webhook_url: " + hook + "\n    rate: 0\n    burst: 0\n    operating_limit: 480\n    operating_window: -1s\n", nil,
			[]string{"portals.acme.rate 0: must be", "portals.acme.burst 0: must be at least 1", `portals.acme.operating_limit "480": must be a duration`, "portals.acme.operating_window -1s: must be > 0"}},
		{"limit over inherited window", "portals:\n  acme:\n    webhook_url: " + hook + "\n    operating_limit: 11m\n", nil,
			[]string{"portals.acme.operating_limit: operating limit 11m0s must not exceed operating window 10m0s"}},
		{"duplicate name", "portals:\n  acme:\n    webhook_url: " + hook + "\n  acme:\n    webhook_url: " + hook + "\n", nil,
			[]string{"already defined"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tc.body)
			_, err := LoadWorker(nil, env(with(tc.env, "B24_PORTALS_FILE", path)))
			ps := usageProblems(t, err)
			checkProblems(t, ps, tc.want)
			for _, p := range ps {
				if !strings.HasPrefix(p, "B24_PORTALS_FILE "+path+": ") {
					t.Errorf("problem does not name the file: %q", p)
				}
			}
			noSecret(t, err.Error(), "cs0123")
		})
	}
}

func TestPortalsFileExpandsOnlyStringValues(t *testing.T) {
	t.Parallel()
	// ${...} in a number field is not expanded: it is a type error, not a number.
	path := writeFile(t, "portals:\n  acme:\n    webhook_url: "+hook+"\n    burst: ${BURST}\n")
	_, err := LoadWorker(nil, env(map[string]string{"B24_PORTALS_FILE": path, "BURST": "7"}))
	if ps := usageProblems(t, err); len(ps) != 1 || !strings.Contains(ps[0], "cannot unmarshal !!str into int") {
		t.Errorf("problems = %q", ps)
	}
}

func TestNoSecretInStringOrLogs(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `portals:
  beta:
    oauth: {portal_url: https://beta.bitrix24.de/, client_id: app, client_secret: clientsecret1, access_token: accesstoken1, refresh_token: refreshtoken1}
`)
	e := with(minimal, "B24_PORTALS_FILE", path, "MONITOR_USER", "ops", "MONITOR_PASSWORD", monPass,
		"REDIS_URL", "redis://:"+redisPass+"@127.0.0.1:6379/0")
	w, err := LoadWorker(nil, env(e))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "worker", w, "portal", w.Portals[0], "portal2", w.Portals[1])
	out := buf.String() + w.String() + fmt.Sprint(w) + fmt.Sprint(w.Portals) + w.Portals[0].OAuth.String() + w.Redis.String()
	noSecret(t, out, "clientsecret1", "accesstoken1", "refreshtoken1")
	if !strings.Contains(out, "beta") || !strings.Contains(out, "https://acme.bitrix24.ru/rest/1/***/") {
		t.Errorf("String forms lack the non-secret parts:\n%s", out)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{hook, "https://acme.bitrix24.ru/rest/1/***/"},
		{hook + "department.add.json", "https://acme.bitrix24.ru/rest/1/***/department.add.json"},
		{"https://acme.bitrix24.ru/rest/" + hookSecret + "/", "https://acme.bitrix24.ru/rest/***/"},
		{"https://acme.bitrix24.ru/" + hookSecret + "/x", "https://acme.bitrix24.ru/***/***"},
		{"https://beta.bitrix24.de/", "https://beta.bitrix24.de/"},
		{"https://beta.bitrix24.de/rest/department.get?auth=" + hookSecret, "https://beta.bitrix24.de/rest/***?auth=***"},
		{"redis://:" + redisPass + "@127.0.0.1:6379/2", "redis://:***@127.0.0.1:6379/2"},
		{"redis://user:" + redisPass + "@h:6379/0", "redis://user:***@h:6379/0"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis-socket://:" + redisPass + "@/run/redis.sock?db=1", "redis-socket://:***@/run/redis.sock?db=1"},
		{"redis-sentinel://:" + redisPass + "@h1:1,h2:2?master=m", "redis-sentinel://:***@h1:1,h2:2?master=m"},
		{"redis://:" + redisPass + "@host:port/0", "redis://***@host:port/0"},
		{"https://a b/rest/1/" + hookSecret + "/", "https://a b/rest/1/***/"},
	}
	for _, tc := range tests {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConnOpt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    Redis
		want asynq.RedisConnOpt
	}{
		{"default", Redis{}, asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}},
		{"redis", Redis{URL: "redis://:" + redisPass + "@10.0.0.1:6380/4"}, asynq.RedisClientOpt{Addr: "10.0.0.1:6380", Password: redisPass, DB: 4}},
		{"redis ACL user", Redis{URL: "redis://app:" + redisPass + "@h:6379/1"}, asynq.RedisClientOpt{Addr: "h:6379", Username: "app", Password: redisPass, DB: 1}},
		{"rediss", Redis{URL: "rediss://redis.example.com:6380/2"}, asynq.RedisClientOpt{Addr: "redis.example.com:6380", DB: 2, TLSConfig: &tls.Config{ServerName: "redis.example.com"}}},
		{"socket", Redis{URL: "redis-socket:///run/redis.sock?db=3"}, asynq.RedisClientOpt{Network: "unix", Addr: "/run/redis.sock", DB: 3}},
		{"sentinel", Redis{URL: "redis-sentinel://:" + redisPass + "@s1:26379,s2:26379?master=mymaster"},
			asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}, SentinelPassword: redisPass}},
		{"cluster wins", Redis{URL: "redis://ignored:1/0", ClusterAddrs: []string{"c1:7000", "c2:7001"}}, asynq.RedisClusterClientOpt{Addrs: []string{"c1:7000", "c2:7001"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.r.ConnOpt()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ConnOpt() = %#v, want %#v", got, tc.want)
			}
			c, err := tc.r.UniversalClient()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			var kindOK bool
			switch tc.want.(type) {
			case asynq.RedisClientOpt:
				_, kindOK = c.(*redis.Client)
			case asynq.RedisFailoverClientOpt:
				_, kindOK = c.(*redis.Client) // a failover client is a *redis.Client
			case asynq.RedisClusterClientOpt:
				_, kindOK = c.(*redis.ClusterClient)
			}
			if !kindOK {
				t.Errorf("UniversalClient() is %T, not of ConnOpt's kind", c)
			}
		})
	}
}

func TestConnOptErrors(t *testing.T) {
	t.Parallel()
	for _, r := range []Redis{
		{URL: "redis://:" + redisPass + "@h:x/0"},
		{URL: "mongodb://:" + redisPass + "@h/0"},
		{ClusterAddrs: []string{"c1"}},
	} {
		if _, err := r.ConnOpt(); err == nil {
			t.Errorf("ConnOpt(%v) succeeded", r)
		} else {
			noSecret(t, err.Error())
		}
		if _, err := r.UniversalClient(); err == nil {
			t.Errorf("UniversalClient(%v) succeeded", r)
		}
	}
}

func TestUniversalClientPing(t *testing.T) {
	t.Parallel()
	testutil.Redis(t, 4) // skips the test (fails it in CI) when Redis does not answer
	c, err := Redis{URL: "redis://" + testutil.RedisAddr + "/4"}.UniversalClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err) // Redis answers testutil's client, so this one must too
	}
	// The DB of the URL is selected: a key written here is in DB 4.
	key := "b24q:configtest:" + t.Name() + fmt.Sprint(time.Now().UnixNano())
	if err := c.Set(ctx, key, "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Del(context.Background(), key) })
	if db := c.(*redis.Client).Options().DB; db != 4 {
		t.Errorf("DB = %d, want 4", db)
	}
}

func TestLoadEnqueueEnv(t *testing.T) {
	t.Parallel()
	e, err := LoadEnqueueEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Enqueue{Redis: Redis{URL: DefaultRedisURL}, Portal: "default"}); !reflect.DeepEqual(e, want) {
		t.Errorf("defaults = %#v, want %#v", e, want)
	}
	e, err = LoadEnqueueEnv(env(map[string]string{"REDIS_URL": "redis://h:1/2", "REDIS_CLUSTER_ADDRS": "a:1,b:2", "B24_PORTAL": "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Enqueue{Redis: Redis{URL: "redis://h:1/2", ClusterAddrs: []string{"a:1", "b:2"}}, Portal: "acme"}); !reflect.DeepEqual(e, want) {
		t.Errorf("got %#v, want %#v", e, want)
	}
	_, err = LoadEnqueueEnv(env(map[string]string{"REDIS_URL": "redis://:" + redisPass + "@h:x/0", "B24_PORTAL": "Not Valid"}))
	ps := usageProblems(t, err)
	if len(ps) != 2 || !strings.HasPrefix(ps[0], "REDIS_URL redis://***@h:x/0") || !strings.HasPrefix(ps[1], `B24_PORTAL "Not Valid"`) {
		t.Errorf("problems = %q", ps)
	}
	noSecret(t, err.Error())
}

func TestInsecureHTTPHostsAllowOnlyTheListedHosts(t *testing.T) {
	t.Parallel()
	m := with(minimal, "B24_WEBHOOK_URL", "http://b24sim:8090/rest/1/s3cret-code/")
	if _, err := LoadWorker(nil, env(m)); err == nil {
		t.Fatal("http:// to a non-loopback host accepted without B24_INSECURE_HTTP_HOSTS")
	}
	m = with(m, "B24_INSECURE_HTTP_HOSTS", " B24SIM , other")
	w, err := LoadWorker(nil, env(m))
	if err != nil {
		t.Fatalf("listed host refused: %v", err)
	}
	if got := w.InsecureHTTPHosts; len(got) != 2 || got[0] != "b24sim" || got[1] != "other" {
		t.Errorf("InsecureHTTPHosts = %q", got)
	}
	m = with(m, "B24_WEBHOOK_URL", "http://portal.example.com/rest/1/s3cret-code/")
	if _, err := LoadWorker(nil, env(m)); err == nil {
		t.Error("http:// accepted for a host that is not listed")
	}
}

// checkProblems asserts that ps holds exactly len(want) problems and that
// each want is a substring of one of them.
func checkProblems(t *testing.T, ps, want []string) {
	t.Helper()
	for _, w := range want {
		found := false
		for _, p := range ps {
			found = found || strings.Contains(p, w)
		}
		if !found {
			t.Errorf("no problem contains %q; got:\n%s", w, strings.Join(ps, "\n"))
		}
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(ps), len(want), strings.Join(ps, "\n"))
	}
}
