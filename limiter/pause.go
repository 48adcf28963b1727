package limiter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pausing waiters that already hold a slot.
//
// Throttled pushes the shared bucket past the cooldown, but a goroutine that
// reserved its slot before the 503 is asleep in Wait with a timer for that
// slot, and the bucket cannot call it back. So the throttle script also
// PUBLISHes the cooldown's end on PREFIX:{PORTAL}:throttled (keys.Throttled);
// every Limiter keeps one pattern subscription to those channels and
// broadcasts each end to its sleeping waiters through a pauseState. A waiter
// whose slot is before the end gives it up and reserves again (a second
// round trip, only on this rare path); the new slot is after the cooldown.
// The normal path costs nothing: the subscription is a separate, idle
// connection.

// Timing of the subscription loop.
const (
	// subHealthEvery is how long the subscription may stay silent before it
	// is pinged, so that a connection that died without a FIN is noticed.
	subHealthEvery = 15 * time.Second
	// subRetryMin and subRetryMax bound the backoff between reconnection
	// attempts while Redis is unreachable.
	subRetryMin = 50 * time.Millisecond
	subRetryMax = 5 * time.Second
)

// pauseState broadcasts a portal's cooldowns to the waiters of one process.
// until only grows; ch is closed and replaced whenever it does, waking every
// waiter that selected on the previous one.
type pauseState struct {
	mu    sync.Mutex
	until int64 // end of the latest cooldown, µs, by the scripts' clock
	ch    chan struct{}
}

// snapshot returns the latest cooldown end and the channel closed at the next
// later one. A waiter checks until first and then selects on ch, so an event
// between the two is never lost.
func (p *pauseState) snapshot() (int64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until, p.ch
}

// extend records a cooldown ending at until (µs) and wakes the waiters if it
// ends later than any seen before. It reports whether it did.
func (p *pauseState) extend(until int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until <= p.until {
		return false
	}
	p.until = until
	close(p.ch)
	p.ch = make(chan struct{})
	return true
}

// pauseOf returns the portal's pauseState, creating it. It is created for
// portals this process has not used yet too (events are rare, and portals
// are few), so that a waiter that looks it up after an event still sees it.
func (l *Limiter) pauseOf(portal string) *pauseState {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pauses[portal]
	if !ok {
		p = &pauseState{ch: make(chan struct{})}
		l.pauses[portal] = p
	}
	return p
}

// subscription is the Limiter's one pub/sub connection.
type subscription struct {
	ps     *redis.PubSub
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has returned
	ready  chan struct{} // closed at the first confirmed subscription
}

// subscribe starts the subscription once, unless the Limiter is closed. It
// does no I/O itself: connecting happens in the background, so a Wait never
// waits for it (and an unreachable Redis fails Wait by its own round trip).
func (l *Limiter) subscribe() {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	if l.closed || l.sub != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{
		ps:     l.rdb.PSubscribe(ctx), // no patterns yet: no I/O
		cancel: cancel,
		done:   make(chan struct{}),
		ready:  make(chan struct{}),
	}
	l.sub = s
	go l.listen(ctx, s)
}

// portalOfChannel is the inverse of l.keys.Throttled, for valid portal
// names only.
func (l *Limiter) portalOfChannel(channel string) (string, bool) {
	portal, ok := l.keys.PortalOfThrottled(channel)
	if !ok || checkPortal(portal) != nil {
		return "", false
	}
	return portal, true
}

// listen receives cooldowns until the Limiter is closed or its client is.
// While Redis is unreachable it logs once, retries with backoff, and logs
// again when the subscription is back; go-redis resubscribes the pattern on
// the new connection. Cooldowns published meanwhile are missed: waiters then
// go at their slots, as they would without this mechanism.
func (l *Limiter) listen(ctx context.Context, s *subscription) {
	defer close(s.done)
	pattern := l.keys.ThrottledPattern()
	var (
		down    bool
		backoff = subRetryMin
		ready   bool
	)
	lost := func(err error) {
		if !down {
			l.log.Warn("limiter: pause subscription lost; waiters keep their slots until it is back",
				"err", err)
			down = true
		}
		if sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(2*backoff, subRetryMax)
	}
	if err := s.ps.PSubscribe(ctx, pattern); err != nil && ctx.Err() == nil {
		lost(err) // the pattern is kept; Receive connects and subscribes again
	}
	for ctx.Err() == nil {
		msg, err := s.ps.ReceiveTimeout(ctx, subHealthEvery)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, redis.ErrClosed) {
			l.log.Warn("limiter: pause subscription ended: Redis client closed")
			return
		}
		if isTimeout(err) {
			// Silence: check the connection. A failed ping drops it and the
			// next Receive reconnects.
			if err = s.ps.Ping(ctx); err == nil {
				continue
			}
		}
		if err != nil {
			lost(err)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if down {
				l.log.Info("limiter: pause subscription restored")
				down = false
			}
			backoff = subRetryMin
			if !ready {
				ready = true
				close(s.ready)
			}
		case *redis.Message:
			l.onPauseMessage(m)
		}
	}
}

// onPauseMessage applies a cooldown published by any process (this one's
// own echo included: extend ignores an end it already knows).
func (l *Limiter) onPauseMessage(m *redis.Message) {
	portal, ok := l.portalOfChannel(m.Channel)
	if !ok {
		return
	}
	until, err := strconv.ParseInt(m.Payload, 10, 64)
	if err != nil {
		l.log.Warn("limiter: bad pause message", "portal", portal, "err", err)
		return
	}
	l.pauseOf(portal).extend(until)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close stops the Limiter's pause subscription and waits for it to end. It
// does not close the Redis client, which belongs to the caller.
//
// After Close the Limiter still grants slots and Throttled still pauses
// this process's own waiters, but cooldowns reported by other processes no
// longer wake them (they go at their reserved slots). Close is safe to call
// more than once and concurrently with other methods; it returns the error
// of closing the pub/sub connection, if any.
func (l *Limiter) Close() error {
	l.subMu.Lock()
	if l.closed {
		l.subMu.Unlock()
		return nil
	}
	l.closed = true
	s := l.sub
	l.subMu.Unlock()
	if s == nil {
		return nil
	}
	s.cancel()
	err := s.ps.Close()
	<-s.done
	if err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("limiter: close pause subscription: %w", err)
	}
	return nil
}

// sleepUntil waits until at, or until wake is closed (woken = true), or
// until ctx is done. It returns at once, not woken, if at has passed.
func sleepUntil(ctx context.Context, at time.Time, wake <-chan struct{}) (woken bool, err error) {
	d := time.Until(at)
	if d <= 0 {
		return false, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false, nil
	case <-wake:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// sleep waits for d on a timer, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
