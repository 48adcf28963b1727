// Package config reads the configuration of the worker and enqueue commands
// from the environment and command-line flags (a flag overrides the
// environment variable of the same meaning), and validates it, reporting every
// problem at once by the name of the variable, flag or file field at fault.
//
// It holds no server logic: the mains turn a Worker or Enqueue into asynq
// servers, clients and Bitrix24 clients. Secrets (webhook codes, OAuth
// secrets and tokens, passwords) never appear in an error, in the usage text
// or in the String/LogValue forms of the types here.
package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/b24queue/b24queue/b24"
)

// Limits are the request budget of one Bitrix24 portal, as the limiter
// package takes them.
type Limits struct {
	// Rate is the requests per second the portal drains (B24_RATE, --rate,
	// default 2; 5 on Enterprise plans). Always > 0 after validation.
	Rate float64
	// Burst is the bucket size before the portal answers 503 (B24_BURST,
	// --burst, default 50; 250 on Enterprise plans). Always >= 1.
	Burst int
	// OperatingLimit is the per-method execution budget in the rolling
	// window (B24_OPERATING_LIMIT, --operating-limit, default 480s).
	// Always > 0 and <= OperatingWindow.
	OperatingLimit time.Duration
	// OperatingWindow is that rolling window, also how long to wait on a 429
	// without a known reset time (B24_OPERATING_WINDOW, --operating-window,
	// default 10m). Always > 0.
	OperatingWindow time.Duration
}

// OAuth holds the credentials of a portal reached through an OAuth
// application (portals file only). Every field but TokenEndpoint is required.
// The fields are secrets except PortalURL, ClientID and TokenEndpoint; String
// never prints them.
type OAuth struct {
	// PortalURL is the portal base, https://example.bitrix24.ru/ (file key
	// oauth.portal_url). http:// only for loopback hosts. Normalised to end
	// with "/".
	PortalURL string
	// ClientID is the application's client_id (oauth.client_id).
	ClientID string
	// ClientSecret is the application's client_secret (oauth.client_secret).
	ClientSecret string
	// AccessToken is the initial access token (oauth.access_token); a newer
	// pair in the token store wins.
	AccessToken string
	// RefreshToken is the initial refresh token (oauth.refresh_token).
	RefreshToken string
	// TokenEndpoint is the OAuth server's token URL (oauth.token_endpoint);
	// empty means the b24 client's default, https://oauth.bitrix.info/oauth/token/.
	TokenEndpoint string
}

// String describes the credentials without any secret.
func (o OAuth) String() string {
	s := fmt.Sprintf("oauth %s client %s", RedactURL(o.PortalURL), o.ClientID)
	if o.TokenEndpoint != "" {
		s += " via " + RedactURL(o.TokenEndpoint)
	}
	return s
}

// Portal is one Bitrix24 portal the worker serves. Exactly one of WebhookURL
// and OAuth is set.
type Portal struct {
	// Name is what tasks refer to; it matches tasks.PortalNamePattern.
	// B24_WEBHOOK_URL defines the portal "default"; the portals file names
	// the others.
	Name string
	// WebhookURL is the inbound webhook base https://HOST/rest/USER/SECRET/
	// (always ending in "/"). A secret: print it with RedactURL.
	WebhookURL string
	// OAuth is set for a portal reached through an OAuth application.
	OAuth *OAuth
	// Limits are the portal's budget: the file's values, each unset one
	// inherited from Worker.Defaults.
	Limits Limits
}

// String describes the portal without any secret.
func (p Portal) String() string {
	auth := "webhook " + RedactURL(p.WebhookURL)
	if p.OAuth != nil {
		auth = p.OAuth.String()
	}
	return fmt.Sprintf("portal %s (%s; rate %g/s, burst %d, operating %s per %s)",
		p.Name, auth, p.Limits.Rate, p.Limits.Burst, p.Limits.OperatingLimit, p.Limits.OperatingWindow)
}

// LogValue makes slog print the redacted String form, never the credentials.
func (p Portal) LogValue() slog.Value { return slog.StringValue(p.String()) }

// UsageError is a configuration that cannot be used. Problems lists every
// problem found, each naming the variable, flag or file field at fault and
// never containing a secret. Mains exit with status 2 when
// errors.As(err, new(*UsageError)) holds.
type UsageError struct {
	Problems []string
}

// Error returns the problems, one per line.
func (e *UsageError) Error() string { return strings.Join(e.Problems, "\n") }

// problems collects validation problems and scrubs known secrets from them
// as a last line of defence: the messages are written not to contain any,
// but a secret that slipped into a parser's message must still not leak.
type problems struct {
	list    []string
	secrets []string
	// httpHosts are the hosts besides loopback whose portal URLs may use
	// plain http (B24_INSECURE_HTTP_HOSTS); URL checks read it from here.
	httpHosts []string
}

