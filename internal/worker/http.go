package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
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
