package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/tasks"
)

// Timing of the coordinator. A portal's first task waits at most about
// fleetTick for a worker to start its queue, plus asynq's own poll (a
// second).
const (
	// fleetTick is how often the coordinator reads which portals have work.
	fleetTick = time.Second
	// beatEvery is how often a worker writes its heartbeat, memberTTL how
	// long it counts as alive after one: a worker killed without a word is
	// replaced by the others within memberTTL plus a tick.
	beatEvery = 2 * time.Second
	memberTTL = 10 * time.Second
	// settleEvery is how often a running queue is checked for work left;
	// one found empty is stopped, and the portal costs nothing until its
	// next task.
	settleEvery = 5 * time.Second
	// sweepPerTick is how many idle portals the fleet's first worker looks
	// at per tick for tasks enqueued without marking the portal active (a
	// bare asynq.Client): 10,000 portals in about 7 minutes.
	sweepPerTick = 25
	// startRetry is how long a worker waits before it tries again to run a
	// queue it could not start (a registration whose credential cannot be
	// read or built), so that it logs the problem every 10 s, not every tick.
	startRetry = 10 * time.Second
)

// coordinator runs the asynq queue of each portal this worker owns while
// the portal has work (see package fleet and tasks.Activity): one asynq
// server per such portal, so that a slow or blocked portal never takes the
// worker slots of another, and none for the thousands of idle ones.
type coordinator struct {
	w        *Worker
	id, host string
	activity tasks.Activity
	members  fleet.Members
	registry *fleet.Registry
	static   map[string]config.Portal
	replicas int
	mux      asynq.Handler

	mu       sync.Mutex
	held     map[string]*heldPortal
	stopping map[string]chan struct{} // portal → closed when its server stopped
	stops    sync.WaitGroup

	// Read and written by the loop only.
	version   int64
	revisions map[string]int64     // registered portals → revision
	retryAt   map[string]time.Time // portals whose queue failed to start → next try
	live      []fleet.Member
	lastBeat  time.Time
	sweep     []string
}

// heldPortal is the running queue of one portal.
type heldPortal struct {
	server   *asynq.Server
	revision int64 // of its registration; 0 for a portal of the configuration
	settled  time.Time
}

func newCoordinator(w *Worker, prefix string) *coordinator {
	host, _ := os.Hostname()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	static := make(map[string]config.Portal, len(w.cfg.Portals))
	for _, p := range w.cfg.Portals {
		static[p.Name] = p
	}
	return &coordinator{
		w:         w,
		id:        fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(suffix[:])),
		host:      host,
		activity:  tasks.NewActivity(w.rdb, prefix),
		members:   fleet.NewMembers(w.rdb, prefix),
		registry:  fleet.NewRegistry(w.rdb, prefix),
		static:    static,
		replicas:  w.cfg.PortalReplicas,
		held:      map[string]*heldPortal{},
		stopping:  map[string]chan struct{}{},
		revisions: map[string]int64{},
		retryAt:   map[string]time.Time{},
	}
}

// Held returns the portals whose queue this worker runs now, sorted.
func (c *coordinator) Held() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.held))
}

// run ticks until ctx ends, then stops every queue (running tasks get
// ShutdownTimeout) and leaves the fleet. The first tick has run when
// started is closed.
func (c *coordinator) run(ctx context.Context, started chan<- struct{}) {
	c.tick(ctx)
	close(started)
	t := time.NewTicker(fleetTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.stopAll()
			lctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.members.Leave(lctx, c.id)
			cancel()
			return
		case <-t.C:
			c.tick(ctx)
		}
	}
}

// tick brings the running queues in line with the portals that have work
// and that this worker owns. A Redis error leaves everything as it is.
func (c *coordinator) tick(ctx context.Context) {
	err := c.refresh(ctx)
	var active []string
	if err == nil {
		active, err = c.activity.Portals(ctx)
	}
	c.w.healthChecked(err)
	if err != nil {
		if ctx.Err() == nil {
			c.w.logger.Warn("fleet: cannot read the portals with work; keeping the queues as they are", "err", err)
		}
		return
	}
	want := c.wanted(active)
	for name, h := range c.heldCopy() {
		if rev, ok := want[name]; !ok || rev != h.revision {
			c.stop(name, "not owned or changed")
		}
	}
	now := time.Now()
	for name, rev := range want {
		if now.Before(c.retryAt[name]) {
			continue
		}
		if err := c.start(ctx, name, rev); err != nil {
			c.retryAt[name] = now.Add(startRetry)
			c.w.logger.Error("fleet: cannot run the queue of a portal; its tasks wait", "portal", name, "err", err,
				"retry_in", startRetry.String())
			continue
		}
		delete(c.retryAt, name)
	}
	c.settle(ctx)
	c.sweepIdle(ctx, active)
}

