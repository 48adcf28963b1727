package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/config"
)

// HealthTimeout bounds the Redis PING of /healthz.
const HealthTimeout = time.Second

// Handler returns the side port's handler:
//
//   - GET /healthz: 200 {"status":"ok"} when Redis answers PING within
//     HealthTimeout, else 503 {"status":"redis unavailable"}. Open: load
//     balancers and orchestrators probe it without credentials.
//   - GET /metrics: Prometheus text format of the worker's registry. Open
//     as well: it holds counts by portal name and method only, no secret,
//     and scrapers rarely carry credentials; the side port is on loopback
//     unless credentials are configured (config refuses otherwise).
//   - /monitoring/: the asynqmon dashboard, behind basic auth when
//     MONITOR_USER/MONITOR_PASSWORD are set, read-only when they are not.
//   - whatever Mount added, behind the same basic auth.
//
// The handler is safe for concurrent use; it works before Run (health then
// reports on Redis directly) and is what Run serves on cfg.Listen.
func (w *Worker) Handler() http.Handler { return w.mux }

// Mount adds h at pattern (an http.ServeMux pattern such as "/v1/") behind
// the side port's basic auth, when configured. It panics, like
// http.ServeMux.Handle, if pattern conflicts with one already registered.
// Mount may be called at any time; call it before Run so that no request
// misses the route.
func (w *Worker) Mount(pattern string, h http.Handler) {
	w.mux.Handle(pattern, w.protect(h))
}

// ListenError is a side port the worker cannot open (WORKER_LISTEN,
// --listen): a configuration problem, on which the worker command exits 2.
// Run returns it before it contacts Redis.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("WORKER_LISTEN (--listen) %s: the address is already in use by another process (another worker?); "+
			"give each worker on this machine its own side port, e.g. WORKER_LISTEN=%s, or turn it off with WORKER_LISTEN=off",
			e.Addr, nextPort(e.Addr))
	}
	cause := e.Err
	if inner := errors.Unwrap(cause); inner != nil {
		cause = inner // "bind: permission denied" without the address again
	}
	return fmt.Sprintf("WORKER_LISTEN (--listen) %s: cannot listen there: %v", e.Addr, cause)
}

func (e *ListenError) Unwrap() error { return e.Err }

// nextPort returns addr with its port plus one (127.0.0.1:8081 for
// 127.0.0.1:8080), for the advice of a busy port.
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n >= 65535 {
		return "127.0.0.1:8081"
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1))
}

// serveSidePort binds cfg.Listen and serves the side port in the
// background; the channel receives Serve's error. All nil when the side port
// is off; a bind failure is a *ListenError.
func (w *Worker) serveSidePort() (*http.Server, chan error, error) {
	if w.cfg.Listen == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", w.cfg.Listen)
	if err != nil {
		return nil, nil, &ListenError{Addr: w.cfg.Listen, Err: err}
	}
	w.mu.Lock()
	w.addr = ln.Addr()
	w.mu.Unlock()
	srv := &http.Server{
		Handler:           w.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(w.logger.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return srv, done, nil
}

func (w *Worker) routes() {
	w.mux.HandleFunc("GET /healthz", w.serveHealth)
	w.mux.Handle("GET /metrics", w.metricsHandler)
	w.mux.Handle("/monitoring/", w.protect(scrub(w.monitor, w.secrets)))
}

// serveHealth answers /healthz with a live PING (not a cached flag), so that
// it tells the truth at start while Run still waits for Redis.
func (w *Worker) serveHealth(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), HealthTimeout)
	defer cancel()
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"status": "redis unavailable"})
		return
	}
	writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(v)
}

// protect wraps h in basic auth when credentials are configured. Both user
// and password are compared in constant time over their SHA-256 digests,
// so neither the content nor the length leaks through timing.
func (w *Worker) protect(h http.Handler) http.Handler {
	if w.cfg.MonitorUser == "" && w.cfg.MonitorPassword == "" {
		return h
	}
	wantUser := sha256.Sum256([]byte(w.cfg.MonitorUser))
	wantPass := sha256.Sum256([]byte(w.cfg.MonitorPassword))
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(user))
		gotPass := sha256.Sum256([]byte(pass))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			rw.Header().Set("WWW-Authenticate", `Basic realm="b24queue", charset="UTF-8"`)
			writeJSON(rw, http.StatusUnauthorized, map[string]string{"error": "authentication required"})
			return
		}
		h.ServeHTTP(rw, r)
	})
}

// scrub replaces every known secret in the answers of h's JSON API
// (/monitoring/api/...) by "***". Tasks carry no secrets and the b24 client
// redacts its errors, so this should never fire; it guards the one field the
// dashboard shows unformatted: a task's last error message. Static assets
// pass through untouched.
func scrub(h http.Handler, secrets []string) http.Handler {
	if len(secrets) == 0 {
		return h
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/api/") {
			h.ServeHTTP(rw, r)
			return
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		for _, s := range secrets {
			body = bytes.ReplaceAll(body, []byte(s), []byte(redactedValue))
		}
		for k, v := range rec.header {
			rw.Header()[k] = v
		}
		rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
		rw.WriteHeader(rec.status)
		_, _ = rw.Write(body)
	})
}

// recorder buffers an answer so scrub can rewrite it.
type recorder struct {
	header      http.Header
	body        bytes.Buffer
	status      int
	wroteHeader bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// secretsOf lists the secret values of cfg (4 characters or longer) that the
// dashboard scrubber hides.
func secretsOf(cfg config.Worker) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	add(cfg.MonitorPassword)
	if u, err := url.Parse(cfg.Redis.URL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	for _, p := range cfg.Portals {
		add(b24.WebhookSecret(p.WebhookURL))
		if p.OAuth != nil {
			add(p.OAuth.ClientSecret)
			add(p.OAuth.AccessToken)
			add(p.OAuth.RefreshToken)
		}
	}
	return out
}
