package b24test

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds a request body; a batch of 50 commands fits easily.
const maxBody = 1 << 20

// maxTimestamps bounds the request history kept for MaxRequestsIn; when
// full, the older half is dropped.
const maxTimestamps = 1 << 20

// Department is a department as the portal stores it. Parent 0 is the
// top-level department; Head 0 means no head.
type Department struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Sort   int    `json:"sort"`
	Parent int64  `json:"parent"`
	Head   int64  `json:"head"`
}

// Workplace is a digital workplace (crm.automatedsolution).
type Workplace struct {
	ID      int64   `json:"id"`
	Title   string  `json:"title"`
	TypeIDs []int64 `json:"type_ids"`
}

// Stats are counters for assertions. A snapshot: later calls do not change it.
type Stats struct {
	// Calls counts method executions and refusals by method (without
	// ".json") and outcome: "ok" or the error code. Batch commands count
	// under their own method, the batch itself under "batch".
	Calls map[string]map[string]int `json:"calls"`
	// Requests is the number of REST HTTP requests the query bucket
	// admitted (a batch is one; the token endpoint and /_sim/ are none).
	Requests int `json:"requests"`
	// Rejected503 is the number of requests refused with QUERY_LIMIT_EXCEEDED.
	Rejected503 int `json:"rejected_503"`
	// Rejected429 counts OPERATION_TIME_LIMIT refusals: whole requests and
	// batch commands alike.
	Rejected429 int `json:"rejected_429"`
	// Refreshes is the number of successful token refreshes.
	Refreshes int `json:"refreshes"`
	// DepartmentsCreated and WorkplacesCreated count created objects (the
	// initial root department is not counted).
	DepartmentsCreated int `json:"departments_created"`
	WorkplacesCreated  int `json:"workplaces_created"`
	// DuplicateDepartments counts departments created while one with the
	// same (NAME, PARENT) already existed; DuplicateWorkplaces the same by
	// title. A correct exactly-once client keeps both at 0.
	DuplicateDepartments int `json:"duplicate_departments"`
	DuplicateWorkplaces  int `json:"duplicate_workplaces"`
	// MaxPerSecond is the largest number of admitted requests in any
	// 1-second window (by Config.Clock).
	MaxPerSecond int `json:"max_per_second"`
	// Faults counts injected faults by kind: "error", "bad_gateway",
	// "lost_response", "slow", "malformed", "command_error" (one per batch
	// command).
	Faults map[string]int `json:"faults"`
}

// Portal is the simulated portal, an http.Handler serving /rest/...,
// /oauth/token/ and /_sim/.... Safe for concurrent use.
type Portal struct {
	cfg Config
	log *slog.Logger

	mu           sync.Mutex
	rng          *rand.Rand
	faults       Faults
	accessDenied bool
	bucket       leakyBucket
	op           *operating
	blocked      map[string]time.Time
	depts        []Department
	deptNames    map[deptKey]bool // (parent, name) of every department, for the duplicate count
	wps          []Workplace
	nextDept     int64
	nextWP       int64
	access       map[string]time.Time // access token → expiry
	refresh      map[string]bool      // refresh tokens still valid
	stats        Stats
	times        []time.Time
}

// New builds a portal from cfg after WithDefaults. It panics when the
// config is invalid (see Config.Validate); Start and NewServer report the
// problem as an error instead.
func New(cfg Config) *Portal {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic("b24test: invalid config: " + err.Error())
	}
	seed := uint64(cfg.Seed)
	if cfg.Seed == 0 {
		seed = rand.Uint64()
	}
	p := &Portal{
		cfg:       cfg,
		log:       cfg.Logger,
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		faults:    cfg.Faults,
		bucket:    leakyBucket{rate: cfg.Rate, burst: float64(cfg.Burst)},
		op:        newOperating(cfg.OperatingLimit, cfg.OperatingWindow),
		blocked:   map[string]time.Time{},
		depts:     []Department{{ID: 1, Name: "Company", Sort: 500}},
		deptNames: map[deptKey]bool{{name: "Company"}: true},
		nextDept:  2,
		nextWP:    1,
		access:    map[string]time.Time{cfg.OAuth.AccessToken: cfg.Clock().Add(cfg.OAuth.AccessTTL)},
		refresh:   map[string]bool{cfg.OAuth.RefreshToken: true},
		stats:     Stats{Calls: map[string]map[string]int{}, Faults: map[string]int{}},
	}
	return p
}

// Config returns the effective configuration (defaults applied), including
// the secrets: for tests and the local simulator only.
func (p *Portal) Config() Config { return p.cfg }

