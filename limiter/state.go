package limiter

// Reading a portal's shared state for people (the worker's /portals/ page):
// the same Redis keys the grants use, read without changing them. The one
// write here is NoteUsage, a sampled copy of operating reports that the
// grants do not need.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// HistoryWindow is how far back State reports the requests granted.
const HistoryWindow = 5 * time.Minute

// UsageEvery is how often at most one process records a method's operating
// report with NoteUsage.
const UsageEvery = 5 * time.Second

// State is a portal's limiter state at one moment, as every process sees it.
type State struct {
	Portal string `json:"portal"`
	// Now is the moment of the reading, by the scripts' clock (the Redis
	// server's, or the injected one).
	Now time.Time `json:"now"`
	// Config is this process's configuration of the portal.
	Config Config `json:"config"`
	// SharedBurst is what the shared bucket grants at once (Config.SharedBurst).
	SharedBurst int `json:"shared_burst"`
	// Rate is the effective (adaptive) rate in requests per second.
	Rate float64 `json:"rate"`
	// Level is how many requests the shared bucket holds now, slots
	// reserved ahead included (at most SharedBurst, more during a cooldown).
	Level float64 `json:"level"`
	// NextSlot is when a request asking now would be sent (Now if at once).
	NextSlot time.Time `json:"next_slot"`
	// CooldownUntil is the end of a 503 cooldown still running (zero: none).
	CooldownUntil time.Time `json:"cooldown_until,omitzero"`
	// LastDecrease is when a 503 last lowered the rate (zero: not in the
	// bucket's lifetime).
	LastDecrease time.Time `json:"last_decrease,omitzero"`
	// Requests counts the requests granted in each second of the last
	// HistoryWindow, oldest first, by the second of their slot.
	Requests []Second `json:"requests"`
	// Methods are the methods with a report, a block, or asked for, by name.
	Methods []MethodState `json:"methods"`
	// Unavailable says why the portal is unavailable (nil: available).
	Unavailable *Unavailability `json:"unavailable,omitempty"`
}

// Second is the number of requests granted in one second.
type Second struct {
	At       time.Time `json:"at"`
	Requests int       `json:"requests"`
}

// MethodState is a method's operating budget on a portal.
type MethodState struct {
	Method string `json:"method"`
	// Operating is the execution time the portal last reported for the
	// method in its rolling window, at ReportedAt (zero time: no report
	// kept). Once ResetAt has passed the window has moved and the figure is
	// an upper bound.
	Operating  time.Duration `json:"operating"`
	ResetAt    time.Time     `json:"reset_at,omitzero"`
	ReportedAt time.Time     `json:"reported_at,omitzero"`
	// Limit is the budget (Config.OperatingLimit); Threshold the share of
	// it at which the fleet blocks the method itself.
	Limit     time.Duration `json:"limit"`
	Threshold time.Duration `json:"threshold"`
	// BlockedUntil is the end of the method's block (zero: not blocked).
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
	// Tracked is true while the fleet counts the method's calls in flight
	// (it is close to its budget); InFlight is their number.
	Tracked  bool `json:"tracked"`
	InFlight int  `json:"in_flight"`
}

