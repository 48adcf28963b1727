package tasks

// Exactly once on an at-least-once queue, per object.
//
// Every create takes a claim on its object first (internal/claim): a
// department is the same object as another with the same PARENT and NAME
// (trimmed, case ignored, as the portal's LIKE compares), a workplace as
// another with the same title. The claim's owner is the task (an import
// item's deterministic task ID, so a resubmitted copy is the same owner);
// each run has its own token. What the claim says decides the run:
//
//   - Fresh: nobody was on it. A first attempt creates at once, without a
//     lookup; for a single task the claim is taken in the limiter's grant of
//     the create request's slot, so this costs no round trip.
//   - Resumed: an earlier run of the same task was on it and may have
//     created the object (a crash, a lost answer, a lease that expired). Its
//     create request may even still be running at the portal: the lookup
//     waits until the request can no longer be running (its send time plus
//     the portal's longest request, RequestCap), then adopts what it finds.
//   - Look: someone finished with this object (created it, or gave up not
//     knowing): look up first, adopt a match.
//   - Busy: another task is creating the same object (two imports sharing a
//     department, two API calls): wait (park) and come back; then it is Look
//     and the department is adopted, never created twice.
//
// Right before a create request leaves, the limiter's grant checks in the
// same atomic step that the claim is still this run's (fencing): a run that
// was paused past its lease, while another run took the task over, is not
// granted its slot. After the outcome, the run settles the claim: Known
// (created, adopted, or unknown for good: whoever comes next looks first)
// or Free (the portal surely created nothing).

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/claim"
	"github.com/b24queue/b24queue/internal/keys"
)

// Defaults of Claims.
const (
	// DefaultClaimTTL bounds how long a claim outlives its owner's last
	// run: longer than any retry schedule of a task (25 retries, at most
	// 10 min apart), so that an unknown outcome is never forgotten while
	// the task may still run.
	DefaultClaimTTL = 24 * time.Hour
	// DefaultLookTTL is how long a settled claim makes the next creator of
	// the same object look first: far longer than anyone waits on a busy
	// claim. (Imports also reconcile with the portal before they create.)
	DefaultLookTTL = time.Hour
	// DefaultRequestCap is the longest a create request can still run at
	// the portal after it was sent: a Bitrix24 cloud request runs at most
	// 60 s, plus a margin for clocks and the network.
	DefaultRequestCap = 65 * time.Second
	// busyPark is how long a task waits before it asks again for an object
	// another task is creating.
	busyPark = 3 * time.Second
)

// Claims takes and settles the object claims of creates. It is safe for
// concurrent use.
type Claims struct {
	rdb        redis.UniversalClient
	keys       keys.Space
	ttl        time.Duration
	lookTTL    time.Duration
	requestCap time.Duration
	// replicas > 0 makes claims wait (WAIT) until that many replicas hold
	// them, at most replicaWait: with Sentinel, a failover right after a
	// claim then cannot lose it.
	replicas    int
	replicaWait time.Duration
}

// ClaimsOption adjusts NewClaims.
type ClaimsOption func(*Claims)

// WithReplicaAck makes every claim also wait (Redis WAIT, in the same round
// trip) until replicas replicas acknowledge it, at most timeout. Meant for
// Redis with Sentinel failover, where replication is asynchronous: without
// it, a failover in the milliseconds after a claim could lose it together
// with the task's dequeue, and the re-run would not look up. When fewer
// replicas answer in time the run goes on (availability first). The claim is
// then taken in a round trip of its own, not in the limiter's grant (WAIT
// cannot run in a script).
func WithReplicaAck(replicas int, timeout time.Duration) ClaimsOption {
	return func(c *Claims) { c.replicas, c.replicaWait = replicas, timeout }
}

// WithRequestCap sets how long a create request may still run at the portal
// after it was sent (default DefaultRequestCap). Tests with a scaled-down
// simulator lower it.
func WithRequestCap(d time.Duration) ClaimsOption {
	return func(c *Claims) {
		if d > 0 {
			c.requestCap = d
		}
	}
}

// NewClaims returns claims stored under prefix ("" means keys.DefaultPrefix).
func NewClaims(rdb redis.UniversalClient, prefix string, opts ...ClaimsOption) *Claims {
	c := &Claims{rdb: rdb, keys: keys.New(prefix), ttl: DefaultClaimTTL, lookTTL: DefaultLookTTL, requestCap: DefaultRequestCap}
	for _, o := range opts {
		o(c)
	}
	return c
}

// object kinds in claim keys.
const (
	kindDepartment = "d"
	kindWorkplace  = "w"
)

// departmentIdentity is what makes two departments the same object.
func departmentIdentity(parent int64, name string) string {
	return strconv.FormatInt(parent, 10) + "\x00" + strings.ToLower(strings.TrimSpace(name))
}

// workplaceIdentity is what makes two workplaces the same object.
func workplaceIdentity(title string) string { return strings.ToLower(strings.TrimSpace(title)) }

// of returns the claim of run token of owner on an object of portal.
func (c *Claims) of(portal, kind, identity, owner, token string) claim.Claim {
	return claim.Claim{Key: c.keys.Object(portal, kind, identity), Owner: owner, Token: token}
}

// take takes cs without a grant: one round trip, and one more for WAIT
// when replicas must acknowledge.
func (c *Claims) take(ctx context.Context, cs []claim.Claim) ([]claim.Taken, error) {
	taken, err := claim.Take(ctx, c.rdb, c.ttl, cs)
	if err == nil && c.replicas > 0 {
		// Availability first: fewer replicas in time still goes on.
		_ = c.rdb.Do(ctx, "WAIT", c.replicas, c.replicaWait.Milliseconds()).Err()
	}
	return taken, err
}

// settle settles claims; a failure is logged by the caller only: a claim
// left "run" makes the next run of its owner look first and others wait
// until its TTL, which is safe.
func (c *Claims) settle(ctx context.Context, ss []claim.Settlement) error {
	return claim.Settle(context.WithoutCancel(ctx), c.rdb, c.lookTTL, ss)
}

// lookAfter returns when an object whose claim was found Resumed may be
// looked up: once the earlier run's create request can no longer be running
// at the portal. Zero when no request was sent.
func (c *Claims) lookAfter(t claim.Taken) time.Time {
	if t.State != claim.Resumed || t.Since.IsZero() {
		return time.Time{}
	}
	return t.Since.Add(c.requestCap)
}