// SetFaults replaces the fault probabilities from now on.
func (p *Portal) SetFaults(f Faults) {
	f = f.withDefaults()
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// SetAccessDenied makes every REST call answer 403 ACCESS_DENIED while on.
func (p *Portal) SetAccessDenied(on bool) {
	p.mu.Lock()
	p.accessDenied = on
	p.mu.Unlock()
}

// BlockMethod makes the method answer 429 OPERATION_TIME_LIMIT for d from
// now (by Config.Clock), whatever its operating usage.
func (p *Portal) BlockMethod(method string, d time.Duration) {
	p.mu.Lock()
	p.blocked[normMethod(method)] = p.cfg.Clock().Add(d)
	p.mu.Unlock()
}

// ExpireAccessTokens makes every access token issued so far expired.
func (p *Portal) ExpireAccessTokens() {
	p.mu.Lock()
	now := p.cfg.Clock()
	for t := range p.access {
		p.access[t] = now
	}
	p.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (p *Portal) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Calls = make(map[string]map[string]int, len(p.stats.Calls))
	for m, byOutcome := range p.stats.Calls {
		c := make(map[string]int, len(byOutcome))
		for o, n := range byOutcome {
			c[o] = n
		}
		s.Calls[m] = c
	}
	s.Faults = make(map[string]int, len(p.stats.Faults))
	for k, n := range p.stats.Faults {
		s.Faults[k] = n
	}
	s.MaxPerSecond = maxInWindow(p.times, time.Second)
	return s
}

// MaxRequestsIn returns the largest number of admitted requests in any
// window of length d (by Config.Clock).
func (p *Portal) MaxRequestsIn(d time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maxInWindow(p.times, d)
}

// Departments returns a snapshot of all departments, root first, by ID.
func (p *Portal) Departments() []Department {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Department(nil), p.depts...)
}

// Workplaces returns a snapshot of all digital workplaces, by ID.
func (p *Portal) Workplaces() []Workplace {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Workplace, len(p.wps))
	for i, w := range p.wps {
		w.TypeIDs = append([]int64(nil), w.TypeIDs...)
		out[i] = w
	}
	return out
}

// apiError is an error answer.
type apiError struct {
	status int
	code   string
	desc   string
}

func (e *apiError) body() map[string]any {
	return map[string]any{"error": e.code, "error_description": e.desc}
}

var (
	errQueryLimit  = &apiError{http.StatusServiceUnavailable, "QUERY_LIMIT_EXCEEDED", "Too many requests"}
	errOperating   = &apiError{http.StatusTooManyRequests, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit"}
	errNoAuth      = &apiError{http.StatusUnauthorized, "NO_AUTH_FOUND", "Wrong authorization data"}
	errExpired     = &apiError{http.StatusUnauthorized, "expired_token", "The access token provided has expired."}
	errInvalidTok  = &apiError{http.StatusUnauthorized, "invalid_token", "The access token provided is invalid."}
	errAccess      = &apiError{http.StatusForbidden, "ACCESS_DENIED", "Access denied"}
	errInternal    = &apiError{http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "Internal server error"}
	errNotFound    = &apiError{http.StatusNotFound, "ERROR_METHOD_NOT_FOUND", "Method not found!"}
	errBatchLength = &apiError{http.StatusBadRequest, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded"}
	errBatchNested = &apiError{http.StatusMethodNotAllowed, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"}
	errBadRequest  = &apiError{http.StatusBadRequest, "INVALID_REQUEST", "Request body cannot be decoded"}
)

// ServeHTTP routes /rest/..., /oauth/token/ and /_sim/....
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	var method, outcome string
	var status int
	switch {
	case strings.HasPrefix(r.URL.Path, "/_sim/"):
		p.serveSim(w, r)
		return
	case r.URL.Path == "/oauth/token/" || r.URL.Path == "/oauth/token":
		method = "oauth.token"
		status, outcome = p.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/rest/"):
		method, status, outcome = p.serveREST(w, r)
	default:
		method, status, outcome = "", http.StatusNotFound, "not_found"
		http.NotFound(w, r)
	}
	// The path is never logged: it carries the webhook secret.
	p.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", method), slog.String("outcome", outcome),
		slog.Int("status", status), slog.Duration("latency", time.Since(began)))
}

// faultPlan is what the dice decided for one request.
type faultPlan struct {
	internal, badGateway, lost, slow, malformed bool
	slowDelay                                   time.Duration
}

func (p *Portal) rollLocked() faultPlan {
	f := p.faults
	roll := func(rate float64, kind string) bool {
		if rate <= 0 || p.rng.Float64() >= rate {
			return false
		}
		p.stats.Faults[kind]++
		return true
	}
	var fp faultPlan
	if fp.internal = roll(f.ErrorRate, "error"); fp.internal {
		return fp
	}
	if fp.badGateway = roll(f.BadGatewayRate, "bad_gateway"); fp.badGateway {
		return fp
	}
	if fp.lost = roll(f.LostResponseRate, "lost_response"); fp.lost {
		return fp
	}
	fp.slow = roll(f.SlowRate, "slow")
	fp.slowDelay = f.SlowDelay
	fp.malformed = roll(f.MalformedRate, "malformed")
	return fp
}

// serveREST handles one REST call and returns what to log.
func (p *Portal) serveREST(w http.ResponseWriter, r *http.Request) (method string, status int, outcome string) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/rest/"), "/")
	var user, secret string
	oauth := false
	switch len(segs) {
	case 1:
		oauth = true
		method = segs[0]
	case 3:
		user, secret, method = segs[0], segs[1], segs[2]
	default:
		return "", writeError(w, errNotFound), errNotFound.code
	}
	method = normMethod(method)

	in, order, err := readParams(r)
	if err != nil {
		return method, writeError(w, errBadRequest), errBadRequest.code
	}

	p.mu.Lock()
	now := p.cfg.Clock()
	if !p.bucket.admit(now) {
		p.stats.Rejected503++
		p.countLocked(method, errQueryLimit.code)
		p.mu.Unlock()
		return method, writeError(w, errQueryLimit), errQueryLimit.code
	}
	p.stats.Requests++
	p.times = append(p.times, now)
	if len(p.times) > maxTimestamps {
		p.times = append(p.times[:0], p.times[len(p.times)/2:]...)
	}
	if aerr := p.authLocked(oauth, user, secret, in, now); aerr != nil {
		p.countLocked(method, aerr.code)
		p.mu.Unlock()
		return method, writeError(w, aerr), aerr.code
	}
	fp := p.rollLocked()
	p.mu.Unlock()

	switch {
	case fp.internal:
		return method, writeError(w, errInternal), errInternal.code
	case fp.badGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n")
		return method, http.StatusBadGateway, "bad_gateway"
	}
	if p.cfg.Latency > 0 {
		sleepCtx(r.Context(), p.cfg.Latency)
	}

	p.mu.Lock()
	var rep reply
	if method == "batch" {
		rep = p.batchLocked(in, order, p.cfg.Clock())
	} else {
		rep = p.singleLocked(method, in, p.cfg.Clock())
	}
	p.mu.Unlock()

	if !rep.executed {
		return method, writeJSON(w, rep.status, rep.body), rep.outcome
	}
	switch {
	case fp.lost:
		dropConnection(w)
		return method, 0, "lost_response"
	case fp.slow:
		sleepCtx(r.Context(), fp.slowDelay)
	}
	if fp.malformed {
		b, _ := json.Marshal(rep.body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b[:len(b)/2])
		return method, http.StatusOK, "malformed"
	}
	return method, writeJSON(w, rep.status, rep.body), rep.outcome
}

