package limiter

// An unavailable portal: its credential was revoked, the portal was
// deleted, moved or blocked, its plan lapsed. Every worker must stop
// calling it at once (a revoked webhook would otherwise fail thousands of
// items one by one, and an app that keeps calling may be blocked), and
// start again by itself once the cause is fixed.
//
// MarkUnavailable records the portal's state in Redis (fleet-wide, like the
// 503 cooldown). From then on every grant is refused with an
// *UnavailableError that says why and until when to wait: the time of the
// next probe. The first caller whose grant comes at or after that time is
// told to probe (UnavailableError.Probe): it sends one cheap authenticated
// call through WaitProbe, which is granted regardless of the state, and
// calls Resume when the call succeeds. Probes back off from
// FirstProbeDelay, doubling, to MaxProbeDelay. An operator may Resume at
// any time.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/keys"
)

// Probe delays of an unavailable portal, unless WithProbeDelays says
// otherwise.
const (
	FirstProbeDelay = 10 * time.Second
	MaxProbeDelay   = 5 * time.Minute
)

// WithProbeDelays sets when an unavailable portal is first probed and the
// longest pause between probes (defaults FirstProbeDelay, MaxProbeDelay).
// Tests with a scaled-down portal shorten them. Non-positive values keep the
// defaults.
func WithProbeDelays(first, longest time.Duration) Option {
	return func(l *Limiter) {
		if first > 0 {
			l.probeFirst = first
		}
		if longest > 0 {
			l.probeMax = longest
		}
	}
}

// FirstProbe is how long after a portal became unavailable it is first
// probed.
func (l *Limiter) FirstProbe() time.Duration { return l.probeFirst }

// Unavailability is why a portal is unavailable.
type Unavailability struct {
	// Code and Description are the portal's (or the OAuth server's) answer,
	// e.g. INVALID_CREDENTIALS, PORTAL_DELETED, invalid_grant.
	Code, Description string
	// Method is the REST method that got the answer.
	Method string
	// Since is when the portal was first marked unavailable.
	Since time.Time
	// NextProbe is when a worker will next try a call.
	NextProbe time.Time
	// Probes counts the probes since.
	Probes int
}

// UnavailableError is returned by the waits while the portal is
// unavailable. No slot was consumed. Until is the next probe; when Probe is
// true the caller is the one to probe now (see WaitProbe).
type UnavailableError struct {
	Portal            string
	Code, Description string
	Until             time.Time
	Probe             bool
}

func (e *UnavailableError) Error() string {
	s := fmt.Sprintf("limiter: portal %q unavailable: %s", e.Portal, e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// markScript records that a portal is unavailable.
//
// Input:
// KEYS[1] -> PREFIX:{PORTAL}:unavailable (keys.Unavailable)
// --
// ARGV[1] -> now, µs (0: the Redis server's clock)
// ARGV[2] -> code
// ARGV[3] -> description
// ARGV[4] -> method
// ARGV[5] -> first probe delay, µs
//
// Output: 1 when the state changed (the portal was available, or the code
// differs), else 0.
var markScript = redis.NewScript(luaPrelude + `
local cur = redis.call('HGET', KEYS[1], 'code')
if cur == ARGV[2] then return 0 end
if not cur then
  redis.call('HSET', KEYS[1], 'since', fmt(now), 'next', fmt(now + tonumber(ARGV[5])), 'probes', 0)
end
redis.call('HSET', KEYS[1], 'code', ARGV[2], 'desc', ARGV[3], 'method', ARGV[4])
return 1
`)

// MarkUnavailable records for every process that portal is unavailable
// because method was answered code (desc). It reports whether that changed
// the portal's state (it was available, or unavailable for another code),
// so that the caller logs each change once. The state stays until Resume.
func (l *Limiter) MarkUnavailable(ctx context.Context, portal, method, code, desc string) (changed bool, err error) {
	if _, err := l.state(portal); err != nil {
		return false, err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	n, err := markScript.Run(cctx, l.rdb, []string{l.keys.Unavailable(portal)},
		l.nowArg(), code, desc, method, l.probeFirst.Microseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("limiter: mark portal %q unavailable: %w", portal, err)
	}
	return n == 1, nil
}

// Resume makes portal available again for every process (a successful
// probe, or an operator's command) and reports whether it was unavailable.
func (l *Limiter) Resume(ctx context.Context, portal string) (bool, error) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	return Resume(cctx, l.rdb, l.keys.Prefix(), portal)
}

// Resume is Limiter.Resume for tools without a Limiter (enqueue portal
// resume, the API): prefix is the fleet's key prefix.
func Resume(ctx context.Context, rdb redis.Cmdable, prefix, portal string) (bool, error) {
	n, err := rdb.Del(ctx, keys.New(prefix).Unavailable(portal)).Result()
	if err != nil {
		return false, fmt.Errorf("limiter: resume portal %q: %w", portal, err)
	}
	return n == 1, nil
}

// Availability returns portal's unavailable state; ok is false when the
// portal is available.
func (l *Limiter) Availability(ctx context.Context, portal string) (u Unavailability, ok bool, err error) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	return ReadAvailability(cctx, l.rdb, l.keys.Prefix(), portal)
}

// ReadAvailability is Availability for tools without a Limiter (the enqueue
// command, the status API): prefix is the fleet's key prefix.
func ReadAvailability(ctx context.Context, rdb redis.Cmdable, prefix, portal string) (u Unavailability, ok bool, err error) {
	m, err := rdb.HGetAll(ctx, keys.New(prefix).Unavailable(portal)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Unavailability{}, false, fmt.Errorf("limiter: read availability of portal %q: %w", portal, err)
	}
	u, ok = unavailability(m)
	return u, ok, nil
}

// ReadAvailabilities is ReadAvailability for many portals in one pipeline:
// the unavailable ones by name.
func ReadAvailabilities(ctx context.Context, rdb redis.Cmdable, prefix string, portals []string) (map[string]Unavailability, error) {
	ks := keys.New(prefix)
	cmds := make([]*redis.MapStringStringCmd, len(portals))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range portals {
			cmds[i] = p.HGetAll(ctx, ks.Unavailable(name))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("limiter: read the availability of %d portals: %w", len(portals), err)
	}
	out := map[string]Unavailability{}
	for i, c := range cmds {
		if u, ok := unavailability(c.Val()); ok {
			out[portals[i]] = u
		}
	}
	return out, nil
}

// unavailability decodes the hash of keys.Unavailable; ok is false when it
// holds no code (the portal is available).
func unavailability(m map[string]string) (u Unavailability, ok bool) {
	if m["code"] == "" {
		return Unavailability{}, false
	}
	micros := func(f string) time.Time {
		n, _ := strconv.ParseInt(m[f], 10, 64)
		if n <= 0 {
			return time.Time{}
		}
		return time.UnixMicro(n)
	}
	probes, _ := strconv.Atoi(m["probes"])
	return Unavailability{Code: m["code"], Description: m["desc"], Method: m["method"],
		Since: micros("since"), NextProbe: micros("next"), Probes: probes}, true
}

// WaitProbe is Wait for the one probe of an unavailable portal (the caller
// was told so by an UnavailableError with Probe set): it is granted
// regardless of the unavailable state, within the portal's request budget.
func (l *Limiter) WaitProbe(ctx context.Context, portal, method string) error {
	return l.wait(ctx, portal, method, nil, true)
}
