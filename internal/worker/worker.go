// Package worker is the runtime of the worker command: it turns a validated
// config.Worker into asynq servers processing the tasks package's handlers,
// one for each portal that has work and that this worker owns (see
// coordinator.go: idle portals cost nothing), plus the HTTP side port (health,
// Prometheus metrics, the embedded asynqmon dashboard and whatever else is
// mounted, such as the enqueue API), and runs them until its context ends.
//
// Start-up with Redis away: Run does not exit. It serves the side port at
// once (/healthz answers 503), logs a clear error and retries the Redis
// connection with capped exponential backoff, and starts processing as soon
// as Redis answers. A crash loop under an orchestrator would add nothing but
// noise, and the side port stays useful for probes meanwhile.
//
// Secrets (webhook codes, OAuth secrets and tokens, the monitor and Redis
// passwords) never reach a log line, a metric or a dashboard answer: portals
// are logged by name, URLs only through config.RedactURL.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/internal/keys"
	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// DefaultPrefix is the prefix of the worker's own Redis keys (limiter state,
// attempt markers, OAuth tokens). Every process of a fleet must use the same.
const DefaultPrefix = keys.DefaultPrefix

// Timeouts and intervals of the runtime.
const (
	// DelayedTaskCheckInterval is how often asynq moves due scheduled and
	// retry tasks to pending: parked tasks come back within a second of
	// their time.
	DelayedTaskCheckInterval = time.Second
	// HTTPShutdownTimeout bounds how long open side-port requests may finish
	// at shutdown.
	HTTPShutdownTimeout = 5 * time.Second
	// redisRetryMin and redisRetryMax bound the backoff between start-up
	// attempts to reach Redis.
	redisRetryMin = 500 * time.Millisecond
	redisRetryMax = 30 * time.Second
	// abandonedGrace is how long Run waits, after cancelling them, for task
	// runs that outlived ShutdownTimeout to unwind before closing Redis.
	abandonedGrace = 2 * time.Second
)

// Option adjusts New.
type Option func(*options)

type options struct {
	prefix  string
	imports func(redis.UniversalClient) (tasks.ImportTracker, error)
}

// WithPrefix sets the prefix of the worker's own Redis keys (default
// DefaultPrefix). Tests use it to keep their state apart.
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithImports replaces the import tracker the handlers record import items
// through (called once, by New, with the worker's Redis client). By default
// the worker uses tasks.NewImports on its own Redis and key prefix, which is
// also what serves the enqueue API on the side port.
func WithImports(newTracker func(rdb redis.UniversalClient) (tasks.ImportTracker, error)) Option {
	return func(o *options) { o.imports = newTracker }
}

// Worker is one worker process's runtime. Build it with New, serve it with
// Run (once). Handler and Mount may be used concurrently with Run.
type Worker struct {
	cfg     config.Worker
	logger  *slog.Logger
	rdb     redis.UniversalClient
	limiter *limiter.Limiter
	tokens  *fleet.TokenStore
	metrics *tasks.Metrics
	handler *tasks.Handler
	queues  map[string]int
	coord   *coordinator

	registry       *prometheus.Registry
	metricsHandler http.Handler
	monitor        *asynqmon.HTTPHandler
	mux            *http.ServeMux
	secrets        []string

	healthy atomic.Bool // last asynq health check (or start-up ping) succeeded
	ran     atomic.Bool

	// base is the parent context of every task run; cancelled once asynq
	// has given up on the running tasks at shutdown (see Run).
	base       context.Context
	cancelBase context.CancelFunc
	inflight   sync.WaitGroup // task runs, including ones asynq abandoned

	mu   sync.Mutex
	addr net.Addr
}