// authLocked checks the webhook path or the OAuth token.
func (p *Portal) authLocked(oauth bool, user, secret string, in params, now time.Time) *apiError {
	if oauth {
		v, _ := in["auth"]
		tok := asString(v)
		if tok == "" {
			return errNoAuth
		}
		exp, ok := p.access[tok]
		if !ok {
			return errInvalidTok
		}
		if !now.Before(exp) {
			return errExpired
		}
	} else {
		okUser := user == strconv.Itoa(p.cfg.WebhookUserID)
		okSecret := subtle.ConstantTimeCompare([]byte(secret), []byte(p.cfg.WebhookSecret)) == 1
		if !okUser || !okSecret {
			return errNoAuth
		}
	}
	delete(in, "auth")
	if p.accessDenied {
		return errAccess
	}
	return nil
}

func (p *Portal) countLocked(method, outcome string) {
	m := p.stats.Calls[method]
	if m == nil {
		m = map[string]int{}
		p.stats.Calls[method] = m
	}
	m[outcome]++
}

// readParams merges the query string and the body (JSON or form).
func readParams(r *http.Request) (params, []string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, nil, err
	}
	in, order, err := decodeForm(r.URL.RawQuery)
	if err != nil {
		return nil, nil, err
	}
	ct := r.Header.Get("Content-Type")
	trimmed := bytes.TrimSpace(body)
	var bp params
	var border []string
	if strings.Contains(ct, "json") || (!strings.Contains(ct, "form") && len(trimmed) > 0 && trimmed[0] == '{') {
		bp, border, err = decodeJSON(body)
	} else {
		bp, border, err = decodeForm(string(body))
	}
	if err != nil {
		return nil, nil, err
	}
	for k, v := range bp {
		in[k] = v
	}
	if border != nil {
		order = border
	}
	return in, order, nil
}

func normMethod(m string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(m), ".json"))
}

func writeError(w http.ResponseWriter, e *apiError) int {
	return writeJSON(w, e.status, e.body())
}

func writeJSON(w http.ResponseWriter, status int, body any) int {
	b, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errInternal.body())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}

// dropConnection closes the connection without an answer, like a portal
// whose response is lost after it did the work.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2 and wrappers: abort the stream
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