func (p *problems) addf(format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

// secret registers a value to scrub. Very short values are skipped because
// replacing e.g. "1" everywhere would garble messages; those are never
// printed by the messages themselves either.
func (p *problems) secret(s string) {
	if len(s) >= 4 {
		p.secrets = append(p.secrets, s)
	}
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	out := make([]string, len(p.list))
	for i, m := range p.list {
		for _, s := range p.secrets {
			m = strings.ReplaceAll(m, s, "***")
		}
		out[i] = m
	}
	return &UsageError{Problems: out}
}

var (
	// Fallbacks for URLs that do not parse: mask the userinfo and the
	// segment after /rest/USER/.
	rawUserinfoRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@`)
	rawRestRE     = regexp.MustCompile(`(/rest/[^/?#]*/)[^/?#]+`)
)

// redactMark stands in for "***" while a url.URL is re-encoded, since the
// encoder would escape "*"; it is unlikely to occur in a real URL.
const redactMark = "REDACTEDb24q"

// secretQueryKeys are query parameters whose values RedactURL masks.
var secretQueryKeys = map[string]bool{
	"auth": true, "access_token": true, "refresh_token": true,
	"client_secret": true, "password": true, "code": true,
}

// RedactURL returns u safe to print:
//   - the password of the userinfo (redis://user:PASS@host) becomes ***;
//   - in an http(s) URL with a "rest" path segment (a Bitrix24 webhook
//     https://HOST/rest/USER/SECRET/), the SECRET segment becomes *** (and
//     the USER segment too unless it is a number, since then the secret may
//     be in its place); method names after it are kept;
//   - in an http(s) URL without a "rest" segment every path segment becomes
//     ***, since nothing tells which one is secret;
//   - values of auth, access_token, refresh_token, client_secret, password
//     and code query parameters become ***.
//
// A string that does not parse as a URL is masked by pattern (userinfo and
// the segment after /rest/USER/). The empty string stays empty.
func RedactURL(u string) string {
	if u == "" {
		return ""
	}
	pu, err := url.Parse(u)
	if err != nil {
		s := rawUserinfoRE.ReplaceAllString(u, "${1}***@")
		return rawRestRE.ReplaceAllString(s, "${1}***")
	}
	changed := false
	if pu.User != nil {
		if _, has := pu.User.Password(); has {
			pu.User = url.UserPassword(pu.User.Username(), redactMark)
			changed = true
		}
	}
	if pu.Scheme == "http" || pu.Scheme == "https" {
		if rp := redactWebhookPath(pu.Path); rp != pu.Path {
			pu.Path, pu.RawPath, changed = rp, "", true
		}
	}
	if pu.RawQuery != "" {
		q := pu.Query()
		for k := range q {
			if secretQueryKeys[strings.ToLower(k)] {
				q[k] = []string{redactMark}
				changed = true
			}
		}
		if changed {
			pu.RawQuery = q.Encode()
		}
	}
	if !changed {
		// Nothing secret: keep the caller's spelling exactly.
		return u
	}
	// url.URL would escape "*", so mark with a placeholder and swap it after.
	return strings.ReplaceAll(pu.String(), redactMark, "***")
}

func redactWebhookPath(p string) string {
	segs := strings.Split(p, "/")
	rest := -1
	for i, s := range segs {
		if s == "rest" {
			rest = i
			break
		}
	}
	for i, s := range segs {
		if s == "" {
			continue
		}
		switch {
		case rest < 0:
			segs[i] = redactMark
		case i == rest+1 && !isDigits(s):
			segs[i] = redactMark
		case i == rest+2:
			segs[i] = redactMark
		}
	}
	return strings.Join(segs, "/")
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// urlReason turns a url.Parse error into its reason without the URL itself,
// which *url.Error quotes in full (with any secret).
func urlReason(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return "not a valid URL"
}

// checkPortalURL validates the scheme and host of a portal-facing URL:
// https, or http for a loopback host only. It returns the parsed URL and a
// reason when it is not acceptable.
func checkPortalURL(raw string, httpHosts []string) (*url.URL, string) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, urlReason(err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, "must be an https:// URL"
	case u.Host == "" || u.Hostname() == "":
		return nil, "has no host"
	case u.Scheme == "http" && !b24.IsLoopbackHost(u.Hostname()) && !slices.Contains(httpHosts, strings.ToLower(u.Hostname())):
		return nil, "must be https:// (http:// is accepted for loopback hosts only: 127.0.0.0/8, ::1, localhost; more with B24_INSECURE_HTTP_HOSTS)"
	case u.User != nil:
		return nil, "must not contain user:password@"
	case u.Fragment != "":
		return nil, "must not contain a #fragment"
	}
	return u, ""
}

// checkWebhookURL validates a Bitrix24 inbound webhook base and returns it
// normalised to end with "/", or a reason (without the secret).
func checkWebhookURL(raw string, httpHosts []string) (string, string) {
	u, reason := checkPortalURL(raw, httpHosts)
	if reason != "" {
		return "", reason
	}
	if u.RawQuery != "" {
		return "", "must not contain a ?query"
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(segs) != 3 || segs[0] != "rest" || !isDigits(segs[1]) || segs[2] == "" {
		return "", "must have the form https://HOST/rest/USER_ID/SECRET/"
	}
	u.Path = "/" + strings.Join(segs, "/") + "/"
	u.RawPath = ""
	return u.String(), ""
}
