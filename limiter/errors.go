package limiter

import (
	"fmt"
	"time"
)

// BlockedError is returned by [Limiter.Wait] and [Limiter.Reserve] when the
// method's operating-time budget is exhausted on the portal. No request slot
// was consumed. Callers should park the task until Until.
type BlockedError struct {
	Portal string
	Method string
	// Until is when the block ends, by the clock of the Redis server (or the
	// injected clock, see [WithClock]).
	Until time.Time
}

// Error describes the block; it names the portal, the method and the end time.
func (e *BlockedError) Error() string {
	return fmt.Sprintf("limiter: portal %q: method %q blocked until %s",
		e.Portal, e.Method, e.Until.UTC().Format(time.RFC3339))
}

// DelayError is returned by [Limiter.Wait] and [Limiter.Reserve] when the next
// free slot is further away than the context deadline or the limiter's
// maximum wait ([WithMaxWait]) allows. No slot was reserved, so nothing is
// wasted; callers should park the task for about Delay and try again.
type DelayError struct {
	Portal string
	// Delay is how long the caller would have had to wait at the time of the
	// call. Later callers may see a different delay.
	Delay time.Duration
}

// Error describes the delay; it names the portal and the delay.
func (e *DelayError) Error() string {
	return fmt.Sprintf("limiter: portal %q: next slot in %s, more than the caller may wait",
		e.Portal, e.Delay)
}
