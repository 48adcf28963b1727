package limiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/b24queue/b24queue/internal/claim"
	"github.com/b24queue/b24queue/internal/keys"
)

// DefaultPrefix is the key prefix used unless [WithPrefix] is given.
const DefaultPrefix = keys.DefaultPrefix

// DefaultMaxWait is the longest [Limiter.Wait] sleeps for a slot unless
// [WithMaxWait] is given.
const DefaultMaxWait = 30 * time.Second

// DefaultCallTimeout bounds every Redis call of the limiter unless
// [WithCallTimeout] is given.
const DefaultCallTimeout = time.Second

// idleTTL is how long the bucket state (notably the adaptive rate) outlives
// the last reserved slot. After that long without requests the portal's own
// bucket has drained and starting again from the configured rate is right.
const idleTTL = 10 * time.Minute

// A Limiter shares one request budget per portal between every process that
// uses the same Redis and key prefix. Its methods are safe for concurrent use
// by multiple goroutines.
//
// The first [Limiter.Wait] starts a background pub/sub subscription that
// lets a 503 seen by any process pause this one's waiters; [Limiter.Close]
// stops it. The zero value is not usable; create one with [New].
type Limiter struct {
	rdb     redis.UniversalClient
	def     Config
	keys    keys.Space
	clock   func() time.Time
	maxWait time.Duration
	callTO  time.Duration
	log     *slog.Logger
	metrics Metrics
	// probeFirst and probeMax are the probe delays of an unavailable
	// portal (WithProbeDelays).
	probeFirst, probeMax time.Duration

	mu      sync.Mutex
	portals map[string]*portalState
	pauses  map[string]*pauseState // by portal; kept across Configure

	// tracked holds portal + "\x00" + method while the last grant saw the
	// method's report hash (see Tracked).
	tracked sync.Map

	// usage spaces out NoteUsage's writes.
	usage usageGate

	subMu  sync.Mutex
	sub    *subscription // nil until the first Wait
	closed bool
}

// portalState is the process-local part of a portal: its configuration and
// the smoothing limiter.
type portalState struct {
	cfg   Config
	err   error // cfg.Validate(), returned by every call for the portal
	local *rate.Limiter
}

// Option configures a [Limiter].
type Option func(*Limiter)

// WithPrefix sets the prefix of every Redis key (default [DefaultPrefix];
// "" also means the default). Processes share a budget only if they use the
// same prefix.
func WithPrefix(prefix string) Option { return func(l *Limiter) { l.keys = keys.New(prefix) } }

// WithClock makes the limiter use now instead of the Redis server's clock for
// the shared state; the time is then sent with every script call. It is meant
// for tests: all processes sharing a budget must use the same clock. Sleeping
// in [Limiter.Wait] and the local smoothing limiter always use real time.
func WithClock(now func() time.Time) Option { return func(l *Limiter) { l.clock = now } }

// WithMaxWait sets the longest [Limiter.Wait] and [Limiter.Reserve] accept
// for a slot (default [DefaultMaxWait]); beyond it they return a
// [*DelayError] without reserving. d <= 0 restores the default.
func WithMaxWait(d time.Duration) Option { return func(l *Limiter) { l.maxWait = d } }

// WithCallTimeout bounds each Redis call (script or read) of the limiter,
// including the client's own dial attempts and retries, so that an
// unreachable Redis makes calls fail within d instead of hanging (default
// [DefaultCallTimeout]). It does not include the time Wait sleeps for a slot.
// d <= 0 restores the default.
func WithCallTimeout(d time.Duration) Option { return func(l *Limiter) { l.callTO = d } }

// WithLogger sets the logger for rate decreases and blocks (default: discard).
func WithLogger(log *slog.Logger) Option { return func(l *Limiter) { l.log = log } }

// WithMetrics sets the receiver of limiter events (default: none).
func WithMetrics(m Metrics) Option { return func(l *Limiter) { l.metrics = m } }