// New builds a worker for cfg (as config.LoadWorker returns it). It connects
// to nothing: Redis is first contacted by Run or a side-port request. It
// re-checks what config validates that matters for safety (a portal, and
// credentials on a non-loopback side port) and returns an error without any
// secret. logger nil discards logs.
func New(cfg config.Worker, logger *slog.Logger, opts ...Option) (*Worker, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{prefix: DefaultPrefix}
	for _, opt := range opts {
		opt(&o)
	}
	if err := check(cfg); err != nil {
		return nil, err
	}
	connOpt, err := cfg.Redis.ConnOpt()
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	rdb, err := cfg.Redis.UniversalClient()
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{
		cfg:      cfg,
		logger:   logger,
		rdb:      rdb,
		limiter:  limiter.New(rdb, limitsOf(cfg.Defaults), limiter.WithPrefix(o.prefix), limiter.WithLogger(logger)),
		tokens:   fleet.NewTokenStore(rdb, o.prefix),
		queues:   make(map[string]int, len(cfg.Portals)),
		registry: prometheus.NewRegistry(),
		mux:      http.NewServeMux(),
		secrets:  secretsOf(cfg),
	}
	w.base, w.cancelBase = context.WithCancel(context.Background())
	if err := w.build(connOpt, o); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return w, nil
}

// check re-validates the safety-relevant parts of cfg.
func check(cfg config.Worker) error {
	var problems []string
	if len(cfg.Portals) == 0 && !cfg.RegisteredOnly {
		problems = append(problems, "no portal configured")
	}
	if (cfg.MonitorUser == "") != (cfg.MonitorPassword == "") {
		problems = append(problems, "MONITOR_USER and MONITOR_PASSWORD must be set together")
	}
	if cfg.Listen != "" {
		host, _, err := net.SplitHostPort(cfg.Listen)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("listen address %q must be host:port", cfg.Listen))
		case !b24.IsLoopbackHost(host) && cfg.MonitorUser == "":
			problems = append(problems, fmt.Sprintf("listen address %s is not loopback: set MONITOR_USER and MONITOR_PASSWORD", cfg.Listen))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("worker: %s", strings.Join(problems, "; "))
	}
	return nil
}

func limitsOf(l config.Limits) limiter.Config {
	return limiter.Config{Rate: l.Rate, Burst: l.Burst, OperatingLimit: l.OperatingLimit, OperatingWindow: l.OperatingWindow}
}

// portalConfig maps a configured portal to the tasks package's form. OAuth
// portals keep their tokens under the portal's name in the TokenStore.
func portalConfig(p config.Portal, timeout time.Duration, insecureHosts []string) tasks.PortalConfig {
	pc := tasks.PortalConfig{Name: p.Name, WebhookURL: p.WebhookURL, Limits: limitsOf(p.Limits), Timeout: timeout,
		InsecureHTTPHosts: insecureHosts}
	if p.OAuth != nil {
		pc.OAuth = &b24.OAuthConfig{
			PortalURL:     p.OAuth.PortalURL,
			ClientID:      p.OAuth.ClientID,
			ClientSecret:  p.OAuth.ClientSecret,
			Token:         b24.Token{AccessToken: p.OAuth.AccessToken, RefreshToken: p.OAuth.RefreshToken},
			TokenEndpoint: p.OAuth.TokenEndpoint,
			StoreKey:      p.Name,
		}
	}
	return pc
}

// claimsOptions sets how long a create request may still run at the
// portal (B24_REQUEST_LIMIT), and makes object claims wait for a replica
// with Sentinel, where a failover may otherwise lose a claim written just
// before it.
func claimsOptions(cfg config.Worker) []tasks.ClaimsOption {
	var opts []tasks.ClaimsOption
	if cfg.RequestLimit > 0 {
		opts = append(opts, tasks.WithRequestCap(cfg.RequestLimit))
	}
	if r := cfg.Redis; len(r.ClusterAddrs) == 0 && strings.HasPrefix(r.URL, "redis-sentinel://") {
		opts = append(opts, tasks.WithReplicaAck(1, 100*time.Millisecond))
	}
	return opts
}

