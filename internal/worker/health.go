package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"
)

// Health: the flag asynq's health checks keep, the start-up wait for Redis
// (during which /healthz answers 503), and the client side of /healthz that
// `worker healthcheck` runs in a container without curl.

// DefaultHealthcheckTimeout bounds `worker healthcheck` (Healthcheck).
const DefaultHealthcheckTimeout = 3 * time.Second

// HealthcheckURL returns the URL of path (e.g. "/healthz") on a server
// listening on listen (a WORKER_LISTEN value): an unspecified host
// (":8080", "0.0.0.0", "::") is asked on loopback, where it listens too.
func HealthcheckURL(listen, path string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("side port %q: must be host:port", listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

// Healthcheck asks the server on listen for path (a worker's /healthz, open
// without credentials; or another server's page, such as the simulator's
// /_sim/stats) and returns nil when it answers 200 within timeout, else an
// error saying what it got.
func Healthcheck(ctx context.Context, listen, path string, timeout time.Duration) error {
	url, err := HealthcheckURL(listen, path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap() // drop the URL and method *url.Error repeats
		}
		return fmt.Errorf("%s: %w", url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// healthChecked is asynq's HealthCheckFunc: it keeps the health flag and
// logs only transitions, not every 15 s ping.
func (w *Worker) healthChecked(err error) {
	was := w.healthy.Swap(err == nil)
	switch {
	case err != nil && was:
		w.logger.Error("redis unavailable; asynq keeps retrying", "redis", w.cfg.Redis.String(), "err", err)
	case err == nil && !was:
		w.logger.Info("redis available again", "redis", w.cfg.Redis.String())
	}
}

// Healthy reports whether the last Redis health check succeeded.
func (w *Worker) Healthy() bool { return w.healthy.Load() }

// waitRedis pings Redis until it answers (nil) or ctx ends (ctx.Err()).
func (w *Worker) waitRedis(ctx context.Context) error {
	delay := redisRetryMin
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := w.rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			w.healthy.Store(true)
			if attempt > 1 {
				w.logger.Info("redis available", "redis", w.cfg.Redis.String(), "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.healthy.Store(false)
		// Jitter keeps a fleet restarted together from pinging in lockstep.
		d := delay/2 + time.Duration(rand.Int64N(int64(delay)))
		w.logger.Error("redis unavailable at start; retrying (health answers 503 meanwhile)",
			"redis", w.cfg.Redis.String(), "attempt", attempt, "retry_in", d.Round(time.Millisecond).String(), "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, redisRetryMax)
	}
}
