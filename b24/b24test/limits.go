package b24test

import (
	"math"
	"sort"
	"time"
)

// operatingBuckets is how many buckets fit in the rolling operating
// window: a bucket takes the calls of window/operatingBuckets from its first.
const operatingBuckets = 10

// leakyBucket is the portal's query limit. Not safe for concurrent use:
// the Portal's mutex guards it.
type leakyBucket struct {
	rate  float64 // drained per second
	burst float64
	level float64
	at    time.Time
}

// admit drains the bucket up to now and adds one request unless that would
// take it above burst. A rejected request is not added.
func (b *leakyBucket) admit(now time.Time) bool {
	if !b.at.IsZero() {
		if el := now.Sub(b.at).Seconds(); el > 0 {
			b.level = math.Max(0, b.level-el*b.rate)
		}
	}
	if b.at.IsZero() || now.After(b.at) {
		b.at = now
	}
	// A tiny epsilon keeps float drift from rejecting a request that the
	// arithmetic says fits exactly.
	if b.level+1 > b.burst+1e-9 {
		return false
	}
	b.level++
	return true
}

// opBucket counts the executed seconds of the calls that came within one
// bucket width of its first call.
type opBucket struct {
	first time.Time
	secs  float64
}

// operating is the per-method rolling window of executed time. A bucket
// opens at the first call that finds no open bucket, counts the calls of
// the next width, and leaves the window at first+window with all it
// counted. A method is blocked while its buckets sum to MORE than the limit:
// the call that crosses it completes. Not safe for concurrent use: the
// Portal's mutex guards it.
type operating struct {
	width, window time.Duration
	limit         float64 // seconds
	buckets       map[string][]opBucket
}

func newOperating(limit, window time.Duration) *operating {
	return &operating{
		width:   window / operatingBuckets,
		window:  window,
		limit:   limit.Seconds(),
		buckets: map[string][]opBucket{},
	}
}

// live drops the method's buckets that have left the window at now and
// returns the rest, oldest first.
func (o *operating) live(method string, now time.Time) []opBucket {
	bs := o.buckets[method]
	i := 0
	for i < len(bs) && !now.Before(bs[i].first.Add(o.window)) {
		i++
	}
	if i > 0 {
		bs = append(bs[:0], bs[i:]...)
		o.buckets[method] = bs
	}
	return bs
}

// usage returns the method's seconds in the window at now and the unix time
// (rounded up) at which its oldest counted bucket leaves the window;
// now+window when nothing is counted.
func (o *operating) usage(method string, now time.Time) (total float64, resetAt int64) {
	bs := o.live(method, now)
	for _, b := range bs {
		total += b.secs
	}
	leaves := now.Add(o.window)
	if len(bs) > 0 {
		leaves = bs[0].first.Add(o.window)
	}
	return total, ceilUnix(leaves)
}

// ceilUnix is t in unix seconds, rounded up.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// exhausted reports whether the method's window total exceeds the limit.
func (o *operating) exhausted(method string, now time.Time) bool {
	total, _ := o.usage(method, now)
	return total > o.limit+1e-9
}

// bill adds cost to the method's open bucket, or opens one at now.
func (o *operating) bill(method string, now time.Time, cost time.Duration) {
	bs := o.live(method, now)
	if n := len(bs); n > 0 && now.Before(bs[n-1].first.Add(o.width)) {
		bs[n-1].secs += cost.Seconds()
		return
	}
	o.buckets[method] = append(bs, opBucket{first: now, secs: cost.Seconds()})
}

// maxInWindow returns the largest number of the sorted times that fall in
// any half-open window [t, t+d).
func maxInWindow(times []time.Time, d time.Duration) int {
	if !sort.SliceIsSorted(times, func(i, j int) bool { return times[i].Before(times[j]) }) {
		times = append([]time.Time(nil), times...)
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	}
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= d {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}
