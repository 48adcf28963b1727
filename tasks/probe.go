package tasks

// Probing an unavailable portal. While a portal is unavailable (feedback.go)
// its tasks park until the next probe time the limiter sets. The first task
// to come back after that time is told to probe: it sends one cheap
// authenticated call, outside the unavailable state but within the request
// budget. When the call succeeds the portal is resumed for the whole fleet
// and its parked tasks are woken; otherwise the task parks until the next
// probe, which backs off from 10 s to 5 min.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/limiter"
)

// FixFor says what an operator must fix for a portal-level code.
func FixFor(code string) string {
	switch code {
	case b24.CodeNoAuthFound, b24.CodeInvalidCredentials:
		return "the webhook or token was revoked: issue a new one and update the portal's credentials"
	case b24.CodeInsufficientScope:
		return "grant the webhook or app the department and crm scopes"
	case b24.CodeUserAccessError, b24.CodeAccessDenied:
		return "the webhook's user lacks the rights, or the plan does not allow the method: check the user and the plan"
	case b24.CodePortalDeleted:
		return "the portal was deleted: remove it from the configuration"
	case b24.CodePortalMoved:
		return "the portal was renamed: update its address"
	case b24.CodeOverloadLimit:
		return "the portal is blocked by Bitrix24 support; it lifts the block"
	case b24.CodePaymentRequired:
		return "the portal's subscription has ended: renew it"
	case b24.CodeInvalidGrant, b24.CodeInvalidClient, b24.CodeWrongClient:
		return "the app's tokens or credentials were refused: reinstall the app or update its tokens"
	}
	return "check the portal's credentials and plan"
}

// probeCall is the cheap read that tells whether method's portal works
// again: one page of the departments (ID 1, the root) or of the workplaces.
func probeCall(method string) (probeMethod string, params map[string]any) {
	if strings.HasPrefix(method, "crm.") {
		return b24.MethodAutomatedSolutionList, map[string]any{"filter": map[string]any{"id": 0}}
	}
	return b24.MethodDepartmentGet, map[string]any{"ID": 1}
}

// probe sends the one probe of the unavailable portal and resumes it when
// the call succeeds. It reports whether the portal works again.
func (p *Portal) probe(ctx context.Context) (bool, error) {
	u, ok, err := p.limiter.Availability(ctx, p.Name)
	if err != nil || !ok {
		return !ok, err
	}
	method, params := probeCall(u.Method)
	if err := p.limiter.WaitProbe(ctx, p.Name, method); err != nil {
		return false, err
	}
	if _, err := p.Client.Call(withPrepaid(ctx, method), method, params, nil); err != nil {
		// Still unavailable (the feedback kept the state), or the probe
		// could not tell (a network error): the next probe will.
		return false, nil
	}
	was, err := p.limiter.Resume(ctx, p.Name)
	if err != nil {
		return false, err
	}
	if was {
		p.logger.Error("portal available again: its tasks resume", "portal", p.Name, "was", u.Code,
			"unavailable_for", time.Since(u.Since).Round(time.Second).String())
	}
	return true, nil
}

// probeIfDue runs the probe when err says this task is the one to probe an
// unavailable portal. When the portal works again it returns a park until
// now, so that the task runs again at once, and wakes the portal's other
// parked tasks; otherwise it returns err.
func (h *Handler) probeIfDue(ctx context.Context, portal string, err error) error {
	ue, ok := errors.AsType[*limiter.UnavailableError](err)
	p, known := h.portal(portal)
	if !ok || !ue.Probe || !known {
		return err
	}
	back, perr := p.probe(ctx)
	if perr != nil {
		h.logger.WarnContext(ctx, "probe of an unavailable portal", "portal", portal, "err", perr)
	}
	if !back {
		return err
	}
	h.wakeParked(ctx, portal)
	return &ParkError{Until: h.clock.now(), Reason: fmt.Sprintf("portal %s is available again", portal), Err: err}
}

// wakeParked makes the portal's parked tasks due now (they parked until the
// next probe). Without an inspector they come back at their own time.
func (h *Handler) wakeParked(ctx context.Context, portal string) {
	if h.inspector == nil {
		return
	}
	if err := WakeParked(h.inspector, portal); err != nil {
		h.logger.WarnContext(ctx, "wake parked tasks", "portal", portal, "err", err)
	}
}

// WakeParked moves the portal's scheduled and retrying tasks to pending, so
// that tasks parked while it was unavailable run now (a task parked for
// another reason, such as a blocked method, parks again at once).
func WakeParked(in *asynq.Inspector, portal string) error {
	q := QueueName(portal)
	_, err1 := in.RunAllScheduledTasks(q)
	_, err2 := in.RunAllRetryTasks(q)
	err := errors.Join(err1, err2)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	return err
}
