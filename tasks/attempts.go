package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/keys"
	"github.com/b24queue/b24queue/limiter"
)

// Attempts keeps one marker per task in Redis while a create call's outcome
// is unknown. Begin sets it just before the portal is called; Clear removes
// it when the portal surely created nothing (a definite error); after a
// success it is left to expire. A marker
// found by Begin means an earlier attempt may have created the object (the
// worker was killed, shut down, or lost the response), so the caller must
// look the object up before creating. Attempts is safe for concurrent use.
type Attempts struct {
	rdb  redis.UniversalClient
	keys keys.Space // also names the batch claims (claimKey)
	ttl  time.Duration
	// replicas > 0 makes Begin wait (WAIT) until that many replicas hold
	// the marker, at most replicaWait: with Sentinel, a failover right after
	// the call then cannot lose the marker.
	replicas    int
	replicaWait time.Duration
}

// DefaultAttemptTTL bounds how long a marker outlives its task: longer than
// any retry schedule of a task, short enough not to accumulate.
const DefaultAttemptTTL = 7 * 24 * time.Hour

// AttemptsOption adjusts NewAttempts.
type AttemptsOption func(*Attempts)

// WithReplicaAck makes Begin also wait (Redis WAIT, in the same round trip)
// until replicas replicas acknowledge the marker, at most timeout. Meant for
// Redis with Sentinel failover, where replication is asynchronous: without
// it, a failover in the milliseconds after Begin could lose the marker
// together with the task's dequeue, and the re-run would not look up. When
// fewer replicas answer in time, Begin goes on (availability first) and the
// shortfall is only as wide as before.
func WithReplicaAck(replicas int, timeout time.Duration) AttemptsOption {
	return func(a *Attempts) { a.replicas, a.replicaWait = replicas, timeout }
}

// NewAttempts returns markers stored under prefix (empty means
// keys.DefaultPrefix), at PREFIX:{PORTAL}:attempt:TASK_ID.
func NewAttempts(rdb redis.UniversalClient, prefix string, opts ...AttemptsOption) *Attempts {
	a := &Attempts{rdb: rdb, keys: keys.New(prefix), ttl: DefaultAttemptTTL}
	for _, o := range opts {
		o(a)
	}
	return a
}

func (a *Attempts) key(portal, taskID string) string { return a.keys.Attempt(portal, taskID) }

// Begin marks the start of an attempt and reports whether an earlier attempt
// left its marker behind (one Redis round trip). Without a task ID (a task
// run outside an asynq server) nothing is marked.
func (a *Attempts) Begin(ctx context.Context, portal, taskID string) (uncertain bool, err error) {
	if taskID == "" {
		return false, nil
	}
	if a.replicas > 0 {
		pipe := a.rdb.Pipeline()
		set := pipe.SetArgs(ctx, a.key(portal, taskID), time.Now().Unix(), redis.SetArgs{Get: true, TTL: a.ttl})
		pipe.Do(ctx, "WAIT", a.replicas, a.replicaWait.Milliseconds())
		_, _ = pipe.Exec(ctx)
		err = set.Err()
	} else {
		err = a.rdb.SetArgs(ctx, a.key(portal, taskID), time.Now().Unix(), redis.SetArgs{Get: true, TTL: a.ttl}).Err()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("write attempt marker: %w", err)
	}
	return true, nil
}

// Mark returns the marker of taskID as a limiter.Mark, so that the limiter
// can set it with the grant of the call's slot (Begin's work without a
// round trip of its own). ok is false when that cannot replace Begin: no
// task ID, or replica acknowledgement wanted (WAIT cannot run in a script).
func (a *Attempts) Mark(portal, taskID string) (m limiter.Mark, ok bool) {
	if taskID == "" || a.replicas > 0 {
		return limiter.Mark{}, false
	}
	return limiter.Mark{Key: a.key(portal, taskID), TTL: a.ttl}, true
}

// Clear removes the marker of taskID.
func (a *Attempts) Clear(ctx context.Context, portal, taskID string) error {
	if taskID == "" {
		return nil
	}
	if err := a.rdb.Del(ctx, a.key(portal, taskID)).Err(); err != nil {
		return fmt.Errorf("clear attempt marker: %w", err)
	}
	return nil
}
