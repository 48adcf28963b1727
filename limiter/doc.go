// Package limiter shares one request budget per portal between every worker
// process, through Redis.
//
// A portal (Bitrix24 counts requests per portal, not per client) drains Rate
// requests per second from a bucket of Burst. A [Limiter] keeps a GCRA bucket
// per portal in Redis and grants slots with one Lua script per request, so
// the sum over all processes stays within Rate and Burst less a headroom
// ([Config.Headroom], [Config.SharedBurst]) that absorbs network jitter: a
// request granted at the bucket's exact edge may reach the portal a few
// milliseconds early and be refused. Time comes from the Redis server
// (TIME), so clock skew between hosts does not matter. Each process
// additionally smooths its own requests with a local golang.org/x/time/rate
// limiter at Rate (burst [Config.LocalBurst]), which costs no Redis round
// trip.
//
// Three kinds of feedback are shared the same way:
//
//   - [Limiter.Throttled], after a 503: a portal-wide cooldown and a
//     multiplicative decrease of the effective rate (×0.8, floor MinRate),
//     recovered by ×1.1 after every Burst grants without a 503 (AIMD).
//     See "Pausing after a 503" below.
//   - [Limiter.Observe] / [Limiter.ObserveCall], after answers: when a
//     method's reported operating time reaches OperatingMargin ×
//     OperatingLimit the method is blocked until the portal's reset time,
//     before the portal answers 429. A report with the call's processing
//     time also makes every grant of the method count a call in flight, held
//     back while those in flight could use up the budget (see ObserveCall).
//   - [Limiter.Block], after a 429: the method is blocked until the given
//     time or for OperatingWindow.
//
// [Limiter.Wait] never holds a caller for long: if the next slot is further
// than the context deadline or the maximum wait, it returns a [*DelayError]
// without reserving, and a blocked method yields a [*BlockedError]; the caller
// parks its work and comes back later.
//
// # Pausing after a 503
//
// Every 503 is followed by a portal-wide pause. The cooldown in the bucket
// stops new grants, but goroutines that reserved a slot before the 503 are
// already asleep in Wait until that slot. So the throttle script also
// PUBLISHes the cooldown's end (µs since the epoch, by the Redis clock) on
// PREFIX:{PORTAL}:throttled, atomically with the bucket change. Each Limiter
// keeps one pattern subscription to those channels (started by the first
// Wait, stopped by [Limiter.Close]; plain PUBLISH reaches every node of a
// Redis Cluster) and wakes its sleeping waiters; the Limiter that called
// Throttled wakes its own at once, without waiting for the echo. A woken
// waiter whose slot falls inside the cooldown gives it up and reserves again
// behind the cooldown: a second round trip on that rare path only, while the
// normal path stays at one. Only requests already on the wire still reach
// the portal between a 503 and the end of its cooldown.
//
// If the subscription is down (Redis restarting) the Limiter logs it, keeps
// granting, and resubscribes when Redis is back; meanwhile sleeping waiters
// go at their slots, and the cooldown still holds for every new grant.
//
// # Keys
//
// The limiter's keys are named in internal/keys, the one file with the
// layout of every b24queue key (PREFIX is [DefaultPrefix] unless
// [WithPrefix] says otherwise): a portal's bucket, the block and the
// operating report of each method, and the pub/sub channel of its 503
// cooldowns (which holds nothing). The {PORTAL} hash tag makes every key of
// a portal hash to one Redis Cluster slot; every key has a TTL. What each
// script takes as KEYS and ARGV is documented with the script.
//
// The package knows nothing of Bitrix24 JSON or of the task queue: it takes
// portal names, method names, rates and times.
package limiter
