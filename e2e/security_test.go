//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/tasks"
)

const (
	webhookSecret = "whsec-e2e-73c1a0b9d8e7f6a5b4c3d2e1"
	monitorUser   = "ops"
	monitorPass   = "monpw-e2e-4d3c2b1a0f9e8d7c6b5a"
)

// redisDump returns every key of r's db 0 with its value(s) in readable
// form and its DUMP serialization, one block per key.
func redisDump(t testing.TB, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		var b strings.Builder
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		var v any
		switch typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		}
		if err != nil && err != redis.Nil {
			t.Fatalf("read %s %s: %v", typ, k, err)
		}
		fmt.Fprintf(&b, "%s %v\n", typ, v)
		if d, err := rdb.Dump(ctx, k).Result(); err == nil {
			b.WriteString(d)
		}
		out[k] = b.String()
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var hex32 = regexp.MustCompile(`[0-9a-f]{32}`)

// importIDIn returns the import ID in enqueue import's "import ID: ..." line.
func importIDIn(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "import "); ok {
			if id, _, ok := strings.Cut(rest, ":"); ok && !strings.Contains(id, " ") {
				return id
			}
		}
	}
	return ""
}

// TestSecretsNeverLeak runs imports through a webhook portal and an OAuth
// portal (short token TTL, so the tokens rotate; faults, so tasks carry
// errors, among them error descriptions that echo the called URL with its
// webhook secret or access token; a permanently failing task, so one is
// archived with a reason) and then greps everything observable for the
// secrets: worker logs, every Redis key and value (task payloads, results,
// last errors) except the OAuth token store that must hold the tokens,
// /metrics, the dashboard's API, the worker's /imports/ and /portals/ pages
// (HTML and JSON, sampled during the imports too), the enqueue API and
// `enqueue status --json`. Then the worker, given rejected webhook URLs
// that hold the secret, must refuse them (exit 2) without printing it.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t, append([]string{"--rate", "50", "--burst", "50", "--secret", webhookSecret,
		"--error-rate", "0.1", "--lost-response-rate", "0.05", "--echo-url-rate", "0.1"}, oauthSimFlags(3*time.Second)...)...)
	env := workerEnv(r, s, map[string]string{"MONITOR_USER": monitorUser, "MONITOR_PASSWORD": monitorPass, "LOG_LEVEL": "debug"})
	portalsFile(t, env, s, "oa", "default")
	w := startWorker(t, env)
	waitProcessing(t, w, 10*time.Second)

	var observed []string // what the test saw, labelled
	see := func(label, v string) { observed = append(observed, label+"\n"+v) }
	// While the imports run, the pages show transient states (retries
	// with the portal's last error, blocked methods) that are gone at the
	// end: sample them too.
	stopSampling := samplePages(t, w, []string{"/imports/", "/imports/?format=json", "/portals/", "/portals/?format=json",
		"/monitoring/api/queues/" + url.PathEscape(tasks.QueueName("default")) + "/retry_tasks?pageSize=1000",
		"/monitoring/api/queues/" + url.PathEscape(tasks.QueueName("oa")) + "/retry_tasks?pageSize=1000"})

	// The orphan goes first: with the faults its attempts may fail
	// transiently a few times (backing off 2 s, 4 s, 8 s, ...) before one
	// reaches the portal and learns that the parent is missing.
	out, errOut, code := runEnqueue(t, enqueueEnv(r), "department", "--name", "Orphan", "--parent-id", "999999", "--portal", "oa")
	see("enqueue department", out+errOut)
	if code != 0 {
		t.Fatalf("enqueue department: %d %s%s", code, out, errOut)
	}
	t1, t2 := genTree(t, 30, 3), genTree(t, 30, 3)
	id1 := submitImport(t, r, t1.Path)
	out, errOut, code = runEnqueue(t, enqueueEnv(r), "import", t2.Path, "--portal", "oa", "--wait")
	see("enqueue import --wait", out+errOut)
	if code != 0 {
		t.Fatalf("import on the OAuth portal: exit %d\n%s%s", code, out, errOut)
	}
	id2 := importIDIn(out)
	if id2 == "" {
		t.Fatalf("no import ID in %q", out)
	}
	waitDone(t, r, id1, 60*time.Second)
	in := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr()})
	t.Cleanup(func() { _ = in.Close() })
	if !waitFor(120*time.Second, func() bool {
		a, _ := in.ListArchivedTasks(tasks.QueueName("oa"))
		return len(a) > 0
	}) {
		t.Fatal("the department under a missing parent was not archived")
	}
	time.Sleep(4 * time.Second) // one more token rotation
	for label, body := range stopSampling() {
		see(label, body)
	}

	for _, id := range []string{id1, id2} {
		o, e, _ := runEnqueue(t, enqueueEnv(r), "status", id, "--json")
		see("enqueue status "+id, o+e)
		_, body := httpGet(t, w.URL(t, "/v1/imports/"+url.PathEscape(id)), monitorUser, monitorPass)
		see("GET /v1/imports/"+id, body)
	}
	seeWorkerPages(t, w, []string{id1, id2}, see)
	_, body := httpGet(t, w.URL(t, "/metrics"), "", "")
	see("/metrics", body)
	if !strings.Contains(body, "asynq_") {
		t.Errorf("/metrics lacks asynq queue metrics")
	}
	paths := []string{"/monitoring/api/queues", "/monitoring/api/servers", "/monitoring/api/queue_stats", "/monitoring/api/redis_info"}
	for _, q := range []string{tasks.QueueName("default"), tasks.QueueName("oa")} {
		for _, state := range []string{"pending", "active", "scheduled", "retry", "archived", "completed"} {
			paths = append(paths, "/monitoring/api/queues/"+url.PathEscape(q)+"/"+state+"_tasks?pageSize=1000")
		}
	}
	for _, p := range paths {
		code, body := httpGet(t, w.URL(t, p), monitorUser, monitorPass)
		if code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
		see(p, body)
	}
	// The dashboard shows the archived task's reason (scrubbed, not empty).
	_, archived := httpGet(t, w.URL(t, "/monitoring/api/queues/"+url.PathEscape(tasks.QueueName("oa"))+"/archived_tasks"), monitorUser, monitorPass)
	var arch struct {
		Tasks []struct {
			ErrorMessage string `json:"error_message"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(archived), &arch); err != nil || len(arch.Tasks) == 0 || arch.Tasks[0].ErrorMessage == "" {
		t.Errorf("dashboard shows no reason for the archived task: %.500s", archived)
	} else {
		t.Logf("archived reason on the dashboard: %s", arch.Tasks[0].ErrorMessage)
	}

	// Redis: the token store must hold the current pair; nothing else may.
	rdb := r.Client()
	dump := redisDump(t, rdb)
	storeKey := "b24q:{oa}:oauth"
	stored, ok := dump[storeKey]
	if !ok {
		t.Fatalf("no OAuth token store key %s in Redis; keys: %d", storeKey, len(dump))
	}
	current := hex32.FindAllString(stored, -1)
	if len(current) == 0 {
		t.Fatalf("token store value holds no token")
	}
	for k, v := range dump {
		if k != storeKey {
			see("redis "+k, k+"\n"+v)
		}
	}
	see("worker stdout", w.Stdout())
	see("worker stderr", w.Stderr())

	needles := map[string]string{
		"webhook secret":         webhookSecret,
		"client secret":          oauthClientSecret,
		"initial access token":   oauthAccess0,
		"initial refresh token":  oauthRefresh0,
		"monitor password":       monitorPass,
		"webhook URL with code":  s.WebhookURL,
		"webhook secret escaped": url.PathEscape(webhookSecret),
	}
	for i, tok := range current {
		needles[fmt.Sprintf("current token %d", i)] = tok
	}
	if s.Stats(t).Refreshes == 0 {
		t.Error("no token refresh happened: the rotated tokens were not exercised")
	}
	checkEchoesObserved(t, s, observed)
	scanForSecrets(t, observed, needles)
	t.Run("config errors", func(t *testing.T) { checkConfigErrorsHideSecret(t, r) })
}

// scanForSecrets fails for each of needles (what -> secret) found in an
// observation ("label\ntext"), showing what precedes it. Rotated tokens the
// test never saw are 32 hex digits like every simulator secret: none may
// show in the worker's logs either.
func scanForSecrets(t *testing.T, observed []string, needles map[string]string) {
	t.Helper()
	t.Logf("scanning %d observations for %d secrets", len(observed), len(needles))
	for _, o := range observed {
		label, text, _ := strings.Cut(o, "\n")
		for what, secret := range needles {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s leaks the %s: ...%s...", label, what, text[max(0, i-120):i])
			}
		}
		if label == "worker stdout" || label == "worker stderr" {
			if m := hex32.FindString(text); m != "" {
				t.Errorf("%s holds a 32-hex-digit value (a token?): %s", label, m)
			}
		}
	}
}

// checkEchoesObserved logs how many observations hold a portal error
// description that echoed a webhook URL or an OAuth call's URL (redacted,
// since the scan passed or will tell), and fails when none does: then the
// echo fault reached nothing the test scans and proves nothing.
func checkEchoesObserved(t *testing.T, s *simProc, observed []string) {
	t.Helper()
	if n := s.Stats(t).Faults["echo_url"]; n == 0 {
		t.Error("no portal answer echoed the URL (--echo-url-rate): the scan proves less than it should")
	} else {
		t.Logf("%d portal answers echoed the URL with its credentials", n)
	}
	echo := regexp.MustCompile(`Method failed at \S*/rest/(1/[^/"\s]*/|[a-z.]+\?auth=)`)
	webhook, oauth := 0, 0
	for _, o := range observed {
		for _, m := range echo.FindAllStringSubmatch(o, -1) {
			if strings.HasPrefix(m[1], "1/") {
				webhook++
			} else {
				oauth++
			}
		}
	}
	t.Logf("echoed URLs in what was observed: %d of the webhook, %d of OAuth calls", webhook, oauth)
	if webhook+oauth == 0 {
		t.Error("no echoed description reached anything observed: the echo fault proves nothing")
	}
}

// samplePages GETs each of paths on the worker's side port (with the
// monitor credentials) every 300 ms until the returned function is called
// (or the test ends); that function returns every distinct body seen,
// keyed by a label naming the path and the sample. A failed request is
// skipped: the bodies are only scanned for secrets.
func samplePages(t *testing.T, w *proc, paths []string) func() map[string]string {
	stop, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	halt := func() {
		once.Do(func() { close(stop) })
		<-done
	}
	t.Cleanup(halt)
	seen := map[string]string{} // body -> label
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (string, bool) {
		req, err := http.NewRequest(http.MethodGet, "http://"+w.Addr+path, nil)
		if err != nil {
			return "", false
		}
		req.SetBasicAuth(monitorUser, monitorPass)
		resp, err := client.Do(req)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err == nil
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			for _, p := range paths {
				if body, ok := get(p); ok {
					if _, dup := seen[body]; !dup {
						seen[body] = fmt.Sprintf("GET %s (sample %d, during the imports)", p, n)
					}
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() map[string]string {
		halt()
		out := make(map[string]string, len(seen))
		for body, label := range seen {
			out[label] = body
		}
		return out
	}
}

// seeWorkerPages passes the worker's own pages to see: the imports index,
// each of ids' import page and the portals page, as HTML and as JSON
// (?format=json), with the monitor credentials. Each must answer 200, the
// JSON form valid JSON.
func seeWorkerPages(t *testing.T, w *proc, ids []string, see func(label, v string)) {
	t.Helper()
	paths := []string{"/imports/", "/portals/"}
	for _, id := range ids {
		paths = append(paths, "/imports/"+url.PathEscape(id))
	}
	for _, p := range paths {
		for _, q := range []string{"", "?format=json"} {
			code, body := httpGet(t, w.URL(t, p+q), monitorUser, monitorPass)
			if code != http.StatusOK {
				t.Errorf("GET %s%s: %d %.300s", p, q, code, body)
			}
			if q != "" && !json.Valid([]byte(body)) {
				t.Errorf("GET %s%s is not JSON: %.300s", p, q, body)
			}
			see("GET "+p+q, body)
		}
	}
}

// checkConfigErrorsHideSecret starts the worker with webhook URLs that are
// rejected and hold the webhook secret (the bare secret pasted alone, a
// wrong scheme, plain http to a remote host, a query, no user ID, a
// password in the userinfo, a host that does not parse), from the
// environment and from the flag. Each must exit 2 naming the setting, and
// print the secret nowhere. (enqueue reads no webhook: nothing to check.)
func checkConfigErrorsHideSecret(t *testing.T, r *redisProc) {
	for _, tc := range []struct{ name, value string }{
		{"bare secret", webhookSecret},
		{"ftp scheme", "ftp://portal.example/rest/1/" + webhookSecret + "/"},
		{"remote http", "http://portal.example/rest/1/" + webhookSecret + "/"},
		{"query", "https://portal.example/rest/1/" + webhookSecret + "/?debug=1"},
		{"no user ID", "https://portal.example/rest/" + webhookSecret + "/"},
		{"extra segment", "https://portal.example/rest/1/" + webhookSecret + "/department.add/"},
		{"userinfo password", "https://admin:" + webhookSecret + "@portal.example/rest/1/abc/"},
		{"unparseable host", "https://portal example/rest/1/" + webhookSecret + "/"},
		{"no scheme", "portal.example/rest/1/" + webhookSecret + "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startWorker(t, workerEnv(r, nil, map[string]string{"B24_WEBHOOK_URL": tc.value}))
			checkRefusedWithoutSecret(t, p, "B24_WEBHOOK_URL")
		})
		t.Run(tc.name+" (flag)", func(t *testing.T) {
			p := startWorker(t, workerEnv(r, nil, nil), "--webhook-url", tc.value)
			checkRefusedWithoutSecret(t, p, "webhook-url")
		})
	}
}

// checkRefusedWithoutSecret: p exits 2 with a message naming setting, and
// neither its stdout nor its stderr holds the webhook secret.
func checkRefusedWithoutSecret(t *testing.T, p *proc, setting string) {
	t.Helper()
	code, exited := p.Wait(10 * time.Second)
	if !exited || code != 2 {
		t.Fatalf("exit %d (exited %v), want 2:\n%s", code, exited, p.Output())
	}
	for name, out := range map[string]string{"stdout": p.Stdout(), "stderr": p.Stderr()} {
		if strings.Contains(out, webhookSecret) {
			t.Errorf("%s holds the webhook secret:\n%s", name, out)
		}
	}
	if !strings.Contains(p.Stderr(), setting) {
		t.Errorf("the error does not name %s:\n%s", setting, p.Stderr())
	}
	t.Logf("refused: %s", strings.TrimSpace(p.Stderr()))
}

// TestAuthRequired: with MONITOR_USER/MONITOR_PASSWORD set, the dashboard
// and the enqueue API answer 401 (JSON) without or with wrong credentials;
// /healthz and /metrics stay open. A worker asked to listen on a
// non-loopback address without credentials refuses to start (exit 2).
func TestAuthRequired(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t)
	w := startWorker(t, workerEnv(r, s, map[string]string{"MONITOR_USER": monitorUser, "MONITOR_PASSWORD": monitorPass}))
	waitProcessing(t, w, 10*time.Second)
	for _, tc := range []struct {
		method, path string
		user, pass   string
		want         int
	}{
		{"GET", "/monitoring/", "", "", 401},
		{"GET", "/monitoring/api/queues", "", "", 401},
		{"GET", "/monitoring/api/queues", monitorUser, "wrong", 401},
		{"GET", "/monitoring/api/queues", "admin", monitorPass, 401},
		{"POST", "/v1/departments", "", "", 401},
		{"POST", "/v1/imports", "", "", 401},
		{"GET", "/v1/imports/x", "", "", 401},
		{"GET", "/monitoring/api/queues", monitorUser, monitorPass, 200},
		{"GET", "/healthz", "", "", 200},
		{"GET", "/metrics", "", "", 200},
	} {
		t.Run(tc.method+tc.path+"/"+tc.user, func(t *testing.T) {
			code, body, ctype := do(t, tc.method, w.URL(t, tc.path), tc.user, tc.pass, "application/json", []byte(`{"name":"X","parent_id":1}`))
			if code != tc.want {
				t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, code, tc.want, body)
			}
			if code == 401 {
				if !strings.HasPrefix(ctype, "application/json") || !json.Valid([]byte(body)) {
					t.Errorf("401 is not JSON: %s %q", ctype, body)
				}
				if strings.Contains(body, monitorPass) {
					t.Error("401 echoes the password")
				}
			}
		})
	}
	if n := s.Stats(t).DepartmentsCreated; n != 0 {
		t.Errorf("an unauthenticated request created %d departments", n)
	}

	t.Run("non-loopback without credentials", func(t *testing.T) {
		p := startWorker(t, workerEnv(r, s, map[string]string{"WORKER_LISTEN": "0.0.0.0:0"}))
		code, exited := p.Wait(10 * time.Second)
		if !exited || code != 2 {
			t.Fatalf("worker on 0.0.0.0 without credentials: exit %d (exited %v), want 2", code, exited)
		}
		if !strings.Contains(p.Stderr(), "MONITOR_USER") {
			t.Errorf("the refusal does not say what to set:\n%s", p.Stderr())
		}
	})
}

// do sends one request and returns status, body and Content-Type.
func do(t testing.TB, method, u, user, pass, ctype string, body []byte) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

// TestAPIBadInput: the enqueue API of a running worker answers bad requests
// with 4xx and a JSON {"error": ...}, and enqueues nothing.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t)
	w := startWorker(t, workerEnv(r, s, map[string]string{"MONITOR_USER": monitorUser, "MONITOR_PASSWORD": monitorPass}))
	waitProcessing(t, w, 10*time.Second)
	big := []byte(`{"name":"` + strings.Repeat("x", 70<<10) + `","parent_id":1}`)
	hugeImport := []byte(`{"departments":[{"key":"a","name":"` + strings.Repeat("y", 9<<20) + `","parent_id":1}]}`)
	for _, tc := range []struct {
		name, path, ctype string
		auth              bool
		body              []byte
		want              int
	}{
		{"wrong content type", "/v1/departments", "text/plain", true, []byte(`{"name":"A","parent_id":1}`), 415},
		{"no content type", "/v1/departments", "", true, []byte(`{"name":"A","parent_id":1}`), 415},
		{"oversized task", "/v1/departments", "application/json", true, big, 413},
		{"oversized import", "/v1/imports", "application/json", true, hugeImport, 413},
		{"missing auth", "/v1/departments", "application/json", false, []byte(`{"name":"A","parent_id":1}`), 401},
		{"malformed JSON", "/v1/departments", "application/json", true, []byte(`{"name":`), 400},
		{"unknown field", "/v1/departments", "application/json", true, []byte(`{"name":"A","parent_id":1,"secret":1}`), 400},
		{"empty name", "/v1/departments", "application/json", true, []byte(`{"name":"","parent_id":1}`), 400},
		{"invalid import", "/v1/imports", "application/json", true, []byte(`{"departments":[{"key":"a","name":"A","parent":"zz"}]}`), 400},
		{"wrong method", "/v1/departments", "application/json", true, nil, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.want == 405 {
				method = "GET"
			}
			user := ""
			if tc.auth {
				user = monitorUser
			}
			code, body, ctype := do(t, method, w.URL(t, tc.path), user, monitorPass, tc.ctype, tc.body)
			if code != tc.want {
				t.Errorf("%d, want %d: %.300s", code, tc.want, body)
			}
			var e struct {
				Error string `json:"error"`
			}
			if !strings.HasPrefix(ctype, "application/json") || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("answer is not a JSON error: %s %.300s", ctype, body)
			}
		})
	}
	in := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr()})
	t.Cleanup(func() { _ = in.Close() })
	if qi, err := in.GetQueueInfo(tasks.QueueName("default")); err == nil && qi.Size > 0 {
		t.Errorf("bad requests enqueued %d tasks", qi.Size)
	}
}

