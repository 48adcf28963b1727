package tasks

// This file is the one place that decides what an error means for the
// queue, and the one place that feeds what the portal answered back to the
// shared limiter. How a 503 or a 429 is handled can be read here top to
// bottom:
//
//   - QUERY_LIMIT_EXCEEDED (503): the portal observer calls
//     limiter.Throttled, which pauses every worker of the fleet and lowers
//     the shared rate; the task is parked for the cooldown, which does not
//     count as a failure.
//   - OPERATION_TIME_LIMIT (429): the observer calls limiter.Block for the
//     (portal, method); the task is parked until the block's end, so no
//     worker slot is held and nobody polls the portal meanwhile. Later tasks
//     of that method see the block in limiter.Wait, before any request, and
//     are parked the same way.
//   - A limiter delay longer than the caller may wait: parked until the slot.
//   - Permanent errors (bad input, access, plan caps, unknown codes): no
//     retry (asynq.SkipRetry); the Bitrix24 code and description stay in the
//     task's last error and in the import status.
//   - Everything else (5xx, network, timeouts, auth after a failed refresh):
//     retried with exponential backoff and jitter (RetryDelay).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/limiter"
)

// PermanentError is a failure that retrying cannot fix. It unwraps to both
// the cause and asynq.SkipRetry, so asynq archives the task at once.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string   { return "permanent failure: " + e.Err.Error() }
func (e *PermanentError) Unwrap() []error { return []error{e.Err, asynq.SkipRetry} }

// ParkError asks the queue to run the task again at Until without counting a
// failure. The worker slot is released meanwhile.
type ParkError struct {
	Until  time.Time
	Reason string
	Err    error
}

func (e *ParkError) Error() string {
	return fmt.Sprintf("parked until %s: %s", e.Until.UTC().Format(time.RFC3339), e.Reason)
}
func (e *ParkError) Unwrap() error { return e.Err }

// RateLimitPark is how long a task waits after a 503 before it asks the
// limiter again; the limiter's shared cooldown does the real pacing.
const RateLimitPark = 2 * time.Second

// IsFailure tells asynq whether err counts against the task's retries.
// Parked tasks (limits, blocks) do not: however long the portal keeps us
// waiting, the retry budget is left for real failures.
func IsFailure(err error) bool {
	var park *ParkError
	return !errors.As(err, &park)
}

// RetryDelay is the asynq RetryDelayFunc: parked tasks come back at their
// time (plus a little jitter so a fleet does not wake at one instant), other
// failures back off exponentially with ±25% jitter: a single task from 2 s
// to 10 min, a batch:create task from 1 s to 1 min. A batch carries a whole
// level of an import (up to 50 items) and everything below it waits for
// it, so a long pause after a few unlucky failures stalls the import far
// more than it spares the portal: each attempt is one request, paced by
// the shared limiter like any other.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	var park *ParkError
	if errors.As(err, &park) {
		d := time.Until(park.Until)
		if d < 0 {
			d = 0
		}
		return d + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
	}
	base, ceiling := 2*time.Second, 10*time.Minute
	if t != nil && t.Type() == TypeBatchCreate {
		base, ceiling = time.Second, time.Minute
	}
	d := ceiling
	if n < 20 {
		d = min(base<<n, ceiling)
	}
	jitter := time.Duration(rand.Int64N(int64(d)/2)) - d/4
	return d + jitter
}

// mapErrors is the middleware that turns what a handler returned into the
// queue behaviour described at the top of this file, and records final
// failures of import items.
func (h *Handler) mapErrors(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if err == nil {
			return nil
		}
		ref := refOf(t)
		err = h.classify(ctx, ref.Portal, err)
		if isFinal(ctx, err) {
			logOutcome(ctx, outcomeFailed)
			h.metrics.failed(ref.Portal, t.Type())
			if ref.ImportID != "" && h.imports != nil {
				if ferr := h.imports.Failed(ctx, ref.ImportID, ref.Key, err.Error()); ferr != nil {
					// The task is retried so the failure gets recorded.
					return fmt.Errorf("record failure of import item %s: %w (after: %v)", ref.Key, ferr, err)
				}
			}
		}
		return err
	})
}

