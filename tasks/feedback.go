package tasks

// Feedback: every answer of a portal is reported to the shared limiter, so
// that one worker's 503 or 429 slows the whole fleet. What the queue then
// does with the task is decided in errors.go.

import (
	"context"
	"errors"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/limiter"
)

// observe is the b24 observer of one portal: it reports every answer to the
// shared limiter and to the metrics.
//   - QUERY_LIMIT_EXCEEDED: limiter.Throttled, a fleet-wide cooldown and a
//     lower shared rate;
//   - OPERATION_TIME_LIMIT of a whole request: limiter.Block for the method
//     (a refused batch command is blocked by decide, see blockedUntil);
//   - a success: the method's operating time (and each batch command's),
//     which blocks the method before the portal answers 429;
//   - a portal-level error (a revoked credential, a deleted or moved
//     portal, a refused token refresh...): limiter.MarkUnavailable, which
//     parks every task of the portal fleet-wide until a probe succeeds or
//     an operator resumes it (see probe.go).
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
	case b24.PortalUnavailable:
		err = p.markUnavailable(ctx, info.Method, info.Err)
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
// (limiter.Limiter.ObserveCall), which needs every answer. Every report is
// also sampled for people (limiter.Limiter.NoteUsage: one small write per
// method every few seconds per process, for the /portals/ page).
func (p *Portal) observeOperating(ctx context.Context, method string, t b24.Time) error {
	operating := time.Duration(t.Operating * float64(time.Second))
	p.metrics.operating(p.Name, method, t.Operating)
	r := limiter.Report{Operating: operating, ResetAt: t.ResetAt(), Processing: time.Duration(t.Processing * float64(time.Second))}
	var err error
	if method != b24.MethodBatch { // billed per command, never to batch
		err = p.limiter.NoteUsage(ctx, p.Name, method, r)
	}
	if operating < p.limits.OperatingLimit/2 && !p.limiter.Tracked(p.Name, method) {
		return err
	}
	return errors.Join(err, p.limiter.ObserveCall(ctx, p.Name, method, r))
}

// markUnavailable records that the portal is unusable because of err, and
// logs each change of that state once (at ERROR, with what to fix).
func (p *Portal) markUnavailable(ctx context.Context, method string, err error) error {
	code, desc := "UNKNOWN", err.Error()
	if e, ok := errors.AsType[*b24.Error](err); ok {
		code, desc = e.Code, e.Description
	}
	changed, merr := p.limiter.MarkUnavailable(ctx, p.Name, method, code, desc)
	if merr == nil && changed {
		p.logger.Error("portal unavailable: its tasks wait until a probe succeeds or an operator resumes it",
			"portal", p.Name, "code", code, "description", desc, "method", method, "fix", FixFor(code))
	}
	return merr
}
