package web_test

// The browser tests drive a real headless Chromium (chromedp) against a
// worker run in-process (internal/worker) on a simulated portal
// (b24/b24test) and the test Redis. They need the Debian package
// "chromium" (.ci/run installs it): without it they skip, unless CI is
// set, where they fail.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/internal/worker"
	"github.com/b24queue/b24queue/tasks"
)

// screenshotDir, when set, is where the browser tests write the pages'
// screenshots at 1,280 px (make screenshots: docs/screenshots).
var screenshotDir = flag.String("screenshots", "", "write screenshots of the pages at 1,280 px to this directory")

// browserRedisDB is the Redis database of the browser tests (this
// package's).
const browserRedisDB = 6

// chromiumFlags are the flags that work in containers and CI: no sandbox
// (root), no GPU, no network of its own.
var chromiumFlags = []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync"}

// findChromium returns the browser to drive: $CHROME_PATH, else chromium,
// chromium-browser or google-chrome on PATH. Without one the test skips,
// unless CI is set.
func findChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("browser test: no chromium on PATH (and CI is set): install the Debian package chromium (.ci/run does)")
	}
	t.Skip("browser test: no chromium on PATH; install the Debian package chromium, or set CHROME_PATH")
	return ""
}

// env is a running worker with its pages, a simulated portal, and a
// browser tab that sends the worker's credentials.
type env struct {
	t       *testing.T
	base    string // http://127.0.0.1:PORT
	user    string
	pass    string
	portal  string
	sim     *b24test.Server
	tab     context.Context
	logs    *testutil.SyncBuffer
	started time.Time
}

func setupBrowser(t *testing.T) *env {
	t.Helper()
	chromium := findChromium(t)
	rdb := testutil.Redis(t, browserRedisDB)
	prefix := testutil.KeyPrefix(t, rdb)
	e := &env{t: t, user: "ops", pass: "pw-" + testutil.RandomHex(8), portal: testutil.Unique("br"), logs: &testutil.SyncBuffer{}, started: time.Now()}
	// The portal drains 4 requests/s and the worker sends items one call
	// at a time: an import of 40 items takes about 10 s, long enough to
	// watch it move.
	e.sim = b24test.NewServer(t, b24test.Config{Rate: 4, Burst: 8})
	limits := config.Limits{Rate: 4, Burst: 8, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	cfg := config.Worker{
		Redis:    config.Redis{URL: fmt.Sprintf("redis://%s/%d", testutil.RedisAddr, browserRedisDB)},
		Portals:  []config.Portal{{Name: e.portal, WebhookURL: e.sim.WebhookURL(), Limits: limits}},
		Defaults: limits, Timeout: 10 * time.Second, Concurrency: 4, ShutdownTimeout: 2 * time.Second, LogLevel: "info",
		Listen: "127.0.0.1:0", MonitorUser: e.user, MonitorPassword: e.pass, Batch: false,
	}
	w, err := worker.New(cfg, worker.NewLogger(e.logs, cfg.Level()), worker.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		insp := asynq.NewInspectorFromRedisClient(rdb)
		_ = insp.DeleteQueue(tasks.QueueName(e.portal), true)
		if t.Failed() {
			t.Logf("worker logs:\n%s", e.logs.String())
		}
	})
	testutil.WaitFor(t, 10*time.Second, "the side port", func() (bool, string) { return w.Addr() != nil, "not bound" })
	e.base = "http://" + w.Addr().String()
	e.tab = newTab(t, chromium, "Basic "+base64.StdEncoding.EncodeToString([]byte(e.user+":"+e.pass)))
	return e
}

// newTab starts Chromium with a fresh profile and returns a tab that
// sends auth on every request.
func newTab(t *testing.T, chromium, auth string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900)}
	for _, f := range chromiumFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(tab, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	return tab
}

