package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/b24queue/b24queue/limiter"
)

// rateCollector exports each portal's effective (adaptive) request rate and
// whether it is unavailable, read from the shared limiter state at scrape
// time, so it is the fleet's state, not this process's last view of it.
type rateCollector struct {
	lim     *limiter.Limiter
	portals func() []string // asked at each scrape: a worker's portals change
	logger  *slog.Logger
	desc    *prometheus.Desc
	// down is b24q_portal_unavailable{portal,code}: 1 while the portal is
	// unavailable for code (fleet-wide state, read at scrape time).
	down *prometheus.Desc
}

// rateScrapeTimeout bounds the Redis reads of one scrape.
const rateScrapeTimeout = time.Second

func newRateCollector(lim *limiter.Limiter, portals func() []string, logger *slog.Logger) *rateCollector {
	return &rateCollector{
		lim: lim, portals: portals, logger: logger,
		desc: prometheus.NewDesc("b24q_limiter_effective_rate",
			"Requests per second the shared limiter currently grants a portal (lowered after a 503, climbs back to the configured rate).",
			[]string{"portal"}, nil),
		down: prometheus.NewDesc("b24q_portal_unavailable",
			"1 while the portal is unavailable (a revoked credential, a deleted, moved or blocked portal...), by the code it answered; its tasks wait.",
			[]string{"portal", "code"}, nil),
	}
}

func (c *rateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.down }

// Collect reads every portal's rate; a portal whose rate cannot be read
// (Redis away) is left out of the scrape rather than reported as 0.
func (c *rateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), rateScrapeTimeout)
	defer cancel()
	for _, p := range c.portals() {
		r, err := c.lim.Rate(ctx, p)
		if err != nil {
			c.logger.Debug("read effective rate for /metrics", "portal", p, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, r, p)
		if u, down, err := c.lim.Availability(ctx, p); err == nil && down {
			ch <- prometheus.MustNewConstMetric(c.down, prometheus.GaugeValue, 1, p, u.Code)
		}
	}
}