// New returns a Limiter that keeps its state in rdb and applies def,
// completed with [Config.WithDefaults], to every portal not given its own
// configuration with [Limiter.Configure]. New does not contact Redis (the
// pause subscription starts with the first [Limiter.Wait]; call
// [Limiter.Close] when done with the Limiter). If the
// configuration is invalid every call for the portal returns the
// [Config.Validate] error, so validate configuration before calling New.
func New(rdb redis.UniversalClient, def Config, opts ...Option) *Limiter {
	l := &Limiter{
		rdb:     rdb,
		def:     def.WithDefaults(),
		keys:    keys.New(DefaultPrefix),
		maxWait: DefaultMaxWait,
		portals: make(map[string]*portalState),

		probeFirst: FirstProbeDelay,
		probeMax:   MaxProbeDelay,
		pauses:     make(map[string]*pauseState),
	}
	for _, o := range opts {
		o(l)
	}
	if l.maxWait <= 0 {
		l.maxWait = DefaultMaxWait
	}
	if l.callTO <= 0 {
		l.callTO = DefaultCallTimeout
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.metrics == nil {
		l.metrics = nopMetrics{}
	}
	return l
}

// Configure sets the configuration of one portal, completed with
// [Config.WithDefaults]. It affects this Limiter only: every process must
// configure the portal the same way. Configure resets the portal's local
// smoothing limiter; the shared state in Redis is kept.
func (l *Limiter) Configure(portal string, c Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.portals[portal] = newPortalState(c.WithDefaults())
}

func newPortalState(c Config) *portalState {
	p := &portalState{cfg: c, err: c.Validate()}
	if p.err == nil {
		p.local = rate.NewLimiter(rate.Limit(c.Rate), c.LocalBurst)
	}
	return p
}

// Config returns the configuration in force for portal.
func (l *Limiter) Config(portal string) Config {
	p, _ := l.state(portal)
	return p.cfg
}

func (l *Limiter) state(portal string) (*portalState, error) {
	l.mu.Lock()
	p, ok := l.portals[portal]
	if !ok {
		p = newPortalState(l.def)
		l.portals[portal] = p
	}
	l.mu.Unlock()
	if err := checkPortal(portal); err != nil {
		return p, err
	}
	if p.err != nil {
		return p, fmt.Errorf("limiter: portal %q: %w", portal, p.err)
	}
	return p, nil
}

// checkPortal rejects names that would break the {portal} hash tag.
func checkPortal(portal string) error {
	if portal == "" || strings.ContainsAny(portal, "{}") {
		return fmt.Errorf("limiter: invalid portal name %q: must be non-empty without braces", portal)
	}
	return nil
}

// nowArg is the script's ARGV[1]: 0 means the server's clock.
func (l *Limiter) nowArg() int64 {
	if l.clock == nil {
		return 0
	}
	return l.clock().UnixMicro()
}

// allowed is how long a caller may wait for a slot: MaxWait, shortened by the
// context's deadline.
func (l *Limiter) allowed(ctx context.Context) time.Duration {
	d := l.maxWait
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return d
}

// Wait blocks until the caller may send one request of method to portal, or
// returns an error. It first passes the process-local smoothing limiter
// (no Redis), then reserves a slot in the shared bucket with exactly one
// Redis round trip, then sleeps until the slot.
//
// While it sleeps, a 503 reported by any process ([Limiter.Throttled])
// whose cooldown covers the slot wakes it: the slot is given up and Wait
// reserves again, after the cooldown (a second round trip, only then). So
// no request leaves between a 503 and the end of its cooldown, except those
// already sent. If the new slot is further than the caller may wait, Wait
// returns a [*DelayError] at that point. Other processes' 503s reach Wait
// through the Limiter's pub/sub subscription; while it is down (Redis
// restarting) sleeping waiters keep their slots, and the cooldown still
// applies to every later reservation.
//
// Wait returns, without consuming a slot:
//   - a [*BlockedError] if the method is blocked on the portal;
//   - a [*DelayError] if the slot is further away than the context deadline
//     or the maximum wait ([WithMaxWait]) allow;
//   - the context's error if ctx is done before waiting starts;
//   - a wrapped Redis error if Redis cannot be reached. Wait never falls
//     back to an unlimited rate; it fails within the call timeout
//     ([WithCallTimeout]) or sooner, as the client's dial and read timeouts
//     allow.
//
// If ctx is cancelled while sleeping for a reserved slot, Wait returns the
// context's error and the slot is lost (it is not handed to someone else).
func (l *Limiter) Wait(ctx context.Context, portal, method string) error {
	return l.wait(ctx, portal, method, nil, false)
}

// claims are the object claims (internal/claim) a grant takes or checks in
// the same atomic step; nil for a plain Wait.
type claims struct {
	mode int // claimModeTake or claimModeCheck
	list []claim.Claim
	ttl  time.Duration
	// taken is what a take found (claimModeTake).
	taken claim.Taken
}

// SupersededError is returned by [Limiter.WaitChecked] when claims are not
// their attempt's any more: another run of the same work took them over (a
// run that outlived its lease). No slot was consumed. Indexes are the
// positions of those claims in the caller's list.
type SupersededError struct {
	Portal  string
	Indexes []int
}

func (e *SupersededError) Error() string {
	return fmt.Sprintf("limiter: portal %q: %d claim(s) taken over by another run of the same work", e.Portal, len(e.Indexes))
}

// recheckAfter is how long a caller may have slept for its slot before its
// claims are checked again (one more round trip) before it goes: a process
// paused past its lease must not send a create that another run now owns.
const recheckAfter = 2 * time.Second

// WaitClaim is [Limiter.Wait] that also takes c (see internal/claim) in the
// same atomic step. The slot is granted only when the claim was Fresh; for
// any other state nothing is consumed and Taken says what was found: Resumed
// or Look (the claim is the caller's now, but it must look the object up
// before it creates: then ask again with [Limiter.WaitChecked]) or Busy
// (another owner is creating the object). The grant records the slot as the
// claim's latest send time. ttl is the claim's TTL.
func (l *Limiter) WaitClaim(ctx context.Context, portal, method string, c claim.Claim, ttl time.Duration) (claim.Taken, error) {
	cl := &claims{mode: claimModeTake, list: []claim.Claim{c}, ttl: ttl}
	if err := l.checkClaims(portal, cl); err != nil {
		return claim.Taken{}, err
	}
	err := l.wait(ctx, portal, method, cl, false)
	if errors.Is(err, errClaimNotFresh) {
		return cl.taken, nil
	}
	return cl.taken, err
}

// WaitChecked is [Limiter.Wait] granted only while every claim of cs is still
// its attempt's (owner and token); the grant records the slot as their latest
// send time. Otherwise it returns a [*SupersededError] and consumes nothing.
// If the caller slept long for its slot, the claims are checked once more
// before WaitChecked returns.
func (l *Limiter) WaitChecked(ctx context.Context, portal, method string, cs []claim.Claim, ttl time.Duration) error {
	cl := &claims{mode: claimModeCheck, list: cs, ttl: ttl}
	if err := l.checkClaims(portal, cl); err != nil {
		return err
	}
	return l.wait(ctx, portal, method, cl, false)
}

// checkClaims refuses claims outside the portal's hash slot.
func (l *Limiter) checkClaims(portal string, cl *claims) error {
	if cl.ttl <= 0 || len(cl.list) == 0 || len(cl.list) > 100 {
		return fmt.Errorf("limiter: %d claims with TTL %v: want 1 to 100 and a positive TTL", len(cl.list), cl.ttl)
	}
	for _, c := range cl.list {
		if !strings.Contains(c.Key, keys.Tag(portal)) || c.Owner == "" || c.Token == "" {
			return fmt.Errorf("limiter: claim %q: want a key with the %s hash tag, an owner and a token", c.Key, keys.Tag(portal))
		}
	}
	return nil
}

func (l *Limiter) wait(ctx context.Context, portal, method string, cl *claims, probe bool) error {
	start := time.Now()
	p, err := l.state(portal)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("limiter: wait for portal %q: %w", portal, err)
	}
	allowed := l.allowed(ctx)
	limit := start.Add(allowed) // the latest slot the caller accepts

	res := p.local.ReserveN(start, 1)
	if !res.OK() { // cannot happen with LocalBurst >= 1; be defensive
		return fmt.Errorf("limiter: portal %q: local limiter refused", portal)
	}
	if d := res.DelayFrom(start); d > 0 {
		if d > allowed {
			res.CancelAt(start)
			return &DelayError{Portal: portal, Delay: d}
		}
		if err := sleep(ctx, d); err != nil {
			res.Cancel()
			return fmt.Errorf("limiter: wait for portal %q: %w", portal, err)
		}
	}

	l.subscribe()
	// Looked up before reserving, so that a cooldown announced while the
	// script runs is seen below.
	pz := l.pauseOf(portal)
	g, err := l.reserveAfterInflight(ctx, p, portal, method, limit, cl, probe)
	if err != nil {
		res.Cancel() // gives the local token back if it is still in the future
		return err
	}
	granted := time.Now()
	if cl != nil && cl.mode == claimModeTake {
		// Taken: from now on the claim is the caller's; a new slot (after a
		// cooldown) only checks it.
		cl = &claims{mode: claimModeCheck, list: cl.list, ttl: cl.ttl}
	}
	at := granted.Add(g.delay)
	for {
		until, paused := pz.snapshot()
		if until > g.slot {
			// A 503's cooldown covers the slot: queue again behind it. The
			// slot given up is lost; the bucket has already moved past it.
			if g, err = l.reserveAfterInflight(ctx, p, portal, method, limit, cl, probe); err != nil {
				return err
			}
			at = time.Now().Add(g.delay)
			continue
		}
		woken, err := sleepUntil(ctx, at, paused)
		if err != nil {
			return fmt.Errorf("limiter: wait for portal %q: slot reserved in %s lost: %w", portal, time.Until(at), err)
		}
		if !woken {
			break
		}
		// Woken by a cooldown: compare it with the slot, then sleep on.
	}
	if cl != nil && time.Since(granted) > recheckAfter {
		if err := l.recheck(ctx, portal, cl); err != nil {
			return err
		}
	}
	l.metrics.Waited(portal, time.Since(start))
	return nil
}

