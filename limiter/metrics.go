package limiter

import "time"

// Metrics receives what the limiter does, so that a caller can export it
// (for example to Prometheus) without this package importing a metrics
// library. Methods are called synchronously from the goroutine that called
// the limiter, possibly from many goroutines at once, so implementations must
// be safe for concurrent use and fast.
type Metrics interface {
	// Waited is called after every successful [Limiter.Wait] with the total
	// time spent waiting (local smoothing plus the shared slot).
	Waited(portal string, d time.Duration)
	// Throttled is called by [Limiter.Throttled] after the cooldown was set.
	Throttled(portal string)
	// Blocked is called whenever a request is refused because its method is
	// blocked (Wait or Reserve returns a *BlockedError).
	Blocked(portal, method string)
	// EffectiveRate reports the portal's current adaptive rate in requests
	// per second, as seen by the latest grant or Throttled call.
	EffectiveRate(portal string, rate float64)
}

type nopMetrics struct{}

func (nopMetrics) Waited(string, time.Duration)  {}
func (nopMetrics) Throttled(string)              {}
func (nopMetrics) Blocked(string, string)        {}
func (nopMetrics) EffectiveRate(string, float64) {}
