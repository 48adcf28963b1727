package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/claim"
	"github.com/b24queue/b24queue/limiter"
)

// PortalConfig describes one Bitrix24 portal the worker serves. Exactly one
// of WebhookURL and OAuth is set.
type PortalConfig struct {
	Name       string
	WebhookURL string
	OAuth      *b24.OAuthConfig
	Limits     limiter.Config
	// Timeout of one REST call (B24_TIMEOUT).
	Timeout time.Duration
	// InsecureHTTPHosts may be reached over plain http besides loopback
	// (B24_INSECURE_HTTP_HOSTS: the simulator in docker-compose).
	InsecureHTTPHosts []string
}

// Portal is a portal's client wired to the shared limiter: every request
// waits for the fleet-wide budget first, and every answer is reported back.
type Portal struct {
	Name   string
	Client *b24.Client

	limiter *limiter.Limiter
	limits  limiter.Config
	metrics *Metrics
	logger  *slog.Logger
}

// NewPortal builds the client of cfg, registers cfg.Limits with lim and
// connects the two. tokens may be nil (webhook portals need none).
func NewPortal(cfg PortalConfig, lim *limiter.Limiter, tokens b24.TokenStore, m *Metrics, logger *slog.Logger) (*Portal, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Portal{Name: cfg.Name, limiter: lim, limits: cfg.Limits.WithDefaults(), metrics: m, logger: logger}
	opts := []b24.Option{
		b24.WithPacer(pacer{p}),
		b24.WithObserver(p.observe),
	}
	if cfg.Timeout > 0 {
		opts = append(opts, b24.WithTimeout(cfg.Timeout))
	}
	if len(cfg.InsecureHTTPHosts) > 0 {
		opts = append(opts, b24.WithInsecureHTTPHosts(cfg.InsecureHTTPHosts...))
	}
	if tokens != nil {
		opts = append(opts, b24.WithTokenStore(tokens))
	}
	var err error
	switch {
	case cfg.WebhookURL != "" && cfg.OAuth != nil:
		return nil, fmt.Errorf("portal %q: both a webhook URL and OAuth credentials are set", cfg.Name)
	case cfg.WebhookURL != "":
		p.Client, err = b24.NewWebhook(cfg.WebhookURL, opts...)
	case cfg.OAuth != nil:
		p.Client, err = b24.NewOAuth(*cfg.OAuth, opts...)
	default:
		return nil, fmt.Errorf("portal %q: neither a webhook URL nor OAuth credentials are set", cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("portal %q: %w", cfg.Name, err)
	}
	lim.Configure(cfg.Name, p.limits)
	return p, nil
}

// pacer makes every request of a portal's client wait on the shared limiter.
type pacer struct{ p *Portal }

// prepaidKey carries a *prepaid in a context.
type prepaidKey struct{}

// prepaid is a slot already granted for the next request of method (see
// withPrepaid): the pacer lets that one request through without waiting.
type prepaid struct {
	method string
	used   atomic.Bool
}

// withPrepaid returns ctx whose first request of method through the portal's
// client uses a slot the caller has already obtained (Portal.paceClaim,
// Portal.paceChecked).
func withPrepaid(ctx context.Context, method string) context.Context {
	return context.WithValue(ctx, prepaidKey{}, &prepaid{method: method})
}

func (pc pacer) Wait(ctx context.Context, method string) error {
	if pp, ok := ctx.Value(prepaidKey{}).(*prepaid); ok && pp.method == method && pp.used.CompareAndSwap(false, true) {
		return nil
	}
	return pc.p.pace(ctx, method)
}

// pace waits on the shared limiter for one request of method.
func (p *Portal) pace(ctx context.Context, method string) error {
	start := time.Now()
	err := p.limiter.Wait(ctx, p.Name, method)
	p.waited(start, err)
	return err
}

// paceClaim waits for the slot of a create request of method and takes the
// object's claim c in the same step (limiter.Limiter.WaitClaim): the slot is
// granted only when the claim was fresh.
func (p *Portal) paceClaim(ctx context.Context, method string, c claim.Claim, ttl time.Duration) (claim.Taken, error) {
	start := time.Now()
	taken, err := p.limiter.WaitClaim(ctx, p.Name, method, c, ttl)
	p.waited(start, err)
	return taken, err
}

// paceChecked waits for the slot of a create request of method, granted
// only while every claim of cs is still this run's
// (limiter.Limiter.WaitChecked).
func (p *Portal) paceChecked(ctx context.Context, method string, cs []claim.Claim, ttl time.Duration) error {
	start := time.Now()
	err := p.limiter.WaitChecked(ctx, p.Name, method, cs, ttl)
	p.waited(start, err)
	return err
}

// waited records how long a request waited for the limiter, unless it was
// refused for a blocked method (that wait is a park, not pacing).
func (p *Portal) waited(start time.Time, err error) {
	var blocked *limiter.BlockedError
	if err == nil || !errors.As(err, &blocked) {
		p.metrics.waited(p.Name, time.Since(start))
	}
}