func (w *Worker) build(connOpt asynq.RedisConnOpt, o options) error {
	m, err := tasks.NewMetrics(w.registry)
	if err != nil {
		return fmt.Errorf("worker: register metrics: %w", err)
	}
	w.metrics = m
	// The clients of the configured portals are built now, so that a bad
	// one stops the worker at start; registered portals' clients are built
	// when the coordinator first runs their queue.
	portals := make([]*tasks.Portal, 0, len(w.cfg.Portals))
	for _, p := range w.cfg.Portals {
		var store b24.TokenStore
		if p.OAuth != nil {
			store = w.tokens
		}
		tp, err := tasks.NewPortal(portalConfig(p, w.cfg.Timeout, w.cfg.InsecureHTTPHosts), w.limiter, store, m, w.logger.With("portal", p.Name))
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		portals = append(portals, tp)
		w.queues[tasks.QueueName(p.Name)] = 1
	}
	inspector := asynq.NewInspectorFromRedisClient(w.rdb)
	hc := tasks.HandlerConfig{
		Portals:   portals,
		Claims:    tasks.NewClaims(w.rdb, o.prefix, claimsOptions(w.cfg)...),
		Logger:    w.logger,
		Metrics:   m,
		Inspector: inspector,
	}
	// The import engine shares the worker's Redis connection: the same
	// connection kind (single, Sentinel, Cluster) for the queue, the limiter
	// and the import state.
	producer := asynq.NewClientFromRedisClient(w.rdb)
	// Import items are always enqueued grouped: every worker aggregates
	// them (see below), so released children join batches too.
	imports := tasks.NewImports(w.rdb, producer, o.prefix, w.logger, tasks.WithBatch(true))
	hc.Imports = imports
	if o.imports != nil {
		if hc.Imports, err = o.imports(w.rdb); err != nil {
			return fmt.Errorf("worker: import tracker: %w", err)
		}
	}
	if w.handler, err = tasks.NewHandler(hc); err != nil {
		return fmt.Errorf("worker: %w", err)
	}

	for _, c := range []prometheus.Collector{
		asynqmetrics.NewQueueMetricsCollector(inspector),
		newRateCollector(w.limiter, w.watched, w.logger),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "b24q_portals_held",
			Help: "Portal queues this worker runs now: portals with work that it owns (the others cost it nothing)."},
			func() float64 { return float64(len(w.coord.Held())) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := w.registry.Register(c); err != nil {
			return fmt.Errorf("worker: register metrics: %w", err)
		}
	}
	w.metricsHandler = promhttp.HandlerFor(w.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(w.logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})

	w.coord = newCoordinator(w, o.prefix)
	w.coord.mux = w.track(w.handler.BatchMux())
	w.monitor = asynqmon.New(asynqmon.Options{
		RootPath:         "/monitoring",
		RedisConnOpt:     connOpt,
		PayloadFormatter: PayloadFormatter,
		ResultFormatter:  ResultFormatter,
		// Without credentials anyone who reaches the (loopback) port could
		// delete or re-run tasks: only look then.
		ReadOnly: w.cfg.MonitorUser == "",
	})
	w.routes()
	w.mountHTTP(imports, producer, inspector, o.prefix)
	return nil
}

// Queues returns the asynq queues of the portals of this worker's
// configuration, each with weight 1 (it runs each while it has work and
// this worker owns it; registered portals come on top). The map is a copy.
func (w *Worker) Queues() map[string]int {
	out := make(map[string]int, len(w.queues))
	for q, n := range w.queues {
		out[q] = n
	}
	return out
}

// Registry returns the Prometheus registry served at /metrics, so that
// mounted handlers can add their own series.
func (w *Worker) Registry() *prometheus.Registry { return w.registry }

