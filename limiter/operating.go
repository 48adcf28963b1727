package limiter

import (
	"context"
	"fmt"
	"time"
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
func (l *Limiter) Observe(ctx context.Context, portal, method string, operating time.Duration, resetAt time.Time) error {
	p, err := l.state(portal)
	if err != nil {
		return err
	}
	c := p.cfg
	threshold := time.Duration(float64(c.OperatingLimit) * c.OperatingMargin)
	_, err = l.block(ctx, portal, method, 0, max(operating, 0).Microseconds(), unixMicro(resetAt),
		threshold.Microseconds(), c.OperatingWindow/10, c.OperatingWindow)
	if err != nil {
		return fmt.Errorf("limiter: observe %s on portal %q: %w", method, portal, err)
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
	end, err := l.block(ctx, portal, method, unixMicro(until), -1, 0, 0, fallback, c.OperatingWindow)
	if err != nil {
		return fmt.Errorf("limiter: block %s on portal %q: %w", method, portal, err)
	}
	l.log.Warn("limiter: method blocked", "portal", portal, "method", method, "until", end)
	return nil
}

// block runs blockScript and returns the block's end (zero: not blocked).
func (l *Limiter) block(ctx context.Context, portal, method string, until, operating, resetAt, threshold int64,
	fallback, reportTTL time.Duration) (time.Time, error) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	v, err := blockScript.Run(cctx, l.rdb,
		[]string{l.key(portal, "block", method), l.key(portal, "op", method)},
		l.nowArg(), until, operating, resetAt, threshold, fallback.Microseconds(), reportTTL.Milliseconds(),
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
	v, err := blockedScript.Run(cctx, l.rdb, []string{l.key(portal, "block", method)}, l.nowArg()).Int64()
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
