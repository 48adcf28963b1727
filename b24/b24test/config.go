package b24test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	// OperatingWindow is the rolling window. Executions are counted in
	// buckets of OperatingWindow/10 (one minute by default): a bucket opens
	// at the first call that finds no open bucket, takes the calls of the
	// next OperatingWindow/10, and leaves the window OperatingWindow after
	// its first call, with all it counted. Default 10m.
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
	// Conditions are the portal-level states it starts in (moved, deleted,
	// webhook revoked...). They can be changed later with the Portal's
	// setters.
	Conditions Conditions
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
