package tasks

// This file is the one place that decides what an error means for the
// queue. decide turns any error of a task run, or of one command of a batch,
// into a decision: park until a time, retry with backoff, or fail for good,
// and whether the next attempt must look the object up first. A single task
// applies it through the error middleware (mapErrors, once per run); a batch
// applies it to each item whose command failed (batchRun.apply), putting the
// item back into its group instead of retrying the whole batch. How a 503,
// a 429 or a lost answer is handled can be read here top to bottom:
//
//   - QUERY_LIMIT_EXCEEDED (503): the portal's feedback (feedback.go) has
//     already called limiter.Throttled, which pauses every worker of the
//     fleet and lowers the shared rate. Park for RateLimitPark: not a
//     failure. A batch item answered 503 goes back into its group for then.
//   - OPERATION_TIME_LIMIT (429), or the limiter refusing a blocked method:
//     park until the block's end (blockedUntil: the block the fleet shares,
//     set by the feedback or here), so no worker slot is held and nobody
//     polls the portal meanwhile. A batch item goes back into its group for
//     the block's end.
//   - The limiter's next slot further than the caller may wait: park until
//     the slot.
//   - A lost answer (timeout, reset, a 5xx, an unreadable 200): retry with
//     backoff, and the next attempt looks up before it creates again
//     (attempt markers, attempts.go; a batch item goes to its group's verify
//     twin, whose batches look every item up first).
//   - A command of an answered batch that failed transiently: the item goes
//     back into its ordinary group (the portal reported the command did no
//     work: no lookup needed), counted against maxItemRequeues.
//   - A portal-level error (a revoked credential, a deleted, moved or
//     blocked portal, a refused token refresh), or the limiter refusing an
//     unavailable portal: park until the portal's next probe (probe.go);
//     never a failure, whatever the retry count. The first task back after
//     that time probes, and a success resumes the whole fleet.
//   - Permanent errors (bad input, plan caps, unknown codes): no
//     retry (asynq.SkipRetry); the Bitrix24 code and description stay in the
//     task's last error and in the import status.
//   - Everything else (network errors before sending, auth after a failed
//     refresh): retry with exponential backoff and jitter (Backoff).

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

// blockFallback is how long a method counts as blocked when a 429 came back
// but the shared limiter holds no block for it (Redis could not be read or
// written): long enough not to hammer the portal, short enough to find out.
const blockFallback = time.Minute

// verdict is what the queue does with a task (or a batch item) after an error.
type verdict int

const (
	// retry: back off and run again; counts against the task's retries
	// (a batch item's requeues).
	retry verdict = iota
	// park: run again at decision.until; not a failure.
	park
	// fail: never again; the reason is kept.
	fail
)

// decision is decide's answer.
type decision struct {
	verdict verdict
	// until is when a parked task or item comes back.
	until time.Time
	// lookFirst: the failed request may have done its work, so the next
	// attempt looks the object up before it creates it.
	lookFirst bool
	// reason says why a task is parked (for its log line and last error).
	reason string
	err    error
}

// decide turns err, returned by a run of a task of portal or by one command
// of a batch, into what the queue does next. It is the only place that maps
// b24's error classes and the limiter's refusals to queue behaviour (see the
// file comment). It may read the limiter's block of a method (one Redis
// round trip, only after a 429).
func (h *Handler) decide(ctx context.Context, portal string, err error) decision {
	now := h.clock.now()
	var perm *PermanentError
	var parked *ParkError
	var blocked *limiter.BlockedError
	var delay *limiter.DelayError
	var down *limiter.UnavailableError
	switch {
	case errors.As(err, &perm):
		return decision{verdict: fail, err: err}
	case errors.As(err, &down):
		return decision{verdict: park, until: down.Until, err: err,
			reason: fmt.Sprintf("portal %s unavailable: %s (next check %s)", portal, down.Code, down.Until.UTC().Format(time.RFC3339))}
	case errors.As(err, &parked):
		return decision{verdict: park, until: parked.Until, reason: parked.Reason, err: err}
	case errors.As(err, &blocked):
		return decision{verdict: park, until: blocked.Until, err: err,
			reason: fmt.Sprintf("%s is blocked by the portal's operating-time limit", blocked.Method)}
	case errors.As(err, &delay):
		return decision{verdict: park, until: now.Add(delay.Delay), reason: "waiting for the portal's request budget", err: err}
	}
	switch b24.Classify(err) {
	case b24.RateLimited:
		return decision{verdict: park, until: now.Add(RateLimitPark), reason: "the portal answered QUERY_LIMIT_EXCEEDED", err: err}
	case b24.MethodBlocked:
		return decision{verdict: park, until: h.blockedUntil(ctx, portal, err), reason: "the portal answered OPERATION_TIME_LIMIT", err: err}
	case b24.PortalUnavailable:
		code, method := "portal-level error", ""
		if e, ok := errors.AsType[*b24.Error](err); ok {
			code, method = e.Code, e.Method
		}
		first := limiter.FirstProbeDelay
		if p, ok := h.portal(portal); ok {
			first = p.limiter.FirstProbe()
			// The feedback marks the portal from the answers it observes;
			// a refused token refresh, or a batch command's answer, it does
			// not see. Marking again is idempotent.
			if merr := p.markUnavailable(ctx, method, err); merr != nil {
				h.logger.WarnContext(ctx, "mark portal unavailable", "portal", portal, "err", merr)
			}
		}
		return decision{verdict: park, until: now.Add(first), err: err,
			reason: fmt.Sprintf("portal %s unavailable: %s", portal, code)}
	case b24.Permanent:
		return decision{verdict: fail, err: &PermanentError{Err: err}}
	}
	return decision{verdict: retry, lookFirst: b24.IsAmbiguous(err), err: err}
}

