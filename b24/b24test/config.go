// Package b24test is an in-process simulated Bitrix24 cloud portal with the
// real limits (query leaky bucket, per-method operating time), the two
// methods b24queue creates objects with, their lookups, batch, webhook and
// OAuth authentication, and injectable faults. It is an ordinary HTTP server:
// it does not import the b24 client, so it checks the client from outside.
//
// Served paths:
//
//	POST /rest/USER/SECRET/METHOD[.json]  webhook call (JSON or PHP-style form body)
//	POST /rest/METHOD[.json]              OAuth call, access token in body field "auth"
//	GET  /oauth/token/?grant_type=refresh_token&...  rotates both tokens
//	GET  /_sim/stats, /_sim/departments, /_sim/workplaces  JSON snapshots
//	POST /_sim/faults (JSON Faults), /_sim/block?method=M&seconds=N,
//	     /_sim/access-denied?on=1
//
// Methods: department.add, department.get, crm.automatedsolution.add,
// crm.automatedsolution.list and batch; anything else is 404
// ERROR_METHOD_NOT_FOUND. The portal starts with department 1 "Company".
//
// Order of checks for a REST request: query bucket (503, also for bad
// credentials), authentication (401/403), faults that act before the work
// (500, 502), Latency, operating limit (429), the method, faults that act
// after the work (lost response, slow, malformed).
//
// Everything is safe for concurrent use. Time is read from Config.Clock so
// tests can drive the limits without sleeping; only Latency and SlowDelay
// ever sleep.
package b24test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"
)

// Config describes one simulated portal. The zero value is usable: call
// WithDefaults (New does) to get the limits of a standard cloud plan.
type Config struct {
	// Rate is how many requests per second drain from the query bucket
	// (2 on standard plans, 5 on Enterprise). Default 2.
	Rate float64
	// Burst is the bucket size: a request that would take the bucket above
	// it is answered 503 QUERY_LIMIT_EXCEEDED. Default 50.
	Burst int

	// OperatingLimit is the per-method execution budget in the rolling
	// window. Default 480s.
	OperatingLimit time.Duration
	// OperatingWindow is the rolling window, counted in 10 equal buckets,
	// so a counted execution leaves the window when its bucket does.
	// Default 10m.
	OperatingWindow time.Duration
	// CallCost is the operating time billed for one executed call of any
	// method without an entry in MethodCost. Default 50ms.
	CallCost time.Duration
	// MethodCost overrides CallCost per method name (without ".json").
	MethodCost map[string]time.Duration

	// WebhookUserID is the user in the webhook path /rest/USER/SECRET/. Default 1.
	WebhookUserID int
	// WebhookSecret is the webhook code. Default: 16 random hex bytes.
	// Never logged.
	WebhookSecret string

	// OAuth configures the application credentials and the initial tokens.
	OAuth OAuthConfig

	// WorkplaceCap is the plan's maximum number of digital workplaces;
	// crm.automatedsolution.add beyond it answers LIMIT_EXCEEDED.
	// 0 means unlimited.
	WorkplaceCap int

	// Faults are injected into REST calls (not into /_sim/ or the token
	// endpoint). They can be changed later with Portal.SetFaults.
	Faults Faults
	// Seed seeds the fault dice. 0 picks a random seed.
	Seed int64

	// Clock returns the current time for the limits, tokens and time
	// blocks. Default time.Now. It must be safe for concurrent use.
	Clock func() time.Time
	// Latency is a fixed real delay added to every REST call before it is
	// processed (outside any lock). Default 0.
	Latency time.Duration

	// Logger gets one line per request (method, outcome, status, latency);
	// never a secret. Default: discard.
	Logger *slog.Logger
}

// OAuthConfig holds the simulated application's credentials and the token
// pair the portal starts with. Empty strings are replaced by random values.
type OAuthConfig struct {
	ClientID     string
	ClientSecret string
	// AccessToken and RefreshToken are the initial pair; both valid from start.
	AccessToken  string
	RefreshToken string
	// AccessTTL is how long an access token stays valid after it is issued
	// (the initial one counts from New). Default 1h.
	AccessTTL time.Duration
}