// State reads portal's shared state: the bucket, the 503 cooldown, the
// requests of the last HistoryWindow, the unavailable state, and for every
// method in methods or with a sampled report (NoteUsage) its block and
// operating budget. It changes nothing. Two round trips.
func (l *Limiter) State(ctx context.Context, portal string, methods ...string) (State, error) {
	p, err := l.state(portal)
	if err != nil {
		return State{}, err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	var clock *redis.TimeCmd
	var bucket, reqs, usage *redis.MapStringStringCmd
	_, err = l.rdb.Pipelined(cctx, func(pl redis.Pipeliner) error {
		if l.clock == nil {
			clock = pl.Time(cctx)
		}
		bucket = pl.HGetAll(cctx, l.keys.Bucket(portal))
		reqs = pl.HGetAll(cctx, l.keys.Requests(portal))
		usage = pl.HGetAll(cctx, l.keys.Usage(portal))
		return nil
	})
	if err != nil {
		return State{}, fmt.Errorf("limiter: read state of portal %q: %w", portal, err)
	}
	now := time.Now()
	if l.clock != nil {
		now = l.clock()
	} else if t, err := clock.Result(); err == nil {
		now = t
	}
	st := State{Portal: portal, Now: now, Config: p.cfg, SharedBurst: p.cfg.SharedBurst()}
	st.readBucket(bucket.Val(), p.cfg)
	st.Requests = history(reqs.Val(), now)
	if st.Methods, err = l.methodStates(cctx, portal, p.cfg, now, usage.Val(), methods); err != nil {
		return State{}, err
	}
	u, down, err := ReadAvailability(cctx, l.rdb, l.keys.Prefix(), portal)
	if err != nil {
		return State{}, err
	}
	if down {
		st.Unavailable = &u
	}
	return st, nil
}

// microsField reads a µs timestamp field of a hash (zero time if absent).
func microsField(m map[string]string, f string) time.Time {
	n, err := strconv.ParseFloat(m[f], 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(n))
}

// readBucket fills the rate, level, next slot and cooldown from the GCRA
// state (see scripts.go).
func (st *State) readBucket(m map[string]string, c Config) {
	st.Rate = c.Rate
	if r, err := strconv.ParseFloat(m["rate"], 64); err == nil && r > 0 {
		st.Rate = min(max(r, c.MinRate), c.Rate)
	}
	st.NextSlot = st.Now
	if tat := microsField(m, "tat"); tat.After(st.Now) {
		ahead := tat.Sub(st.Now)
		st.Level = ahead.Seconds() * st.Rate
		t := time.Duration(float64(time.Second) / st.Rate)
		if slot := tat.Add(t - time.Duration(st.SharedBurst)*t); slot.After(st.Now) {
			st.NextSlot = slot
		}
	}
	if end := microsField(m, "cend"); end.After(st.Now) {
		st.CooldownUntil = end
	}
	st.LastDecrease = microsField(m, "dec")
}

// history turns the request ring into one Second per second of the last
// HistoryWindow, oldest first.
func history(ring map[string]string, now time.Time) []Second {
	counts := make(map[int64]int, len(ring))
	for _, v := range ring {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		counts[n/requestScale] = int(n % requestScale)
	}
	n := int(HistoryWindow / time.Second)
	out := make([]Second, n)
	last := now.Unix()
	for i := range out {
		sec := last - int64(n-1-i)
		out[i] = Second{At: time.Unix(sec, 0), Requests: counts[sec]}
	}
	return out
}

// usageRecord is a method's sampled report in the usage hash.
type usageRecord struct {
	Operating int64 `json:"op"`    // µs
	ResetAt   int64 `json:"reset"` // µs, 0 unknown
	At        int64 `json:"at"`    // µs, when it was recorded
}

// methodStates reads the block and report of every method asked for or in
// the usage hash, in one round trip.
func (l *Limiter) methodStates(ctx context.Context, portal string, c Config, now time.Time, usage map[string]string, asked []string) ([]MethodState, error) {
	names := slices.Clone(asked)
	for m := range usage {
		names = append(names, m)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return nil, nil
	}
	blocks := make([]*redis.StringCmd, len(names))
	reports := make([]*redis.MapStringStringCmd, len(names))
	_, err := l.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, m := range names {
			blocks[i] = pl.Get(ctx, l.keys.Block(portal, m))
			reports[i] = pl.HGetAll(ctx, l.keys.Report(portal, m))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("limiter: read methods of portal %q: %w", portal, err)
	}
	out := make([]MethodState, len(names))
	for i, m := range names {
		ms := MethodState{Method: m, Limit: c.OperatingLimit, Threshold: c.operatingThreshold()}
		if v, err := strconv.ParseFloat(blocks[i].Val(), 64); err == nil {
			if until := time.UnixMicro(int64(v)); until.After(now) {
				ms.BlockedUntil = until
			}
		}
		var u usageRecord
		if raw, ok := usage[m]; ok && json.Unmarshal([]byte(raw), &u) == nil {
			ms.Operating, ms.ResetAt, ms.ReportedAt = time.Duration(u.Operating)*time.Microsecond, microTime(u.ResetAt), microTime(u.At)
		}
		ms.readReport(reports[i].Val(), now)
		out[i] = ms
	}
	return out, nil
}

// readReport takes the tracked report hash when it is newer than the
// sampled one.
func (ms *MethodState) readReport(rep map[string]string, now time.Time) {
	if len(rep) == 0 {
		return
	}
	cost, _ := strconv.ParseFloat(rep["cost"], 64)
	if cost > 0 {
		ms.Tracked = true
		fl, _ := strconv.Atoi(rep["fl"])
		ms.InFlight = fl
		if microsField(rep, "fl_at").Add(inflightTTL).Before(now) {
			ms.InFlight = 0
		}
	}
	at := microsField(rep, "observed_at")
	if at.Before(ms.ReportedAt) {
		return
	}
	op, _ := strconv.ParseFloat(rep["operating"], 64)
	ms.Operating = time.Duration(op) * time.Microsecond
	ms.ResetAt = microsField(rep, "reset_at")
	ms.ReportedAt = at
}

func microTime(us int64) time.Time {
	if us <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// usageGate remembers, per portal and method, when this process last
// recorded a report (unix ns), so that NoteUsage writes at most once per
// UsageEvery.
type usageGate struct{ last sync.Map } // portal + "\x00" + method → *atomic.Int64

// NoteUsage records r as method's latest operating report on portal for
// State, also when the method is far from its budget (the grants only keep
// reports of methods close to it, see ObserveCall). It writes at most once
// per UsageEvery per portal and method in this process, and costs no round
// trip otherwise; the record expires after the operating window. Several
// processes may write in turn: the last one wins, which is what people
// want to read.
func (l *Limiter) NoteUsage(ctx context.Context, portal, method string, r Report) error {
	p, err := l.state(portal)
	if err != nil {
		return err
	}
	now := time.Now()
	if !l.usage.due(portal, method, now) {
		return nil
	}
	at := now
	if l.clock != nil {
		at = l.clock()
	}
	raw, _ := json.Marshal(usageRecord{Operating: max(r.Operating, 0).Microseconds(), ResetAt: unixMicro(r.ResetAt), At: at.UnixMicro()})
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	key := l.keys.Usage(portal)
	_, err = l.rdb.Pipelined(cctx, func(pl redis.Pipeliner) error {
		pl.HSet(cctx, key, method, raw)
		pl.PExpire(cctx, key, p.cfg.OperatingWindow)
		return nil
	})
	if err != nil {
		return fmt.Errorf("limiter: note usage of %s on portal %q: %w", method, portal, err)
	}
	return nil
}

// due reports whether a record of (portal, method) is due at now, and if
// so claims it: of concurrent callers, one wins.
func (g *usageGate) due(portal, method string, now time.Time) bool {
	v, _ := g.last.LoadOrStore(portal+"\x00"+method, new(atomic.Int64))
	last := v.(*atomic.Int64)
	for {
		prev := last.Load()
		if prev != 0 && now.UnixNano()-prev < int64(UsageEvery) {
			return false
		}
		if last.CompareAndSwap(prev, now.UnixNano()) {
			return true
		}
	}
}

// Rate returns the portal's current effective (adaptive) rate in requests per
// second, shared by all processes: the configured Rate when nothing slowed it
// down or the state expired, never below MinRate. One Redis round trip.
func (l *Limiter) Rate(ctx context.Context, portal string) (float64, error) {
	p, err := l.state(portal)
	if err != nil {
		return 0, err
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	s, err := l.rdb.HGet(cctx, l.keys.Bucket(portal), "rate").Result()
	if errors.Is(err, redis.Nil) {
		return p.cfg.Rate, nil
	}
	if err != nil {
		return 0, fmt.Errorf("limiter: read rate of portal %q: %w", portal, err)
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(r) {
		return 0, fmt.Errorf("limiter: read rate of portal %q: bad value %q", portal, s)
	}
	return min(max(r, p.cfg.MinRate), p.cfg.Rate), nil
}