// recheck checks cl's claims again after a long sleep for the slot.
func (l *Limiter) recheck(ctx context.Context, portal string, cl *claims) error {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	bad, err := claim.Check(cctx, l.rdb, cl.ttl, cl.list)
	if err != nil {
		return fmt.Errorf("limiter: portal %q: %w", portal, err)
	}
	if len(bad) > 0 {
		return &SupersededError{Portal: portal, Indexes: bad}
	}
	return nil
}

// Reserve reserves one slot of method in portal's shared bucket and returns
// how long the caller must wait before sending the request (0: now). It does
// not sleep and does not consult the process-local smoothing limiter, so it
// is the shared bucket's exact answer: useful for tests (with [WithClock]) and
// for callers that schedule the request themselves. It makes exactly one Redis
// round trip and returns the same errors as [Limiter.Wait]; a reserved slot
// cannot be given back. Unlike Wait, a caller of Reserve is not told of a
// 503 reported after the reservation: its slot may fall inside that cooldown.
func (l *Limiter) Reserve(ctx context.Context, portal, method string) (time.Duration, error) {
	p, err := l.state(portal)
	if err != nil {
		return 0, err
	}
	g, err := l.reserve(ctx, p, portal, method, l.allowed(ctx), nil, false)
	if fl, ok := errors.AsType[*inflightError](err); ok {
		return 0, &DelayError{Portal: portal, Delay: fl.wait}
	}
	return g.delay, err
}