// refresh writes the heartbeat and reads the members every beatEvery, and
// the registry's revisions when its version moved.
func (c *coordinator) refresh(ctx context.Context) error {
	now := time.Now()
	if now.Sub(c.lastBeat) >= beatEvery {
		names := slices.Sorted(maps.Keys(c.static))
		if err := c.members.Beat(ctx, fleet.Member{ID: c.id, Expires: now.Add(memberTTL), Portals: names,
			Host: c.host, PID: os.Getpid()}); err != nil {
			return err
		}
		live, err := c.members.Live(ctx, now)
		if err != nil {
			return err
		}
		c.live, c.lastBeat = live, now
	}
	v, err := c.registry.Version(ctx)
	if err != nil || v == c.version {
		return err
	}
	// Only what changed since the last revision seen; a change whose
	// revision is counted but not yet recorded is read at the next tick
	// (the version stays ahead of c.version until then).
	changes, seen, err := c.registry.Changes(ctx, c.version)
	if err != nil {
		return err
	}
	for name, rev := range changes {
		if rev == 0 {
			delete(c.revisions, name)
		} else {
			c.revisions[name] = rev
		}
	}
	c.version = seen
	return nil
}

// wanted returns the portals of active this worker should run, with the
// revision of their registration (0 for its own portals).
func (c *coordinator) wanted(active []string) map[string]int64 {
	want := map[string]int64{}
	for _, name := range active {
		_, mine := c.static[name]
		rev, registered := c.revisions[name]
		if !mine && !registered {
			continue // nobody here can serve it; its tasks wait
		}
		if mine {
			rev, registered = 0, false // the configuration wins over a registration
		}
		owners := fleet.Owners(name, registered, c.live, c.replicas)
		if len(c.live) == 0 || slices.Contains(owners, c.id) {
			want[name] = rev
		}
	}
	return want
}

func (c *coordinator) heldCopy() map[string]*heldPortal {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*heldPortal, len(c.held))
	for n, h := range c.held {
		out[n] = h
	}
	return out
}

