package b24test

import "flag"

// RegisterFlags binds every flag-expressible field of c to fs, with c's
// current values as defaults: the limits, credentials, every fault rate
// and delay, and every condition. Used by cmd/b24sim.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Rate, "rate", c.Rate, "requests per second the query bucket drains (default 2)")
	fs.IntVar(&c.Burst, "burst", c.Burst, "query bucket size before 503 QUERY_LIMIT_EXCEEDED (default 50)")
	fs.DurationVar(&c.OperatingLimit, "operating-limit", c.OperatingLimit, "per-method operating budget in the window (default 480s)")
	fs.DurationVar(&c.OperatingWindow, "operating-window", c.OperatingWindow, "rolling operating window, buckets of a tenth of it (default 10m)")
	fs.DurationVar(&c.CallCost, "call-cost", c.CallCost, "operating time billed per executed call (default 50ms)")
	fs.IntVar(&c.WebhookUserID, "user-id", c.WebhookUserID, "webhook user ID (default 1)")
	fs.StringVar(&c.WebhookSecret, "secret", c.WebhookSecret, "webhook secret (default random)")
	fs.StringVar(&c.OAuth.ClientID, "client-id", c.OAuth.ClientID, "OAuth client_id (default random)")
	fs.StringVar(&c.OAuth.ClientSecret, "client-secret", c.OAuth.ClientSecret, "OAuth client_secret (default random)")
	fs.StringVar(&c.OAuth.AccessToken, "access-token", c.OAuth.AccessToken, "initial OAuth access token (default random)")
	fs.StringVar(&c.OAuth.RefreshToken, "refresh-token", c.OAuth.RefreshToken, "initial OAuth refresh token (default random)")
	fs.DurationVar(&c.OAuth.AccessTTL, "access-ttl", c.OAuth.AccessTTL, "OAuth access token lifetime (default 1h)")
	fs.IntVar(&c.WorkplaceCap, "workplace-cap", c.WorkplaceCap, "max digital workplaces, then LIMIT_EXCEEDED (0 = unlimited)")
	for _, r := range c.Faults.rates() {
		fs.Float64Var(r.v, r.flag, *r.v, r.usage)
	}
	fs.DurationVar(&c.Faults.SlowDelay, "slow-delay", c.Faults.SlowDelay, "delay of a slow answer (default 2s)")
	fs.DurationVar(&c.Faults.HoldDelay, "hold-delay", c.Faults.HoldDelay, "how long a held request waits before it runs (default 40s)")
	for _, s := range switches {
		fs.BoolVar(s.field(&c.Conditions), s.name, *s.field(&c.Conditions), s.usage)
	}
	fs.StringVar(&c.Conditions.MovedTo, "moved-to", c.Conditions.MovedTo, "answer every REST call 302 to this host (or URL), same path")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the fault dice (0 = random)")
	fs.DurationVar(&c.Latency, "latency", c.Latency, "fixed processing delay per call")
}