// Faults are probabilities in [0,1], rolled independently per REST request
// with the portal's seeded dice.
type Faults struct {
	// ErrorRate: answer HTTP 500 INTERNAL_SERVER_ERROR before doing anything.
	ErrorRate float64 `json:"error_rate"`
	// BadGatewayRate: answer an HTML 502 page before doing anything, as a
	// front proxy does.
	BadGatewayRate float64 `json:"bad_gateway_rate"`
	// LostResponseRate: do the work (create the object), then close the
	// connection without answering.
	LostResponseRate float64 `json:"lost_response_rate"`
	// SlowRate: do the work, then answer after SlowDelay (or when the
	// client gives up, whichever is first).
	SlowRate float64 `json:"slow_rate"`
	// SlowDelay is the extra real delay of a slow answer. Default 2s when
	// SlowRate > 0. In JSON a number is nanoseconds, a string is parsed by
	// time.ParseDuration.
	SlowDelay time.Duration `json:"slow_delay"`
	// MalformedRate: do the work, then answer 200 with a truncated body.
	MalformedRate float64 `json:"malformed_rate"`
	// CommandErrorRate: rolled per command of a batch (not per request):
	// the command is not run and its entry in result_error is
	// INTERNAL_SERVER_ERROR, while the other commands run as usual. It
	// models a command the portal failed before doing its work.
	CommandErrorRate float64 `json:"command_error_rate"`
}