// start runs portal name's queue unless it runs already (or is still
// stopping: the next tick starts it).
func (c *coordinator) start(ctx context.Context, name string, revision int64) error {
	c.mu.Lock()
	_, held := c.held[name]
	_, stopping := c.stopping[name]
	c.mu.Unlock()
	if held || stopping {
		return nil
	}
	// A portal of the configuration has had its client since New; a
	// registered one gets it from its registration, again when it changed.
	if _, mine := c.static[name]; !mine {
		p, _, err := c.registry.Load(ctx, name)
		if err != nil {
			return err
		}
		p.Limits = inherit(p.Limits, c.w.cfg.Defaults)
		var store b24.TokenStore
		if p.OAuth != nil {
			store = c.w.tokens
		}
		tp, err := tasks.NewPortal(portalConfig(p, c.w.cfg.Timeout, c.w.cfg.InsecureHTTPHosts), c.w.limiter, store, c.w.metrics,
			c.w.logger.With("portal", name))
		if err != nil {
			return err
		}
		c.w.handler.SetPortal(tp)
	}
	srv := asynq.NewServerFromRedisClient(c.w.rdb, c.w.serverConfig(name))
	if err := srv.Start(c.mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	c.mu.Lock()
	c.held[name] = &heldPortal{server: srv, revision: revision, settled: time.Now()}
	c.mu.Unlock()
	c.w.logger.Info("fleet: running the queue of a portal with work", "portal", name, "queue", tasks.QueueName(name))
	return nil
}

// stop stops running portal name's queue in the background: asynq puts
// the tasks that do not finish within ShutdownTimeout back.
func (c *coordinator) stop(name, why string) {
	c.mu.Lock()
	h, ok := c.held[name]
	if !ok {
		c.mu.Unlock()
		return
	}
	delete(c.held, name)
	done := make(chan struct{})
	c.stopping[name] = done
	c.mu.Unlock()
	c.w.logger.Info("fleet: stopping the queue of a portal", "portal", name, "why", why)
	// Shutdown (which stops fetching first) runs in the background: asynq's
	// Stop alone may take a second, and the loop must keep its heartbeat.
	c.stops.Add(1)
	go func() {
		defer c.stops.Done()
		h.server.Shutdown()
		c.mu.Lock()
		delete(c.stopping, name)
		if _, mine := c.static[name]; !mine {
			c.w.handler.RemovePortal(name)
		}
		c.mu.Unlock()
		close(done)
	}()
}

// stopAll stops every queue at once and waits for them (at most about one
// ShutdownTimeout, as they stop in parallel).
func (c *coordinator) stopAll() {
	for name := range c.heldCopy() {
		c.stop(name, "worker stopping")
	}
	c.stops.Wait()
}

// settle stops the queues found without work (tasks.Activity.Settle), each
// looked at every settleEvery.
func (c *coordinator) settle(ctx context.Context) {
	now := time.Now()
	for name, h := range c.heldCopy() {
		if now.Sub(h.settled) < settleEvery {
			continue
		}
		h.settled = now
		idle, err := c.activity.Settle(ctx, name)
		switch {
		case err != nil:
			c.w.logger.Warn("fleet: cannot look at a portal's queue", "portal", name, "err", err)
		case idle:
			c.stop(name, "no work left")
		}
	}
}

// sweepIdle is the fleet's first worker looking at sweepPerTick portals
// that are not active for tasks enqueued without a mark, and marking them.
func (c *coordinator) sweepIdle(ctx context.Context, active []string) {
	if len(c.live) == 0 || c.live[0].ID != c.id {
		return
	}
	if len(c.sweep) == 0 {
		names, err := c.registry.Names(ctx)
		if err != nil {
			return
		}
		for _, m := range c.live {
			names = append(names, m.Portals...)
		}
		slices.Sort(names)
		c.sweep = slices.Compact(names)
	}
	n := min(sweepPerTick, len(c.sweep))
	batch := c.sweep[:n]
	c.sweep = c.sweep[n:]
	for _, name := range batch {
		if slices.Contains(active, name) {
			continue
		}
		busy, err := tasks.QueueHasWork(ctx, c.w.rdb, name)
		if err != nil {
			return
		}
		if busy {
			c.w.logger.Info("fleet: found tasks of an idle portal (enqueued without marking it active)", "portal", name)
			if err := c.activity.Mark(ctx, name); err != nil && !errors.Is(err, context.Canceled) {
				c.w.logger.Warn("fleet: cannot mark a portal active", "portal", name, "err", err)
			}
		}
	}
}

// inherit fills the limits a registration left unset with this worker's
// defaults (B24_RATE etc.), as a portals file entry inherits them.
func inherit(l, def config.Limits) config.Limits {
	if l.Rate == 0 {
		l.Rate = def.Rate
	}
	if l.Burst == 0 {
		l.Burst = def.Burst
	}
	if l.OperatingLimit == 0 {
		l.OperatingLimit = def.OperatingLimit
	}
	if l.OperatingWindow == 0 {
		l.OperatingWindow = def.OperatingWindow
	}
	return l
}

// serverConfig is the asynq configuration of portal's server. Each portal
// has a server of its own, with its own Concurrency: a task sleeping for
// its portal's next request slot holds a slot of its own portal's server
// only, so a slow or blocked portal never takes the workers another
// portal's tasks need (no head-of-line blocking across portals). Blocked
// methods are parked, not slept on (tasks/errors.go). Every server
// aggregates grouped import items into batch requests (B24_BATCH=0 makes
// batches of one: plain calls, for debugging).
func (w *Worker) serverConfig(portal string) asynq.Config {
	cfg := asynq.Config{
		Concurrency:              w.cfg.Concurrency,
		Queues:                   map[string]int{tasks.QueueName(portal): 1},
		RetryDelayFunc:           tasks.RetryDelay,
		IsFailure:                tasks.IsFailure,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		Logger:                   newAsynqLogger(w.logger.With("portal", portal)),
		LogLevel:                 asynqLevel(w.cfg.Level()),
		DelayedTaskCheckInterval: DelayedTaskCheckInterval,
		HealthCheckFunc:          w.healthChecked,
		BaseContext:              func() context.Context { return w.base },
	}
	tasks.BatchServerConfig(w.cfg.Batch).Apply(&cfg)
	return cfg
}

// ownPortals returns the names of the portals of this worker's
// configuration, sorted.
func (w *Worker) ownPortals() []string {
	names := make([]string, 0, len(w.cfg.Portals))
	for _, p := range w.cfg.Portals {
		names = append(names, p.Name)
	}
	return names
}

// watched returns the portals this worker shows (metrics, the portals
// page): those of its configuration and those whose queue it runs now.
func (w *Worker) watched() []string {
	names := append(w.ownPortals(), w.coord.Held()...)
	slices.Sort(names)
	return slices.Compact(names)
}