// Addr returns the address the side port listens on once Run has bound it
// (useful with port 0), or nil.
func (w *Worker) Addr() net.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// Run serves until ctx is cancelled, then shuts down gracefully. In order:
// it binds the side port (if cfg.Listen is set; a bind error is returned at
// once), waits for Redis (logging and retrying with backoff, see the package
// doc), starts the asynq server, and blocks. On cancellation it stops
// fetching new tasks, lets running ones finish within cfg.ShutdownTimeout
// (asynq puts the unfinished ones back in their queue), closes the side port
// within HTTPShutdownTimeout and closes Redis. It returns nil after a clean
// shutdown. Run may be called once; the Worker is unusable afterwards.
func (w *Worker) Run(ctx context.Context) error {
	if w.ran.Swap(true) {
		return errors.New("worker: Run called twice")
	}
	defer w.close()

	httpSrv, httpDone, err := w.serveSidePort()
	if err != nil {
		return err // a *ListenError: another process holds the port
	}

	queues := make([]string, 0, len(w.queues))
	for q := range w.queues {
		queues = append(queues, q)
	}
	slices.Sort(queues)
	names := make([]string, len(w.cfg.Portals))
	for i, p := range w.cfg.Portals {
		names[i] = p.Name
	}
	w.logger.Info("worker starting",
		"portals", names, "queues", queues, "registered_only", w.cfg.RegisteredOnly, "portal_replicas", w.cfg.PortalReplicas,
		"concurrency", w.cfg.Concurrency,
		"listen", w.cfg.Listen, "addr", addrString(w.Addr()), "redis", w.cfg.Redis.String(),
		"shutdown_timeout", w.cfg.ShutdownTimeout.String(), "dashboard_auth", w.cfg.MonitorUser != "")

	var runErr error
	if err := w.waitRedis(ctx); err == nil {
		// The coordinator's first tick joins the fleet (producers see this
		// worker's portals from then on) and starts the queues with work.
		coordCtx, stopCoord := context.WithCancel(context.Background())
		started, coordDone := make(chan struct{}), make(chan struct{})
		go func() { defer close(coordDone); w.coord.run(coordCtx, started) }()
		<-started
		w.logger.Info("processing tasks")
		select {
		case <-ctx.Done():
		case err := <-httpDone:
			runErr = fmt.Errorf("worker: side port stopped: %w", err)
			httpDone = nil
		}
		w.logger.Info("worker stopping: no new tasks; waiting for running ones", "shutdown_timeout", w.cfg.ShutdownTimeout.String())
		start := time.Now()
		stopCoord()
		<-coordDone
		// asynq has put the tasks still running back in their queues but
		// does not stop them: cancel them now so no call outlives Run
		// (a create that still lands is adopted by the next attempt's
		// lookup, see tasks.Claims), and let them unwind briefly.
		w.cancelBase()
		if !waitGroup(&w.inflight, abandonedGrace) {
			w.logger.Warn("tasks still running after shutdown; their outcome is left to the next attempt")
		}
		w.logger.Info("task processing stopped", "waited_ms", time.Since(start).Milliseconds())
	}

	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), HTTPShutdownTimeout)
		if err := httpSrv.Shutdown(sctx); err != nil {
			w.logger.Warn("side port did not close in time", "err", err)
			_ = httpSrv.Close()
		}
		cancel()
		if httpDone != nil {
			if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
				runErr = fmt.Errorf("worker: side port: %w", err)
			}
		}
	}
	if runErr != nil {
		w.logger.Error("worker stopped", "err", runErr.Error())
	} else {
		w.logger.Info("worker stopped")
	}
	return runErr
}

// track counts task runs in w.inflight.
func (w *Worker) track(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.inflight.Add(1)
		defer w.inflight.Done()
		return h.ProcessTask(ctx, t)
	})
}

// waitGroup waits for wg at most d and reports whether it finished.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// close releases the dashboard's connection and Redis.
func (w *Worker) close() {
	w.cancelBase()
	if err := w.limiter.Close(); err != nil {
		w.logger.Debug("close limiter", "err", err)
	}
	if err := w.monitor.Close(); err != nil {
		w.logger.Debug("close dashboard", "err", err)
	}
	if err := w.rdb.Close(); err != nil {
		w.logger.Debug("close redis", "err", err)
	}
}

// Close releases the Redis connections of a Worker that was built but never
// Run. Run closes them itself.
func (w *Worker) Close() error {
	if w.ran.Swap(true) {
		return nil
	}
	w.close()
	return nil
}
