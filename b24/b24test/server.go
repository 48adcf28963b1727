package b24test

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Server is a Portal listening on a loopback address. The embedded Portal
// gives Stats, Departments, SetFaults... directly on the server.
type Server struct {
	*Portal
	// URL is the base URL without trailing slash, e.g. http://127.0.0.1:PORT.
	URL string

	ts      *httptest.Server
	hs      *http.Server
	done    chan error
	once    sync.Once
	stopErr error
}

// NewServer starts a portal on an httptest server, closed on tb.Cleanup.
// An invalid config fails the test.
func NewServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("b24test: invalid config: %v", err)
	}
	p := New(cfg)
	ts := httptest.NewServer(p)
	tb.Cleanup(ts.Close)
	tb.Cleanup(p.stop) // runs first: held requests must not keep Close waiting
	return &Server{Portal: p, URL: ts.URL, ts: ts}
}

// Start serves a portal on addr (e.g. "127.0.0.1:8090"; port 0 picks one)
// until Close or Shutdown. For mains and benchmarks without a testing.TB.
func Start(cfg Config, addr string) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("b24test: invalid config: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("b24test: listen %s: %w", addr, err)
	}
	p := New(cfg)
	s := &Server{
		Portal: p,
		URL:    "http://" + ln.Addr().String(),
		hs:     &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second},
		done:   make(chan error, 1),
	}
	go func() { s.done <- s.hs.Serve(ln) }()
	return s, nil
}

// WebhookURL is the inbound webhook base, http://HOST:PORT/rest/USER/SECRET/.
// It contains the secret: do not log it.
func (s *Server) WebhookURL() string {
	return s.URL + "/rest/" + strconv.Itoa(s.cfg.WebhookUserID) + "/" + s.cfg.WebhookSecret + "/"
}

// OAuthPortalURL is the portal base for OAuth calls (URL + "/"); calls go to
// OAuthPortalURL + "rest/" + method.
func (s *Server) OAuthPortalURL() string { return s.URL + "/" }

// TokenEndpoint is the OAuth token endpoint of the simulator.
func (s *Server) TokenEndpoint() string { return s.URL + "/oauth/token/" }

// Shutdown stops a server from Start gracefully, waiting for requests in
// flight until ctx ends; later calls return the first result. On a
// NewServer server it closes it at once. Requests held by the HoldRate
// fault stop waiting and run at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	if s.ts != nil {
		s.ts.Close()
		return nil
	}
	s.once.Do(func() {
		if err := s.hs.Shutdown(ctx); err != nil {
			s.stopErr = fmt.Errorf("b24test: shutdown: %w", err)
			return
		}
		if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.stopErr = fmt.Errorf("b24test: serve: %w", err)
		}
	})
	return s.stopErr
}

// Close stops the server, waiting at most 5 s for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

func subtleEq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
