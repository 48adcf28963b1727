package b24test

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
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
	// ".json") and outcome: "ok", "redirect" (a moved portal's 302) or the
	// error code. Batch commands count under their own method, the batch
	// itself under "batch".
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
	// TokenRequests counts every request to the token endpoint, answered
	// with tokens or with an error.
	TokenRequests int `json:"token_requests"`
	// RedirectedGETs counts REST requests that came as GET. The project's
	// client always POSTs: a GET is what a client that follows a 302 (a
	// moved portal) re-sends, without its body. A correct client keeps it 0.
	RedirectedGETs int `json:"redirected_gets"`
	// Held counts requests held by the HoldRate fault that have since run
	// their method (whether or not their client was still there).
	Held int `json:"held"`
	// DepartmentsCreated and WorkplacesCreated count created objects (the
	// initial root department is not counted).
	DepartmentsCreated int `json:"departments_created"`
	WorkplacesCreated  int `json:"workplaces_created"`
	// DuplicateDepartments counts departments created while one with the
	// same (NAME, PARENT) already existed; DuplicateWorkplaces the same by
	// title. A correct exactly-once client keeps both at 0.
	DuplicateDepartments int `json:"duplicate_departments"`
	DuplicateWorkplaces  int `json:"duplicate_workplaces"`
	// DepartmentsUpdated and WorkplacesUpdated count successful
	// department.update and crm.automatedsolution.update calls.
	DepartmentsUpdated int `json:"departments_updated"`
	WorkplacesUpdated  int `json:"workplaces_updated"`
	// MaxPerSecond is the largest number of admitted requests in any
	// 1-second window (by Config.Clock).
	MaxPerSecond int `json:"max_per_second"`
	// Faults counts injected faults by kind: per request "error",
	// "bad_gateway", "lost_response", "slow", "malformed", "hold",
	// "duplicate_ids" (per batch); per call or batch command
	// "command_error", "float_id", "db_error", "head_error", "null_result",
	// "missing_result", "absurd_reset", "echo_url".
	Faults map[string]int `json:"faults"`
}

// Portal is the simulated portal, an http.Handler serving /rest/...,
// /oauth/token/ and /_sim/.... Safe for concurrent use.
type Portal struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	rng       *rand.Rand
	faults    Faults
	cond      Conditions
	bucket    leakyBucket
	op        *operating
	blocked   map[string]time.Time
	depts     []Department
	deptNames map[deptKey]bool // (parent, name) of every department, for the duplicate count
	wps       []Workplace
	nextDept  int64
	nextWP    int64
	access    map[string]time.Time // access token → expiry
	refresh   map[string]bool      // refresh tokens still valid
	stats     Stats
	times     []time.Time

	stopping chan struct{} // closed by stop: held requests go ahead at once
	stopOnce sync.Once
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
		cond:      cfg.Conditions,
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
		stopping:  make(chan struct{}),
	}
	return p
}

// Config returns the effective configuration (defaults applied), including
// the secrets: for tests and the local simulator only.
func (p *Portal) Config() Config { return p.cfg }

// Faults returns the fault probabilities in force.
func (p *Portal) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// SetFaults replaces the fault probabilities from now on.
func (p *Portal) SetFaults(f Faults) {
	f = f.withDefaults()
	p.mu.Lock()
	p.faults = f
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

func (p *Portal) countLocked(method, outcome string) {
	m := p.stats.Calls[method]
	if m == nil {
		m = map[string]int{}
		p.stats.Calls[method] = m
	}
	m[outcome]++
}