// UnmarshalJSON accepts slow_delay as nanoseconds or as a duration string.
func (f *Faults) UnmarshalJSON(b []byte) error {
	type plain Faults
	var aux struct {
		plain
		SlowDelay json.RawMessage `json:"slow_delay"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	*f = Faults(aux.plain)
	f.SlowDelay = 0
	if len(aux.SlowDelay) == 0 || string(aux.SlowDelay) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(aux.SlowDelay, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("faults: slow_delay: %w", err)
		}
		f.SlowDelay = d
		return nil
	}
	var n int64
	if err := json.Unmarshal(aux.SlowDelay, &n); err != nil {
		return fmt.Errorf("faults: slow_delay: %w", err)
	}
	f.SlowDelay = time.Duration(n)
	return nil
}

func (f Faults) validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"ErrorRate", f.ErrorRate}, {"BadGatewayRate", f.BadGatewayRate},
		{"LostResponseRate", f.LostResponseRate}, {"SlowRate", f.SlowRate},
		{"MalformedRate", f.MalformedRate}, {"CommandErrorRate", f.CommandErrorRate},
	} {
		if r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("Faults.%s: %v not in [0,1]", r.name, r.v))
		}
	}
	if f.SlowDelay < 0 {
		errs = append(errs, fmt.Errorf("Faults.SlowDelay: negative %v", f.SlowDelay))
	}
	return errors.Join(errs...)
}

func (f Faults) withDefaults() Faults {
	if f.SlowRate > 0 && f.SlowDelay == 0 {
		f.SlowDelay = 2 * time.Second
	}
	return f
}

// WithDefaults returns a copy with every zero field set to its documented
// default (random secrets and tokens included).
func (c Config) WithDefaults() Config {
	if c.Rate == 0 {
		c.Rate = 2
	}
	if c.Burst == 0 {
		c.Burst = 50
	}
	if c.OperatingLimit == 0 {
		c.OperatingLimit = 480 * time.Second
	}
	if c.OperatingWindow == 0 {
		c.OperatingWindow = 10 * time.Minute
	}
	if c.CallCost == 0 {
		c.CallCost = 50 * time.Millisecond
	}
	if c.WebhookUserID == 0 {
		c.WebhookUserID = 1
	}
	if c.WebhookSecret == "" {
		c.WebhookSecret = randomHex(16)
	}
	if c.OAuth.ClientID == "" {
		c.OAuth.ClientID = "local.sim" + randomHex(4)
	}
	if c.OAuth.ClientSecret == "" {
		c.OAuth.ClientSecret = randomHex(16)
	}
	if c.OAuth.AccessToken == "" {
		c.OAuth.AccessToken = randomHex(16)
	}
	if c.OAuth.RefreshToken == "" {
		c.OAuth.RefreshToken = randomHex(16)
	}
	if c.OAuth.AccessTTL == 0 {
		c.OAuth.AccessTTL = time.Hour
	}
	c.Faults = c.Faults.withDefaults()
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every invalid field by name. Call it after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	if c.Rate <= 0 {
		errs = append(errs, fmt.Errorf("Rate: must be > 0, got %v", c.Rate))
	}
	if c.Burst < 1 {
		errs = append(errs, fmt.Errorf("Burst: must be >= 1, got %d", c.Burst))
	}
	if c.OperatingLimit <= 0 {
		errs = append(errs, fmt.Errorf("OperatingLimit: must be > 0, got %v", c.OperatingLimit))
	}
	if c.OperatingWindow < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("OperatingWindow: must be >= 10ms, got %v", c.OperatingWindow))
	}
	if c.CallCost < 0 {
		errs = append(errs, fmt.Errorf("CallCost: negative %v", c.CallCost))
	}
	for m, d := range c.MethodCost {
		if d < 0 {
			errs = append(errs, fmt.Errorf("MethodCost[%s]: negative %v", m, d))
		}
	}
	if c.WebhookUserID < 1 {
		errs = append(errs, fmt.Errorf("WebhookUserID: must be >= 1, got %d", c.WebhookUserID))
	}
	if c.WorkplaceCap < 0 {
		errs = append(errs, fmt.Errorf("WorkplaceCap: negative %d", c.WorkplaceCap))
	}
	if c.OAuth.AccessTTL < 0 {
		errs = append(errs, fmt.Errorf("OAuth.AccessTTL: negative %v", c.OAuth.AccessTTL))
	}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("Latency: negative %v", c.Latency))
	}
	if err := c.Faults.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RegisterFlags binds every flag-expressible field of c to fs, with c's
// current values as defaults. Used by cmd/b24sim.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Rate, "rate", c.Rate, "requests per second the query bucket drains (default 2)")
	fs.IntVar(&c.Burst, "burst", c.Burst, "query bucket size before 503 QUERY_LIMIT_EXCEEDED (default 50)")
	fs.DurationVar(&c.OperatingLimit, "operating-limit", c.OperatingLimit, "per-method operating budget in the window (default 480s)")
	fs.DurationVar(&c.OperatingWindow, "operating-window", c.OperatingWindow, "rolling operating window, 10 buckets (default 10m)")
	fs.DurationVar(&c.CallCost, "call-cost", c.CallCost, "operating time billed per executed call (default 50ms)")
	fs.IntVar(&c.WebhookUserID, "user-id", c.WebhookUserID, "webhook user ID (default 1)")
	fs.StringVar(&c.WebhookSecret, "secret", c.WebhookSecret, "webhook secret (default random)")
	fs.StringVar(&c.OAuth.ClientID, "client-id", c.OAuth.ClientID, "OAuth client_id (default random)")
	fs.StringVar(&c.OAuth.ClientSecret, "client-secret", c.OAuth.ClientSecret, "OAuth client_secret (default random)")
	fs.StringVar(&c.OAuth.AccessToken, "access-token", c.OAuth.AccessToken, "initial OAuth access token (default random)")
	fs.StringVar(&c.OAuth.RefreshToken, "refresh-token", c.OAuth.RefreshToken, "initial OAuth refresh token (default random)")
	fs.DurationVar(&c.OAuth.AccessTTL, "access-ttl", c.OAuth.AccessTTL, "OAuth access token lifetime (default 1h)")
	fs.IntVar(&c.WorkplaceCap, "workplace-cap", c.WorkplaceCap, "max digital workplaces, then LIMIT_EXCEEDED (0 = unlimited)")
	fs.Float64Var(&c.Faults.ErrorRate, "error-rate", c.Faults.ErrorRate, "probability of 500 INTERNAL_SERVER_ERROR before the work")
	fs.Float64Var(&c.Faults.BadGatewayRate, "bad-gateway-rate", c.Faults.BadGatewayRate, "probability of an HTML 502 before the work")
	fs.Float64Var(&c.Faults.LostResponseRate, "lost-response-rate", c.Faults.LostResponseRate, "probability of doing the work then closing the connection")
	fs.Float64Var(&c.Faults.SlowRate, "slow-rate", c.Faults.SlowRate, "probability of doing the work then answering after --slow-delay")
	fs.DurationVar(&c.Faults.SlowDelay, "slow-delay", c.Faults.SlowDelay, "delay of a slow answer (default 2s)")
	fs.Float64Var(&c.Faults.MalformedRate, "malformed-rate", c.Faults.MalformedRate, "probability of doing the work then a truncated 200 body")
	fs.Float64Var(&c.Faults.CommandErrorRate, "command-error-rate", c.Faults.CommandErrorRate, "probability of INTERNAL_SERVER_ERROR for one batch command (not run)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the fault dice (0 = random)")
	fs.DurationVar(&c.Latency, "latency", c.Latency, "fixed processing delay per call")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
