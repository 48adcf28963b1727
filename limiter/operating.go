package limiter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Observe records the operating time a portal reported for method
// (time.operating: execution seconds used by the method in the rolling
// window) and when the oldest counted execution leaves the window
// (time.operating_reset_at; zero if unknown). The last report is kept in Redis
// for OperatingWindow.
//
// If operating reaches OperatingMargin × OperatingLimit the method is blocked
// for every process before the portal starts answering 429: until resetAt if
// that is in the future, otherwise for OperatingWindow/10, after which a new
// request brings a fresh report. Blocks only ever extend: a report below the
// margin, or with an earlier reset, does not lift an existing block.
//
// Observe is [Limiter.ObserveCall] without the call's own billed time: it
// does not start the tracking of calls in flight.
func (l *Limiter) Observe(ctx context.Context, portal, method string, operating time.Duration, resetAt time.Time) error {
	return l.ObserveCall(ctx, portal, method, Report{Operating: operating, ResetAt: resetAt})
}

// Report is what a successful answer said about a method's operating budget.
type Report struct {
	// Operating is time.operating: execution time the method used in the
	// rolling window, this call included.
	Operating time.Duration
	// ResetAt is time.operating_reset_at (zero if unknown).
	ResetAt time.Time
	// Processing is time.processing: what this call was billed (zero if
	// unknown).
	Processing time.Duration
}

// ObserveCall records a report as [Limiter.Observe] does and, when it
// carries the call's Processing time, also tracks the fleet's calls of the
// method in flight from then on, while the report is kept
// (OperatingWindow).
//
// Why: a proactive block is set by the answer that crosses the margin, but
// calls granted before that answer are already on their way and meet a 429.
// With the report in Redis, every grant of the method counts one call in
// flight and checks that the reported operating time plus one Processing
// per call in flight stays below the margin; otherwise [Limiter.Wait]
// waits (a Processing, at least 50 ms and at most 1 s) until answers have
// come back and asks again. Once the reported reset time has passed, the
// window has moved by an amount nobody knows yet, so the fleet sends one
// call at a time until its answer is reported. Every report counts one
// call fewer in flight; callers report the end of a call that brought no
// report with [Limiter.Done] when [Limiter.Tracked] says so. A call that
// never reports stops counting after a minute.
func (l *Limiter) ObserveCall(ctx context.Context, portal, method string, r Report) error {
	p, err := l.state(portal)
	if err != nil {
		return err
	}
	c := p.cfg
	_, err = l.block(ctx, portal, method, 0, max(r.Operating, 0).Microseconds(), unixMicro(r.ResetAt),
		c.operatingThreshold().Microseconds(), c.OperatingWindow/10, c.OperatingWindow, max(r.Processing, 0).Microseconds())
	if err != nil {
		return fmt.Errorf("limiter: observe %s on portal %q: %w", method, portal, err)
	}
	return nil
}

// inflightTTL is how long a granted call of a tracked method counts as in
// flight without a report: longer than any call's timeout.
const inflightTTL = time.Minute

// Tracked reports whether this process's last grant for method saw the
// fleet tracking the method's calls in flight (see [Limiter.ObserveCall]).
// While it does, callers must report every answer of the method:
// ObserveCall for a success (however far below the limit) and
// [Limiter.Done] for any other end of the call. It costs no round trip.
func (l *Limiter) Tracked(portal, method string) bool {
	_, ok := l.tracked.Load(portal + "\x00" + method)
	return ok
}

func (l *Limiter) setTracked(portal, method string, on bool) {
	key := portal + "\x00" + method
	if on {
		l.tracked.Store(key, struct{}{})
	} else {
		l.tracked.Delete(key)
	}
}

// Done reports that a call of a tracked method ended without a report (an
// error answer, a network failure): one call fewer in flight.
func (l *Limiter) Done(ctx context.Context, portal, method string) error {
	if _, err := l.state(portal); err != nil {
		return err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if err := doneScript.Run(cctx, l.rdb, []string{l.keys.Report(portal, method)}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("limiter: end of a %s call on portal %q: %w", method, portal, err)
	}
	return nil
}

// Block blocks method on portal for every process until until; it is called
// when the portal answered 429 (OPERATION_TIME_LIMIT). A zero until means the
// 429 carried no reset time: the block then lasts until the reset time of
// the method's last Observe report if that is still ahead, else for
// OperatingWindow; an until that is not
// in the future (the portal's reset time has already passed although it
// refused the call) blocks for OperatingWindow/10. Blocks only ever extend,
// never shorten. The key expires when the block ends.
func (l *Limiter) Block(ctx context.Context, portal, method string, until time.Time) error {
	p, err := l.state(portal)
	if err != nil {
		return err
	}
	c := p.cfg
	fallback := c.OperatingWindow / 10
	if until.IsZero() {
		fallback = c.OperatingWindow
	}
	end, err := l.block(ctx, portal, method, unixMicro(until), -1, 0, 0, fallback, c.OperatingWindow, 0)
	if err != nil {
		return fmt.Errorf("limiter: block %s on portal %q: %w", method, portal, err)
	}
	l.log.Warn("limiter: method blocked", "portal", portal, "method", method, "until", end)
	return nil
}

// block runs blockScript and returns the block's end (zero: not blocked).
func (l *Limiter) block(ctx context.Context, portal, method string, until, operating, resetAt, threshold int64,
	fallback, reportTTL time.Duration, processing int64) (time.Time, error) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	v, err := blockScript.Run(cctx, l.rdb,
		[]string{l.keys.Block(portal, method), l.keys.Report(portal, method)},
		l.nowArg(), until, operating, resetAt, threshold, fallback.Microseconds(), reportTTL.Milliseconds(), processing,
	).Int64()
	if err != nil {
		return time.Time{}, err
	}
	if v == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(v), nil
}

// Blocked reports whether method is blocked on portal and until when (by the
// Redis server's clock, or the injected one). It does not consume a slot.
func (l *Limiter) Blocked(ctx context.Context, portal, method string) (until time.Time, blocked bool, err error) {
	if _, err := l.state(portal); err != nil {
		return time.Time{}, false, err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	v, err := blockedScript.Run(cctx, l.rdb, []string{l.keys.Block(portal, method)}, l.nowArg()).Int64()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("limiter: read block of %s on portal %q: %w", method, portal, err)
	}
	if v == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMicro(v), true, nil
}

// unixMicro is t in µs since the epoch, 0 for the zero time.
func unixMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}