// taskError is the error a task run returns to asynq for d: a *ParkError
// (RetryDelay brings it back at until, IsFailure does not count it), a
// *PermanentError (SkipRetry) or the error itself (backoff).
func (d decision) taskError() error {
	switch d.verdict {
	case park:
		var p *ParkError
		if errors.As(d.err, &p) {
			return d.err
		}
		return &ParkError{Until: d.until, Reason: d.reason, Err: d.err}
	case fail:
		return d.err
	}
	return d.err
}

// outcome is the logged outcome of a run that ended with d.
func (d decision) outcome() string {
	switch d.verdict {
	case park:
		return outcomeParked
	case fail:
		return outcomeFailed
	}
	return outcomeRetry
}

// blockedUntil is when the operating-time block of the method that err names
// ends, by the fleet's shared block: the portal's feedback sets it on a 429
// of a whole request; a refused batch command sets it here. Without a
// readable block, blockFallback from now.
func (h *Handler) blockedUntil(ctx context.Context, portal string, err error) time.Time {
	fallback := h.clock.now().Add(blockFallback)
	apiErr, ok := errors.AsType[*b24.Error](err)
	p, known := h.portal(portal)
	if !ok || !known {
		return fallback
	}
	lim := p.limiter
	if until, blocked, lerr := lim.Blocked(ctx, portal, apiErr.Method); lerr == nil && blocked {
		return until
	}
	if berr := lim.Block(ctx, portal, apiErr.Method, time.Time{}); berr != nil {
		h.logger.WarnContext(ctx, "block method after OPERATION_TIME_LIMIT", "portal", portal, "method", apiErr.Method, "err", berr)
	}
	if until, blocked, lerr := lim.Blocked(ctx, portal, apiErr.Method); lerr == nil && blocked {
		return until
	}
	return fallback
}

// mapErrors is the middleware that applies decide to what a task run
// returned (once per run) and records final failures: of the import item a
// single task creates, or of every item of a batch.
func (h *Handler) mapErrors(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if err == nil {
			return nil
		}
		ref := refOf(t)
		err = h.probeIfDue(ctx, ref.Portal, err)
		d := h.decide(ctx, ref.Portal, err)
		err = d.taskError()
		logOutcome(ctx, d.outcome())
		if !isFinal(ctx, err) {
			return err
		}
		logOutcome(ctx, outcomeFailed)
		switch t.Type() {
		case TypeBatchCreate:
			return h.failBatch(ctx, t, err)
		case TypeImportReconcile:
			return h.failReconcile(ctx, t, err)
		case TypeImportPlan:
			return err
		}
		h.metrics.failed(ref.Portal, t.Type())
		if ref.ImportID != "" && h.imports != nil {
			if ferr := h.imports.Failed(ctx, ref.ImportID, ref.Key, err.Error()); ferr != nil {
				// The task is retried so the failure gets recorded.
				return fmt.Errorf("record failure of import item %s: %w (after: %v)", ref.Key, ferr, err)
			}
		}
		return err
	})
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

// IsFailure tells asynq whether err counts against the task's retries.
// Parked tasks (limits, blocks) do not: however long the portal keeps us
// waiting, the retry budget is left for real failures.
func IsFailure(err error) bool {
	var p *ParkError
	return !errors.As(err, &p)
}

// Backoff computes when asynq runs a task again (its RetryDelayFunc):
// parked tasks come back at their time (plus a little jitter so a fleet
// does not wake at one instant), other failures back off exponentially with
// ±25% jitter: a single task from 2 s to 10 min, a batch:create task from
// 1 s to 1 min. A batch carries a whole level of an import (up to 50 items)
// and everything below it waits for it, so a long pause after a few unlucky
// failures stalls the import far more than it spares the portal: each
// attempt is one request, paced by the shared limiter like any other.
//
// Now and Jitter are injected for tests; the zero Backoff uses time.Now and
// math/rand/v2. Jitter(n) returns a value in [0, n).
type Backoff struct {
	Now    func() time.Time
	Jitter func(n int64) int64
}

// RetryDelay is Backoff{}.RetryDelay, the worker's asynq RetryDelayFunc.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	return Backoff{}.RetryDelay(n, err, t)
}

// RetryDelay implements asynq.RetryDelayFunc.
func (b Backoff) RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	c := clock{nowFn: b.Now, jitterFn: b.Jitter}
	var p *ParkError
	if errors.As(err, &p) {
		d := max(p.Until.Sub(c.now()), 0)
		return d + time.Duration(c.rand(int64(500*time.Millisecond)))
	}
	base, ceiling := 2*time.Second, 10*time.Minute
	if t != nil && t.Type() == TypeBatchCreate {
		base, ceiling = time.Second, time.Minute
	}
	d := ceiling
	if n < 20 {
		d = min(base<<n, ceiling)
	}
	return d + time.Duration(c.rand(int64(d)/2)) - d/4
}

// clock is the time and randomness source of the package's decisions; the
// zero value uses time.Now and math/rand/v2.
type clock struct {
	nowFn    func() time.Time
	jitterFn func(n int64) int64
}

func (c clock) now() time.Time {
	if c.nowFn == nil {
		return time.Now()
	}
	return c.nowFn()
}

// rand returns a value in [0, n); 0 when n <= 0.
func (c clock) rand(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if c.jitterFn == nil {
		return rand.Int64N(n)
	}
	return c.jitterFn(n)
}
