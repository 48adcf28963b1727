package tasks

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/b24queue/b24queue/b24"
)

// Metrics are the Prometheus series of the handlers and portal clients. A nil
// *Metrics records nothing, so tests and tools may leave it out. Labels carry
// portal names, method names and error codes only: never a URL or a token.
type Metrics struct {
	calls       *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	blocked     *prometheus.CounterVec
	wait        *prometheus.HistogramVec
	operatingS  *prometheus.GaugeVec
	tasks       *prometheus.CounterVec
	adoptions   *prometheus.CounterVec
	failures    *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "b24q_calls_total", Help: "Bitrix24 REST calls by portal, method and outcome (ok or the error code).",
		}, []string{"portal", "method", "outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "b24q_query_limit_exceeded_total", Help: "HTTP 503 QUERY_LIMIT_EXCEEDED answers seen.",
		}, []string{"portal"}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "b24q_operation_time_limit_total", Help: "HTTP 429 OPERATION_TIME_LIMIT answers seen.",
		}, []string{"portal", "method"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "b24q_limiter_wait_seconds", Help: "Time a request waited for the shared request budget.",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}, []string{"portal"}),
		operatingS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "b24q_operating_seconds", Help: "Operating time the portal last reported for a method in its rolling window.",
		}, []string{"portal", "method"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "b24q_task_runs_total", Help: "Task runs by type and outcome (created, adopted, parked, retry, failed).",
		}, []string{"type", "outcome"}),
		adoptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "b24q_adopted_total", Help: "Objects found by a lookup after an uncertain attempt and adopted instead of created again.",
		}, []string{"portal", "method"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "b24q_task_failures_total", Help: "Tasks that failed for good.",
		}, []string{"portal", "type"}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.rateLimited, m.blocked, m.wait, m.operatingS, m.tasks, m.adoptions, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) call(portal string, info b24.CallInfo) {
	if m == nil {
		return
	}
	outcome := "ok"
	var apiErr *b24.Error
	switch {
	case errors.As(info.Err, &apiErr):
		outcome = apiErr.Code
	case errors.Is(info.Err, context.Canceled), errors.Is(info.Err, context.DeadlineExceeded):
		outcome = "timeout"
	case info.Err != nil:
		outcome = "transport_error"
	}
	m.calls.WithLabelValues(portal, info.Method, outcome).Inc()
	switch b24.Classify(info.Err) {
	case b24.RateLimited:
		m.rateLimited.WithLabelValues(portal).Inc()
	case b24.MethodBlocked:
		m.blocked.WithLabelValues(portal, info.Method).Inc()
	}
}

func (m *Metrics) waited(portal string, d time.Duration) {
	if m != nil {
		m.wait.WithLabelValues(portal).Observe(d.Seconds())
	}
}

func (m *Metrics) operating(portal, method string, seconds float64) {
	if m != nil {
		m.operatingS.WithLabelValues(portal, method).Set(seconds)
	}
}

func (m *Metrics) task(taskType, outcome string) {
	if m != nil && outcome != "" {
		m.tasks.WithLabelValues(taskType, outcome).Inc()
	}
}

func (m *Metrics) adopted(portal, method string) {
	if m != nil {
		m.adoptions.WithLabelValues(portal, method).Inc()
	}
}

func (m *Metrics) failed(portal, taskType string) {
	if m != nil {
		m.failures.WithLabelValues(portal, taskType).Inc()
	}
}
