package b24test

import (
	"math"
	"sort"
	"time"
)

// operatingBuckets is how many buckets the rolling operating window is cut
// into; an execution leaves the window when its whole bucket does.
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

// operating is the per-method rolling window of executed time.
type operating struct {
	width   time.Duration // window / operatingBuckets
	limit   float64       // seconds
	buckets map[string]map[int64]float64
}

func newOperating(limit, window time.Duration) *operating {
	return &operating{
		width:   window / operatingBuckets,
		limit:   limit.Seconds(),
		buckets: map[string]map[int64]float64{},
	}
}

func (o *operating) index(now time.Time) int64 { return now.UnixNano() / int64(o.width) }

// usage returns the method's seconds in the window at now and the unix time
// at which the oldest counted bucket leaves it (now+window when none).
func (o *operating) usage(method string, now time.Time) (total float64, resetAt int64) {
	cur := o.index(now)
	oldest := int64(math.MaxInt64)
	for idx, s := range o.buckets[method] {
		if idx <= cur-operatingBuckets {
			delete(o.buckets[method], idx)
			continue
		}
		total += s
		oldest = min(oldest, idx)
	}
	if oldest == math.MaxInt64 {
		return total, now.Add(o.width * operatingBuckets).Unix()
	}
	leaves := (oldest + operatingBuckets) * int64(o.width) // unix nanoseconds
	return total, (leaves + int64(time.Second) - 1) / int64(time.Second)
}

// exhausted reports whether the method has used its budget already.
func (o *operating) exhausted(method string, now time.Time) bool {
	total, _ := o.usage(method, now)
	return total >= o.limit-1e-9
}

// bill adds cost to the method's current bucket.
func (o *operating) bill(method string, now time.Time, cost time.Duration) {
	m := o.buckets[method]
	if m == nil {
		m = map[int64]float64{}
		o.buckets[method] = m
	}
	m[o.index(now)] += cost.Seconds()
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