// classify maps err to a *ParkError, a *PermanentError or a plain
// (transient) error.
func (h *Handler) classify(ctx context.Context, portal string, err error) error {
	var perm *PermanentError
	var blocked *limiter.BlockedError
	var delay *limiter.DelayError
	switch {
	case errors.As(err, &perm):
		return err
	case errors.As(err, &blocked):
		logOutcome(ctx, outcomeParked)
		return &ParkError{Until: blocked.Until, Reason: fmt.Sprintf("%s is blocked by the portal's operating-time limit", blocked.Method), Err: err}
	case errors.As(err, &delay):
		logOutcome(ctx, outcomeParked)
		return &ParkError{Until: time.Now().Add(delay.Delay), Reason: "waiting for the portal's request budget", Err: err}
	}
	switch b24.Classify(err) {
	case b24.RateLimited:
		logOutcome(ctx, outcomeParked)
		return &ParkError{Until: time.Now().Add(RateLimitPark), Reason: "the portal answered QUERY_LIMIT_EXCEEDED", Err: err}
	case b24.MethodBlocked:
		logOutcome(ctx, outcomeParked)
		return &ParkError{Until: h.blockedUntil(ctx, portal, err), Reason: "the portal answered OPERATION_TIME_LIMIT", Err: err}
	case b24.Permanent:
		return &PermanentError{Err: err}
	default:
		logOutcome(ctx, outcomeRetry)
		return err
	}
}

// blockedUntil reads the block the portal observer recorded for the method
// that answered 429 (one Redis round trip, on a rare path).
func (h *Handler) blockedUntil(ctx context.Context, portal string, err error) time.Time {
	fallback := time.Now().Add(time.Minute)
	var apiErr *b24.Error
	p, ok := h.portals[portal]
	if !ok || !errors.As(err, &apiErr) {
		return fallback
	}
	until, blocked, lerr := p.limiter.Blocked(ctx, portal, apiErr.Method)
	if lerr != nil || !blocked {
		return fallback
	}
	return until
}

// isFinal reports whether asynq will not run the task again after err.
func isFinal(ctx context.Context, err error) bool {
	if errors.Is(err, asynq.SkipRetry) {
		return true
	}
	if !IsFailure(err) {
		return false
	}
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= maxRetry
}

// observe is the b24 observer of one portal: it reports every answer to the
// shared limiter (so one worker's 503 or 429 slows all) and to the metrics.
func (p *Portal) observe(info b24.CallInfo) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.metrics.call(p.Name, info)
	var err error
	class := b24.Classify(info.Err)
	switch class {
	case b24.RateLimited:
		err = p.limiter.Throttled(ctx, p.Name)
	case b24.MethodBlocked:
		err = p.limiter.Block(ctx, p.Name, info.Method, time.Time{})
	case b24.OK:
		err = p.observeOperating(ctx, info.Method, info.Time)
	}
	if class != b24.OK && p.limiter.Tracked(p.Name, info.Method) {
		// The call counted as in flight; it brought no report.
		err = errors.Join(err, p.limiter.Done(ctx, p.Name, info.Method))
	}
	for _, c := range info.Commands {
		if c.Err == nil {
			err = errors.Join(err, p.observeOperating(ctx, c.Method, c.Time))
		}
	}
	if err != nil {
		p.logger.Warn("report portal answer to the limiter", "portal", p.Name, "method", info.Method, "err", err)
	}
}

// observeOperating reports the time block of a successful answer. Reports far
// below the limit carry nothing the limiter would act on, so they cost no
// Redis round trip, unless the fleet tracks the method's calls in flight
// (limiter.Limiter.ObserveCall), which needs every answer.
func (p *Portal) observeOperating(ctx context.Context, method string, t b24.Time) error {
	operating := time.Duration(t.Operating * float64(time.Second))
	p.metrics.operating(p.Name, method, t.Operating)
	if operating < p.limits.OperatingLimit/2 && !p.limiter.Tracked(p.Name, method) {
		return nil
	}
	return p.limiter.ObserveCall(ctx, p.Name, method, limiter.Report{Operating: operating, ResetAt: t.ResetAt(),
		Processing: time.Duration(t.Processing * float64(time.Second))})
}
