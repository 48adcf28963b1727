package tasks

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
)

// fleet is a simulated portal and N asynq worker servers, each with its own
// Redis connections and limiter instance, as N worker processes would have.
// Its portal name (and so its queue and key prefix) is unique to the test.
type fleet struct {
	sim       *b24test.Portal
	webhook   string
	portal    string
	prefix    string
	client    *asynq.Client
	inspector *asynq.Inspector
	log       *requestLog
	servers   []*asynq.Server
}

// requestLog records when the portal answered what, to check pacing.
type requestLog struct {
	mu      sync.Mutex
	entries []loggedRequest
}

type loggedRequest struct {
	at     time.Time
	status int
	// foreign marks requests a test sent past the fleet (another app on
	// the same portal), by the X-Foreign header.
	foreign bool
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		// Hijacking (lost responses) needs the original writer.
		if hj, ok := w.(http.Hijacker); ok {
			next.ServeHTTP(struct {
				http.ResponseWriter
				http.Hijacker
			}{rec, hj}, req)
		} else {
			next.ServeHTTP(rec, req)
		}
		l.mu.Lock()
		l.entries = append(l.entries, loggedRequest{at: at, status: rec.status, foreign: req.Header.Get("X-Foreign") != ""})
		l.mu.Unlock()
	})
}

func (l *requestLog) snapshot() []loggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedRequest(nil), l.entries...)
}

type fleetConfig struct {
	sim         b24test.Config
	limits      limiter.Config
	servers     int
	concurrency int
	// webhook overrides the portal credentials the workers use.
	webhook func(good string) string
	// claims adjusts the workers' object claims (after testRequestCap).
	claims []ClaimsOption
	// timeout of one REST call (default 2 s).
	timeout time.Duration
}

// limiterConfig50 is a budget a little below the simulator's 50/50.
func limiterConfig50() limiter.Config { return limiter.Config{Rate: 48, Burst: 45} }

// testRequestCap is how long the tests' workers wait before they look up
// an object whose create request's answer was lost. The simulator answers
// (or drops) a request only after doing its work, so a request is never
// still running once its answer is lost; a second keeps the tests quick.
var testRequestCap = WithRequestCap(time.Second)

func startFleet(t *testing.T, cfg fleetConfig) *fleet {
	t.Helper()
	prefix := testutil.Unique("t")
	f := &fleet{
		sim:    b24test.New(cfg.sim),
		portal: fmt.Sprintf("e2e-%d", rand.Int64N(1<<40)),
		prefix: prefix,
		log:    &requestLog{},
	}
	ts := httptest.NewServer(f.log.wrap(f.sim))
	t.Cleanup(ts.Close)
	f.webhook = ts.URL + "/rest/1/" + f.sim.Config().WebhookSecret + "/"
	webhook := f.webhook
	if cfg.webhook != nil {
		webhook = cfg.webhook(webhook)
	}
	redisOpt := asynq.RedisClientOpt{Addr: testutil.RedisAddr, DB: testRedisDB}
	f.client = asynq.NewClient(redisOpt)
	f.inspector = asynq.NewInspector(redisOpt)
	t.Cleanup(func() {
		_ = f.inspector.DeleteQueue(QueueName(f.portal), true)
		f.client.Close()
		f.inspector.Close()
	})
	for i := range cfg.servers {
		rdb := testutil.Redis(t, testRedisDB)
		logger := bundleLogger().With("server", i)
		lim := limiter.New(rdb, cfg.limits, limiter.WithPrefix(prefix))
		timeout := cfg.timeout
		if timeout == 0 {
			timeout = 2 * time.Second
		}
		portal, err := NewPortal(PortalConfig{Name: f.portal, WebhookURL: webhook, Limits: cfg.limits, Timeout: timeout}, lim, nil, nil, logger)
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewHandler(HandlerConfig{Portals: []*Portal{portal}, Claims: NewClaims(rdb, prefix, append([]ClaimsOption{testRequestCap}, cfg.claims...)...), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		srv := asynq.NewServer(redisOpt, asynq.Config{
			Concurrency:              cfg.concurrency,
			Queues:                   map[string]int{QueueName(f.portal): 1},
			RetryDelayFunc:           fastRetryDelay,
			IsFailure:                IsFailure,
			DelayedTaskCheckInterval: 200 * time.Millisecond,
			ShutdownTimeout:          3 * time.Second,
			Logger:                   bundleAsynqLogger{},
		})
		if err := srv.Start(h.Mux()); err != nil {
			t.Fatal(err)
		}
		f.servers = append(f.servers, srv)
		t.Cleanup(srv.Shutdown)
	}
	return f
}

// fastRetryDelay keeps RetryDelay's parking (to the block's end) but shortens
// transient backoff so fault tests finish in seconds.
func fastRetryDelay(n int, err error, task *asynq.Task) time.Duration {
	if !IsFailure(err) {
		return RetryDelay(n, err, task)
	}
	return RetryDelay(n, err, task) / 40
}

func (f *fleet) enqueue(t *testing.T, task *asynq.Task, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

func (f *fleet) department(t *testing.T, name string, parent int64) string {
	task, err := NewDepartmentTask(DepartmentPayload{Portal: f.portal, Name: name, Parent: parent})
	return f.enqueue(t, task, err)
}

func (f *fleet) workplace(t *testing.T, title string) string {
	task, err := NewWorkplaceTask(WorkplacePayload{Portal: f.portal, Title: title, TypeIDs: []int64{1}})
	return f.enqueue(t, task, err)
}

// drain waits until every task of the fleet's queue has finished (completed
// or archived) and returns the queue's final info.
func (f *fleet) drain(t *testing.T, total int, timeout time.Duration) *asynq.QueueInfo {
	t.Helper()
	var q *asynq.QueueInfo
	testutil.WaitFor(t, timeout, "queue drained", func() (bool, string) {
		var err error
		q, err = f.inspector.GetQueueInfo(QueueName(f.portal))
		done := err == nil && q.Completed+q.Archived == total && q.Pending+q.Active+q.Scheduled+q.Retry == 0
		return done, fmt.Sprintf("%+v (err %v); portal stats %+v", q, err, f.sim.Stats())
	})
	return q
}

func (f *fleet) archived(t *testing.T) []*asynq.TaskInfo {
	t.Helper()
	tasks, err := f.inspector.ListArchivedTasks(QueueName(f.portal), asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

func asynqTask(typ, payload string) *asynq.Task { return asynq.NewTask(typ, []byte(payload)) }