// do runs browser steps with a timeout.
func (e *env) do(steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		e.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](e *env, expr string) T {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.tab, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		e.t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// request sends an authenticated request to the worker (auth false: none).
func (e *env) request(method, path, contentType, body string, auth bool) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.SetBasicAuth(e.user, e.pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, out
}

// submit posts an import file through the enqueue API.
func (e *env) submit(id, body string) {
	e.t.Helper()
	code, out := e.request(http.MethodPost, "/v1/imports?portal="+e.portal+"&id="+id, "application/json", body, true)
	if code != http.StatusAccepted {
		e.t.Fatalf("POST /v1/imports: %d %s", code, out)
	}
}

// counts are an import's counts, from the status JSON or from the page.
type counts struct {
	Total   int `json:"total"`
	Created int `json:"created"`
	Adopted int `json:"adopted"`
	Pending int `json:"pending"`
	Waiting int `json:"waiting"`
	Failed  int `json:"failed"`
}

// status reads the import's status JSON (GET /v1/imports/{id}, the shape
// of enqueue status --json).
func (e *env) status(id string) (counts, map[string]string) {
	e.t.Helper()
	code, out := e.request(http.MethodGet, "/v1/imports/"+id, "", "", true)
	if code != http.StatusOK {
		e.t.Fatalf("GET /v1/imports/%s: %d %s", id, code, out)
	}
	var st struct {
		Counts counts            `json:"counts"`
		Failed map[string]string `json:"failed"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		e.t.Fatal(err)
	}
	return st.Counts, st.Failed
}

// pageCounts reads the counts the page shows in its progress legend, and
// whether the page is still the one loaded (no reload since mark()).
type shown struct {
	counts
	Marked bool `json:"marked"`
}

const readCounts = `(() => {
  const c = {marked: window.__b24qMark === 1};
  document.querySelectorAll('.legend [data-count]').forEach(el => { c[el.dataset.count] = Number(el.textContent); });
  return c;
})()`

func (e *env) pageCounts() shown { return eval[shown](e, readCounts) }

// mark marks the loaded page; a reload loses the mark.
func (e *env) mark() { eval[chromedp.Void](e, "window.__b24qMark = 1") }

// screenshot writes the full page at 1,280 px to the screenshot
// directory (or a temporary one, so the step runs anyway).
func (e *env) screenshot(name string) {
	e.t.Helper()
	dir := *screenshotDir
	if dir == "" {
		dir = e.t.TempDir()
	}
	ctx, cancel := context.WithTimeout(e.tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		e.t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		e.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// open navigates to path and waits until selector matches an element.
// (Waiting is done in JavaScript: chromedp's DOM queries do not always see
// a page loaded by a later navigation.)
func (e *env) open(path, selector string) {
	e.t.Helper()
	e.do(chromedp.Navigate(e.base + path))
	e.waitPage(selector+" on "+path, 15*time.Second, "!!document.querySelector('"+selector+"')")
}

// click clicks the element selector matches.
func (e *env) click(selector string) {
	e.t.Helper()
	if !eval[bool](e, "(() => { const el = document.querySelector('"+selector+"'); if (!el) return false; el.click(); return true; })()") {
		e.t.Fatalf("nothing to click at %s", selector)
	}
}

// fitsPhone checks that the page needs no sideways scrolling at 390 px.
func (e *env) fitsPhone(path string) {
	e.t.Helper()
	e.do(chromedp.EmulateViewport(390, 844))
	e.open(path, "main")
	over := eval[int](e, "document.documentElement.scrollWidth - window.innerWidth")
	if over > 1 {
		e.t.Errorf("%s at 390 px is %d px too wide", path, over)
	}
	e.do(chromedp.EmulateViewport(1280, 900))
}

// waitPage polls cond against the page (without reloading it) until it
// holds.
func (e *env) waitPage(what string, timeout time.Duration, expr string) {
	e.t.Helper()
	testutil.WaitFor(e.t, timeout, what, func() (bool, string) {
		ok := eval[bool](e, expr)
		return ok, "page: " + eval[string](e, "document.querySelector('main').innerText.slice(0, 2000)")
	})
}