// TestGarbagePayload: tasks of our types whose payload does not decode (a
// producer in another service sent garbage) are archived after one run with
// SkipRetry and a reason that says so; the worker keeps running and
// processes the next good task.
func TestGarbagePayload(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := startSim(t)
	w := startWorker(t, workerEnv(r, s, nil))
	waitProcessing(t, w, 10*time.Second)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	q := tasks.QueueName("default")
	bad := map[string][]byte{
		"not json":      []byte("\x00\xffgarbage{"),
		"wrong types":   []byte(`{"portal":7,"fields":"x"}`),
		"empty":         nil,
		"json null":     []byte(`null`),
		"workplace bad": []byte(`[1,2,3]`),
	}
	ids := map[string]string{}
	for name, payload := range bad {
		typ := tasks.TypeDepartmentCreate
		if strings.HasPrefix(name, "workplace") {
			typ = tasks.TypeWorkplaceCreate
		}
		info, err := client.Enqueue(asynq.NewTask(typ, payload), asynq.Queue(q), asynq.MaxRetry(20))
		if err != nil {
			t.Fatal(err)
		}
		ids[info.ID] = name
	}
	in := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr()})
	t.Cleanup(func() { _ = in.Close() })
	var archived []*asynq.TaskInfo
	if !waitFor(20*time.Second, func() bool {
		archived, _ = in.ListArchivedTasks(q)
		return len(archived) == len(bad)
	}) {
		qi, _ := in.GetQueueInfo(q)
		t.Fatalf("%d of %d garbage tasks archived; queue %+v", len(archived), len(bad), qi)
	}
	for _, a := range archived {
		name := ids[a.ID]
		if a.Retried != 0 {
			t.Errorf("%s: retried %d times, want 0 (SkipRetry)", name, a.Retried)
		}
		low := strings.ToLower(a.LastErr)
		if !strings.Contains(low, "payload") && !strings.Contains(low, "decode") && !strings.Contains(low, "invalid") {
			t.Errorf("%s: last error %q does not say the payload is bad", name, a.LastErr)
		}
		t.Logf("%s → %s", name, a.LastErr)
	}
	if w.Exited() {
		t.Fatal("the worker exited on garbage")
	}
	out, errOut, code := runEnqueue(t, enqueueEnv(r), "department", "--name", "Good", "--parent", "1")
	if code != 0 {
		t.Fatalf("enqueue: %d %s%s", code, out, errOut)
	}
	if !waitFor(15*time.Second, func() bool { return s.Stats(t).DepartmentsCreated == 1 }) {
		t.Fatal("the worker did not process a good task after the garbage")
	}
	if st := s.Stats(t); st.Requests != 1 {
		t.Errorf("garbage tasks reached the portal: %d requests for one good task", st.Requests)
	}
}
