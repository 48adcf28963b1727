package limiter

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults used by [Config.WithDefaults] for fields left at zero. They match
// a standard Bitrix24 plan (Enterprise plans drain 5 req/s with a bucket of 250).
const (
	DefaultRate            = 2.0
	DefaultBurst           = 50
	DefaultCooldown        = 2 * time.Second
	DefaultOperatingLimit  = 480 * time.Second
	DefaultOperatingWindow = 10 * time.Minute
	DefaultOperatingMargin = 0.95
	DefaultHeadroom        = 0.1
)

// Config is the request budget of one portal. The zero value of a field means
// "use the default" (see [Config.WithDefaults]); negative values are invalid.
type Config struct {
	// Rate is the number of requests per second the portal drains (B24_RATE).
	// It is also the ceiling the adaptive rate climbs back to. Default 2.
	Rate float64
	// Burst is the portal's bucket size (B24_BURST): how many requests it
	// accepts at once after an idle period. The shared bucket grants at most
	// [Config.SharedBurst] of them, keeping Headroom free. Burst also sets how
	// many consecutive grants without a 503 raise the adaptive rate by one
	// step. Default 50.
	Burst int
	// Headroom is the fraction of Burst the shared bucket keeps free, so that
	// it grants at most Burst − ceil(Headroom × Burst) requests at once, and
	// never less than 1 request of headroom when Burst > 1 (the result is at
	// least 1). Default 0.1; must be in (0, 1).
	//
	// Why: a grant is a promise about when a request may leave, not when it
	// reaches the portal. Network and scheduling jitter bunch requests up on
	// the way, so a bucket granted exactly to Burst + Rate×t sees the
	// occasional request arrive a little early, while the portal's bucket is
	// still full, and answers 503. A few requests of slack absorb that jitter
	// at almost no cost in throughput (the steady rate is unchanged).
	Headroom float64
	// MinRate is the floor of the adaptive rate in requests per second.
	// Default Rate/4. Must not exceed Rate.
	MinRate float64
	// Cooldown is the portal-wide pause after a 503: no process is granted
	// a request until it has passed. Default 2s. It also bounds how often the
	// rate is decreased: several 503s within one Cooldown count as one.
	Cooldown time.Duration
	// OperatingLimit is the per-method execution budget within
	// OperatingWindow (B24_OPERATING_LIMIT). Default 480s.
	OperatingLimit time.Duration
	// OperatingWindow is the rolling window of the operating budget
	// (B24_OPERATING_WINDOW), and how long a method stays blocked after a 429
	// without a known reset time. Default 10m.
	OperatingWindow time.Duration
	// OperatingMargin is the fraction of OperatingLimit at which a method is
	// treated as blocked before the portal answers 429. Default 0.95; 1 means
	// "only at the limit". Must be in (0, 1].
	OperatingMargin float64
	// LocalBurst is the burst of the per-process smoothing limiter that sits
	// in front of the shared bucket. Default min(Burst, max(1, ceil(Rate))):
	// one second's worth of requests, so a single process never fires the
	// whole shared burst at once and goroutines of one process do not queue
	// far ahead in Redis; the shared bucket still enforces the fleet total.
	LocalBurst int
}

// WithDefaults returns a copy of c with every zero field replaced by its
// default. MinRate defaults to a quarter of the (defaulted) Rate.
func (c Config) WithDefaults() Config {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.MinRate == 0 {
		c.MinRate = c.Rate / 4
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.OperatingLimit == 0 {
		c.OperatingLimit = DefaultOperatingLimit
	}
	if c.OperatingWindow == 0 {
		c.OperatingWindow = DefaultOperatingWindow
	}
	if c.OperatingMargin == 0 {
		c.OperatingMargin = DefaultOperatingMargin
	}
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if c.LocalBurst == 0 {
		c.LocalBurst = max(1, min(c.Burst, int(math.Ceil(c.Rate))))
	}
	return c
}

// Validate reports every invalid field of c by name, joined with
// [errors.Join], or nil. It checks c as given: call it on
// c.WithDefaults() to accept zero fields.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("limiter config: %s = %v: must be %s", field, v, want))
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	if !(c.Rate > 0) || !finite(c.Rate) {
		bad("Rate", c.Rate, "a finite number > 0")
	}
	if c.Burst < 1 {
		bad("Burst", c.Burst, ">= 1")
	}
	switch {
	case !(c.MinRate > 0) || !finite(c.MinRate):
		bad("MinRate", c.MinRate, "a finite number > 0")
	case c.Rate > 0 && c.MinRate > c.Rate:
		bad("MinRate", c.MinRate, fmt.Sprintf("<= Rate (%v)", c.Rate))
	}
	if c.Cooldown < 0 {
		bad("Cooldown", c.Cooldown, ">= 0")
	}
	if c.OperatingLimit <= 0 {
		bad("OperatingLimit", c.OperatingLimit, "> 0")
	}
	if c.OperatingWindow <= 0 {
		bad("OperatingWindow", c.OperatingWindow, "> 0")
	}
	if !(c.OperatingMargin > 0 && c.OperatingMargin <= 1) {
		bad("OperatingMargin", c.OperatingMargin, "in (0, 1]")
	}
	if c.LocalBurst < 1 {
		bad("LocalBurst", c.LocalBurst, ">= 1")
	}
	if !(c.Headroom > 0 && c.Headroom < 1) {
		bad("Headroom", c.Headroom, "in (0, 1)")
	}
	return errors.Join(errs...)
}

// operatingThreshold is OperatingMargin × OperatingLimit: the operating
// time at which a method is treated as blocked.
func (c Config) operatingThreshold() time.Duration {
	return time.Duration(float64(c.OperatingLimit) * c.OperatingMargin)
}

// SharedBurst is the most requests the shared bucket grants at once: Burst
// less the headroom, ceil(Headroom × Burst) but at least 1 request when
// Burst > 1, and never less than 1 in total. For Burst 50 and the default
// Headroom it is 45; for Burst 20, 18; for Burst 1, 1.
func (c Config) SharedBurst() int {
	if c.Burst <= 1 {
		return max(c.Burst, 1)
	}
	// The epsilon keeps 0.1×20 = 2.0000000000000004 from becoming 3.
	h := int(math.Ceil(c.Headroom*float64(c.Burst) - 1e-9))
	h = min(max(h, 1), c.Burst-1)
	return c.Burst - h
}
