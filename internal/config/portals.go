package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/tasks"
)

// PortalsFileHelp describes the B24_PORTALS_FILE format; WorkerUsage
// includes it.
const PortalsFileHelp = `B24_PORTALS_FILE is YAML naming several portals (name: ` + tasks.PortalNamePattern + `),
each with exactly one of webhook_url or oauth, and optional limits (unset ones
inherit B24_RATE, B24_BURST, B24_OPERATING_LIMIT, B24_OPERATING_WINDOW):

  portals:
    acme:
      webhook_url: ${ACME_WEBHOOK_URL}     # https://acme.bitrix24.ru/rest/1/SECRET/
      rate: 5
      burst: 250
    beta:
      oauth:
        portal_url: https://beta.bitrix24.de/
        client_id: app.123
        client_secret: ${BETA_CLIENT_SECRET}
        access_token: ${BETA_ACCESS_TOKEN}
        refresh_token: ${BETA_REFRESH_TOKEN}
        token_endpoint: https://oauth.bitrix.info/oauth/token/   # optional
      operating_limit: 480s
      operating_window: 10m

${NAME} in webhook_url and oauth values is replaced by the environment
variable NAME (which must be set and non-empty), so secrets can stay out of
the file. Unknown fields are errors.`

// filePortals is the document of a portals file.
type filePortals struct {
	Portals map[string]*filePortal `yaml:"portals"`
}

type filePortal struct {
	WebhookURL      string     `yaml:"webhook_url"`
	OAuth           *fileOAuth `yaml:"oauth"`
	Rate            *float64   `yaml:"rate"`
	Burst           *int       `yaml:"burst"`
	OperatingLimit  *string    `yaml:"operating_limit"`
	OperatingWindow *string    `yaml:"operating_window"`
}

type fileOAuth struct {
	PortalURL     string `yaml:"portal_url"`
	ClientID      string `yaml:"client_id"`
	ClientSecret  string `yaml:"client_secret"`
	AccessToken   string `yaml:"access_token"`
	RefreshToken  string `yaml:"refresh_token"`
	TokenEndpoint string `yaml:"token_endpoint"`
}

var (
	envRefRE  = regexp.MustCompile(`\$\{([^}]*)\}`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// yaml.v3 quotes up to 10 characters of a mistyped value; a secret put
	// in the wrong field must not show, so the quote is dropped.
	yamlValueRE = regexp.MustCompile(" `[^`]*`")
	yamlTypeRE  = regexp.MustCompile(` in type config\.\w+`)
)

// expandEnv replaces each ${NAME} in s by getenv(NAME). A malformed or empty
// reference is a problem named after field.
func expandEnv(s, field string, getenv func(string) string, p *problems) string {
	return envRefRE.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if !envNameRE.MatchString(name) {
			p.addf("%s: %q is not a valid ${NAME} reference", field, ref)
			return ""
		}
		v := getenv(name)
		if v == "" {
			p.addf("%s: ${%s} is unset or empty", field, name)
		}
		return v
	})
}

// unknownFieldRE is yaml.v3's message for a key that is no field.
var unknownFieldRE = regexp.MustCompile(`field (.*) not found in type .*`)