// Throttled tells every process that the portal answered 503
// (QUERY_LIMIT_EXCEEDED). It sets a portal-wide cooldown: the shared bucket is
// considered full at now + Cooldown, so no process is granted a slot before
// then, and after it slots follow at the new rate. In the same round trip it
// publishes the cooldown's end to every Limiter sharing the prefix, and it
// wakes this Limiter's own waiters at once: waiters of any process asleep in
// [Limiter.Wait] for a slot inside the cooldown reserve again behind it. It also multiplies the
// effective rate by 0.8, not below MinRate; 503s reported within one Cooldown
// of the previous decrease extend the cooldown but do not decrease again, so
// that several workers seeing the same overload count it once. The rate climbs
// back by ×1.1 (up to Rate) after every Burst grants without a Throttled call.
func (l *Limiter) Throttled(ctx context.Context, portal string) error {
	p, err := l.state(portal)
	if err != nil {
		return err
	}
	c := p.cfg
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	res, err := throttleScript.Run(cctx, l.rdb, []string{l.keys.Bucket(portal)},
		l.nowArg(), c.Rate, c.SharedBurst(), c.MinRate, c.Cooldown.Microseconds(), idleTTL.Milliseconds(),
		l.keys.Throttled(portal),
	).Slice()
	if err != nil {
		return fmt.Errorf("limiter: throttle portal %q: %w", portal, err)
	}
	if len(res) != 3 {
		return fmt.Errorf("limiter: throttle portal %q: unexpected script answer %v", portal, res)
	}
	if end, ok := res[2].(int64); ok {
		// Our own waiters need not wait for the pub/sub echo.
		l.pauseOf(portal).extend(end)
	}
	s, _ := res[0].(string)
	r, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("limiter: throttle portal %q: unexpected rate %q", portal, s)
	}
	if dec, _ := res[1].(int64); dec == 1 {
		l.log.Info("limiter: portal throttled, rate decreased", "portal", portal, "rate", r, "cooldown", c.Cooldown)
	}
	l.metrics.Throttled(portal)
	l.metrics.EffectiveRate(portal, r)
	return nil
}

// callCtx bounds one Redis call by the call timeout.
func (l *Limiter) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.callTO)
}
