package limiter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/b24queue/b24queue/internal/claim"
)

// Reserving a slot: one run of grantScript and the reading of its answer.

// grant is a reserved slot.
type grant struct {
	delay time.Duration // from the script's now to the slot
	slot  int64         // the slot, µs, by the scripts' clock
}

// Modes of the claims of a grant (grantScript's ARGV[10]); the Lua names
// them too.
const (
	claimModeNone  = 0
	claimModeTake  = 1 // take the one claim; grant only when it was fresh
	claimModeCheck = 2 // grant only when every claim is still the attempt's
)

// inflightError is reserve's answer when the calls of the method already in
// flight may use up its operating budget: ask again after wait, when some
// have been answered and reported.
type inflightError struct{ wait time.Duration }

func (e *inflightError) Error() string {
	return fmt.Sprintf("calls in flight may use up the operating budget; ask again in %s", e.wait)
}

// reserveAfterInflight reserves like reserve, sleeping and asking again while
// the method's calls in flight hold it back, up to limit (then a
// *DelayError).
func (l *Limiter) reserveAfterInflight(ctx context.Context, p *portalState, portal, method string, limit time.Time, cl *claims, probe bool) (grant, error) {
	for {
		g, err := l.reserve(ctx, p, portal, method, time.Until(limit), cl, probe)
		var fl *inflightError
		if !errors.As(err, &fl) {
			return g, err
		}
		if time.Now().Add(fl.wait).After(limit) {
			return grant{}, &DelayError{Portal: portal, Delay: fl.wait}
		}
		if err := sleep(ctx, fl.wait); err != nil {
			return grant{}, fmt.Errorf("limiter: wait for portal %q: %w", portal, err)
		}
	}
}

func (l *Limiter) reserve(ctx context.Context, p *portalState, portal, method string, allowed time.Duration, cl *claims, probe bool) (grant, error) {
	c := p.cfg
	maxDelay := max(allowed.Microseconds(), 0)
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	ks := []string{l.keys.Bucket(portal), l.keys.Block(portal, method), l.keys.Report(portal, method), l.keys.Unavailable(portal),
		l.keys.Requests(portal)}
	args := []any{l.nowArg(), c.Rate, c.SharedBurst(), c.MinRate, maxDelay, c.Burst, idleTTL.Milliseconds(),
		c.operatingThreshold().Microseconds(), inflightTTL.Microseconds()}
	if cl == nil {
		args = append(args, claimModeNone, 0)
	} else {
		args = append(args, cl.mode, max(cl.ttl.Milliseconds(), 1))
	}
	probeArg := 0
	if probe {
		probeArg = 1
	}
	args = append(args, probeArg, l.probeFirst.Microseconds(), l.probeMax.Microseconds())
	if cl != nil {
		for _, cm := range cl.list {
			ks = append(ks, cm.Key)
			args = append(args, cm.Owner, cm.Token)
		}
	}
	res, err := grantScript.Run(cctx, l.rdb, ks, args...).Slice()
	if err != nil {
		return grant{}, fmt.Errorf("limiter: reserve slot for portal %q: %w", portal, err)
	}
	ans, err := parseGrant(res)
	if err != nil {
		return grant{}, fmt.Errorf("limiter: reserve slot for portal %q: %w", portal, err)
	}
	if ans.code != grantBlocked {
		l.setTracked(portal, method, ans.tracked)
	}
	val := time.Duration(ans.val) * time.Microsecond
	switch ans.code {
	case grantGranted:
		l.metrics.EffectiveRate(portal, ans.rate)
		if cl != nil && cl.mode == claimModeTake {
			cl.taken = claim.Taken{State: claim.Fresh}
		}
		return grant{delay: val, slot: ans.slot}, nil
	case grantBlocked:
		l.metrics.Blocked(portal, method)
		return grant{}, &BlockedError{Portal: portal, Method: method, Until: time.UnixMicro(ans.val)}
	case grantInflight:
		return grant{}, &inflightError{wait: val}
	case grantClaimed:
		cl.taken = claim.Taken{State: claim.State(ans.slot)}
		if ans.val > 0 {
			cl.taken.Since = time.UnixMicro(ans.val)
		}
		return grant{}, errClaimNotFresh
	case grantSuperseded:
		return grant{}, &SupersededError{Portal: portal, Indexes: ans.superseded}
	case grantUnavailable:
		return grant{}, &UnavailableError{Portal: portal, Code: ans.code2, Description: ans.desc,
			Until: time.UnixMicro(ans.val), Probe: ans.slot == 1}
	default: // grantDelayed
		return grant{}, &DelayError{Portal: portal, Delay: val}
	}
}

// errClaimNotFresh ends a WaitClaim whose claim was not fresh: no slot was
// granted and the caller reads what was found in claims.taken.
var errClaimNotFresh = errors.New("claim not fresh")

// grantAnswer is grantScript's answer.
type grantAnswer struct {
	code, val, slot int64
	rate            float64
	tracked         bool
	superseded      []int  // 0-based indexes of claims not the attempt's
	code2, desc     string // an unavailable portal's code and description
}

func parseGrant(res []any) (grantAnswer, error) {
	bad := func() error { return fmt.Errorf("unexpected script answer %v", res) }
	if len(res) != 6 {
		return grantAnswer{}, bad()
	}
	code, ok1 := res[0].(int64)
	val, ok2 := res[1].(int64)
	s, ok3 := res[2].(string)
	slot, ok4 := res[3].(int64)
	tracked, ok5 := res[4].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return grantAnswer{}, bad()
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return grantAnswer{}, fmt.Errorf("unexpected rate in script answer: %w", err)
	}
	ans := grantAnswer{code: code, val: val, slot: slot, rate: r, tracked: tracked == 1}
	list, _ := res[5].([]any)
	if code == grantUnavailable && len(list) == 2 {
		ans.code2, _ = list[0].(string)
		ans.desc, _ = list[1].(string)
		return ans, nil
	}
	for _, v := range list {
		if n, ok := v.(int64); ok {
			ans.superseded = append(ans.superseded, int(n)-1)
		}
	}
	return ans, nil
}