// fieldNameRE is what a field name looks like.
var fieldNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,40}$`)

// yamlProblems turns a yaml.v3 decoding error into one message per
// problem without any value of the document: a mistyped value is not
// quoted, and an unknown key is named only when it looks like a field name
// (a webhook URL pasted as a key is a secret). Go type names are dropped.
func yamlProblems(err error) []string {
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: "), "unmarshal errors:\n")
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if m := unknownFieldRE.FindStringSubmatchIndex(line); m != nil {
			name := line[m[2]:m[3]]
			if fieldNameRE.MatchString(name) {
				line = line[:m[0]] + "field " + name + " not found"
			} else {
				line = line[:m[0]] + "an unknown key (not shown: it is not a field name)"
			}
		}
		line = yamlValueRE.ReplaceAllString(line, "")
		line = yamlTypeRE.ReplaceAllString(line, "")
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// readPortalsFile parses the portals file at path into portals with limits
// inherited from def. Every problem goes to p, named
// "B24_PORTALS_FILE PATH: portals.NAME.FIELD".
func readPortalsFile(path, pathName string, def Limits, getenv func(string) string, p *problems) []Portal {
	where := fmt.Sprintf("%s %s", pathName, path)
	data, err := os.ReadFile(path)
	if err != nil {
		reason := "cannot be read"
		switch {
		case errors.Is(err, os.ErrNotExist):
			reason = "does not exist"
		case errors.Is(err, os.ErrPermission):
			reason = "permission denied"
		}
		p.addf("%s: %s", where, reason)
		return nil
	}
	var doc filePortals
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.addf("%s: is empty; it must define portals:", where)
			return nil
		}
		for _, line := range yamlProblems(err) {
			p.addf("%s: %s", where, line)
		}
		return nil
	}
	if len(doc.Portals) == 0 {
		p.addf("%s: defines no portals (expected a portals: mapping)", where)
		return nil
	}
	names := make([]string, 0, len(doc.Portals))
	for n := range doc.Portals {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]Portal, 0, len(names))
	for _, name := range names {
		fp := doc.Portals[name]
		field := fmt.Sprintf("%s: portals.%s", where, name)
		if !tasks.ValidPortalName(name) {
			p.addf("%s: portal name %q must match %s", where, name, tasks.PortalNamePattern)
		}
		if fp == nil {
			p.addf("%s: needs webhook_url or oauth", field)
			continue
		}
		out = append(out, filePortalToPortal(name, field, fp, def, getenv, p))
	}
	return out
}

func filePortalToPortal(name, field string, fp *filePortal, def Limits, getenv func(string) string, p *problems) Portal {
	pt := Portal{Name: name, Limits: def}
	switch {
	case fp.WebhookURL != "" && fp.OAuth != nil:
		p.addf("%s: set exactly one of webhook_url and oauth, not both", field)
	case fp.WebhookURL == "" && fp.OAuth == nil:
		p.addf("%s: needs webhook_url or oauth", field)
	case fp.WebhookURL != "":
		raw := expandEnv(fp.WebhookURL, field+".webhook_url", getenv, p)
		pt.WebhookURL = webhookProblem(raw, field+".webhook_url", p)
	default:
		pt.OAuth = oauthFromFile(fp.OAuth, field+".oauth", getenv, p)
	}
	// Only the limits the file sets are checked here: inherited ones were
	// checked (and reported) as B24_RATE etc.
	var names limitNames
	if fp.Rate != nil {
		pt.Limits.Rate, names.rate = *fp.Rate, field+".rate"
	}
	if fp.Burst != nil {
		pt.Limits.Burst, names.burst = *fp.Burst, field+".burst"
	}
	if fp.OperatingLimit != nil {
		pt.Limits.OperatingLimit, names.opLimit = fileDuration(*fp.OperatingLimit, field+".operating_limit", p)
	}
	if fp.OperatingWindow != nil {
		pt.Limits.OperatingWindow, names.opWindow = fileDuration(*fp.OperatingWindow, field+".operating_window", p)
	}
	validateLimits(pt.Limits, names, p)
	return pt
}

// fileDuration parses a duration of the file. A bad one is reported here,
// and the returned name is "" so that validateLimits skips it.
func fileDuration(s, field string, p *problems) (time.Duration, string) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.addf("%s %q: must be a duration such as 480s or 10m", field, s)
		return 0, ""
	}
	return d, field
}

func oauthFromFile(fo *fileOAuth, field string, getenv func(string) string, p *problems) *OAuth {
	o := &OAuth{
		PortalURL:     expandEnv(fo.PortalURL, field+".portal_url", getenv, p),
		ClientID:      expandEnv(fo.ClientID, field+".client_id", getenv, p),
		ClientSecret:  expandEnv(fo.ClientSecret, field+".client_secret", getenv, p),
		AccessToken:   expandEnv(fo.AccessToken, field+".access_token", getenv, p),
		RefreshToken:  expandEnv(fo.RefreshToken, field+".refresh_token", getenv, p),
		TokenEndpoint: expandEnv(fo.TokenEndpoint, field+".token_endpoint", getenv, p),
	}
	p.secret(o.ClientSecret)
	p.secret(o.AccessToken)
	p.secret(o.RefreshToken)
	for _, f := range []struct{ name, v string }{
		{"portal_url", fo.PortalURL}, {"client_id", fo.ClientID}, {"client_secret", fo.ClientSecret},
		{"access_token", fo.AccessToken}, {"refresh_token", fo.RefreshToken},
	} {
		if strings.TrimSpace(f.v) == "" {
			p.addf("%s.%s: required", field, f.name)
		}
	}
	if fo.PortalURL != "" && o.PortalURL != "" {
		u, reason := checkPortalURL(o.PortalURL, p.httpHosts)
		switch {
		case reason != "":
			p.addf("%s.portal_url %s: %s", field, RedactURL(o.PortalURL), reason)
		case u.RawQuery != "":
			u.RawQuery = "" // it may hold a token: never shown
			p.addf("%s.portal_url %s: must not contain a ?query", field, RedactURL(u.String()))
		default:
			if !strings.HasSuffix(u.Path, "/") {
				u.Path += "/"
			}
			o.PortalURL = u.String()
		}
	}
	if o.TokenEndpoint != "" {
		if _, reason := checkPortalURL(o.TokenEndpoint, p.httpHosts); reason != "" {
			p.addf("%s.token_endpoint %s: %s", field, RedactURL(o.TokenEndpoint), reason)
		}
	}
	return o
}

// webhookProblem validates a webhook URL, registering its secret for
// scrubbing, and returns it normalised ("" after a problem).
func webhookProblem(raw, name string, p *problems) string {
	if raw == "" {
		return ""
	}
	p.secret(b24.WebhookSecret(raw))
	norm, reason := checkWebhookURL(raw, p.httpHosts)
	if reason != "" {
		p.addf("%s %s: %s", name, showWebhook(raw, p), reason)
		return ""
	}
	return norm
}

// showWebhook is how a rejected webhook value appears in a message: its
// redacted form when it looks like an http(s) URL with a host, else nothing
// of it at all. A value that is not such a URL may be the bare secret code
// pasted alone; it is also registered for scrubbing.
func showWebhook(raw string, p *problems) string {
	if u, err := url.Parse(raw); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		return RedactURL(raw)
	}
	if lower := strings.ToLower(raw); strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://") {
		return RedactURL(raw) // unparseable: masked by pattern
	}
	p.secret(raw)
	return fmt.Sprintf("(value of %d characters not shown: it is not a URL and may be the secret itself)", len([]rune(raw)))
}

// limitNames names the four limit settings in messages; an empty name marks
// a value already reported as unparseable, whose range is not checked.
type limitNames struct{ rate, burst, opLimit, opWindow string }

// validateLimits reports limits out of range.
func validateLimits(l Limits, n limitNames, p *problems) {
	if n.rate != "" && (!(l.Rate > 0) || math.IsInf(l.Rate, 0)) {
		p.addf("%s %g: must be a number of requests per second > 0", n.rate, l.Rate)
	}
	if n.burst != "" && l.Burst < 1 {
		p.addf("%s %d: must be at least 1", n.burst, l.Burst)
	}
	if n.opLimit != "" && l.OperatingLimit <= 0 {
		p.addf("%s %s: must be > 0", n.opLimit, l.OperatingLimit)
	}
	if n.opWindow != "" && l.OperatingWindow <= 0 {
		p.addf("%s %s: must be > 0", n.opWindow, l.OperatingWindow)
	}
	// Compared when either side is named (the other may be inherited) and
	// both are valid.
	if (n.opLimit != "" || n.opWindow != "") && l.OperatingLimit > 0 && l.OperatingWindow > 0 &&
		l.OperatingLimit > l.OperatingWindow {
		name := n.opLimit
		if name == "" {
			name = n.opWindow
		}
		p.addf("%s: operating limit %s must not exceed operating window %s", name, l.OperatingLimit, l.OperatingWindow)
	}
}
