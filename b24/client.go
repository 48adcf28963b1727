// Package b24 is a Bitrix24 REST client: webhook and OAuth authentication
// (with one token refresh on expired_token), single calls, batches, tolerant
// decoding of PHP-encoded answers, a typed *Error with the portal's code, the
// classification of errors for retrying callers (Classify, IsAmbiguous), and
// typed helpers for departments and digital workplaces.
//
// The client never retries on its own except once after an OAuth token
// refresh; pacing (rate limits) is the job of a Pacer and retrying the job of
// the caller. A refresh token the OAuth server refused is never asked with
// again, by any process sharing the TokenStore (see Token). The client never
// follows a redirect (see CodePortalMoved). Secrets (webhook code, tokens,
// client secret) never appear in an error text or in String().
package b24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultTimeout is the timeout of one HTTP request when WithTimeout is not
// given. A cloud portal lets one request run for up to 60 s; the client
// waits longer (network and queueing on top), because giving up on a
// request the portal is still running turns a slow success into an
// ambiguous failure and a lookup.
const DefaultTimeout = 75 * time.Second

// DefaultTokenEndpoint is the Bitrix24 OAuth server's token endpoint.
const DefaultTokenEndpoint = "https://oauth.bitrix.info/oauth/token/"

// maxBody caps how much of an answer is read; Bitrix24 pages are 50 items.
const maxBody = 32 << 20

// Pacer is asked before every HTTP request the client sends to the portal
// (every page of a list and every batch; not the OAuth refresh, which goes to
// the OAuth server). method is the REST method, "batch" for a batch. An error
// aborts the call and is returned wrapped; it is called from many goroutines.
type Pacer interface {
	Wait(ctx context.Context, method string) error
}

// Observer is told after every HTTP request to the portal, also failed ones
// (not after a refused Pacer.Wait, which sent nothing, nor after the OAuth
// refresh). It runs synchronously on the caller's goroutine, so it must be
// quick and safe for concurrent use.
type Observer func(CallInfo)

// CallInfo describes one HTTP request to the portal.
type CallInfo struct {
	Method   string        // "batch" for a batch
	Duration time.Duration // from sending to the answer being read
	Time     Time          // the answer's time block (zero when none)
	Err      error         // nil on success; as returned to the caller
	Commands []CommandInfo // batch only: one per command, with its result_time
}

// CommandInfo is the outcome of one command of a batch. Time and Err are zero
// for a command that did not run (halt after an earlier error).
type CommandInfo struct {
	Key, Method string
	Time        Time
	Err         error
}

// Option configures a Client.
type Option func(*options)

type options struct {
	hc       *http.Client
	timeout  time.Duration
	pacer    Pacer
	observer Observer
	store    TokenStore
	logger   *slog.Logger
	// httpHosts may be reached over plain http besides loopback.
	httpHosts []string
}

// WithInsecureHTTPHosts allows plain http:// for the named hosts besides
// loopback: for a simulator that is not on this machine's loopback (as in
// docker-compose). Never use it for a real portal: the webhook code or token
// would cross the network in clear text.
func WithInsecureHTTPHosts(hosts ...string) Option {
	return func(o *options) {
		for _, h := range hosts {
			o.httpHosts = append(o.httpHosts, strings.ToLower(h))
		}
	}
}

// WithHTTPClient makes the client send through hc instead of its own
// keep-alive client. hc's own Timeout still applies in addition to
// WithTimeout. The client uses a copy of hc whose CheckRedirect never
// follows a redirect (see CodePortalMoved); hc itself is not changed, and
// its Transport and Jar are shared.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithTimeout bounds one HTTP request, from sending to reading the answer
// (default DefaultTimeout, 75 s; d <= 0 keeps the default). Keep it above
// the portal's 60 s cap on a request. A caller's shorter context deadline
// wins.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithPacer sets the Pacer asked before each request (default: none).
func WithPacer(p Pacer) Option { return func(o *options) { o.pacer = p } }

// WithObserver sets the Observer told after each request (default: none).
func WithObserver(f Observer) Option { return func(o *options) { o.observer = f } }

// WithTokenStore makes an OAuth client load its token pair from s on the
// first call (a stored pair newer than OAuthConfig.Token wins) and save every
// refreshed pair to it, so that several workers share one refresh token.
// Ignored by webhook clients.
func WithTokenStore(s TokenStore) Option { return func(o *options) { o.store = s } }

// WithLogger sets the logger for events that are not returned as errors
// (a failed TokenStore.Save). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Client calls one Bitrix24 portal. It is safe for concurrent use; create one
// per portal and share it.
type Client struct {
	// cred is a pointer so that printing a dereferenced Client with %v shows
	// an address, not the secret.
	cred     *credentials
	hc       *http.Client
	timeout  time.Duration
	pacer    Pacer
	observer Observer
	logger   *slog.Logger
	store    TokenStore  // OAuth only
	oauth    *oauthState // nil for a webhook client
}

type credentials struct {
	base    string // webhook base or PortalURL + "rest/", ends in "/"
	display string // base with the secret replaced
	secret  string // webhook code; "" for OAuth
}

// webhookPath matches the end of a webhook path: /rest/USER_ID/SECRET/.
var webhookPath = regexp.MustCompile(`/rest/([0-9]+)/([^/]+)/$`)

// methodName is what a REST method name may contain; it keeps callers from
// smuggling path or query parts into the URL.
var methodName = regexp.MustCompile(`^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$`)

// NewWebhook returns a client for an inbound webhook
// https://PORTAL/rest/USER_ID/SECRET/ (a missing final slash is added).
// Plain http:// is accepted only for loopback hosts (localhost, 127.0.0.0/8,
// ::1), for the simulator. Errors never contain the secret.
func NewWebhook(webhookURL string, opts ...Option) (*Client, error) {
	o := applyOptions(opts)
	u, err := parseBaseURL("webhook URL", webhookURL, o.httpHosts)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	m := webhookPath.FindStringSubmatch(u.Path)
	if m == nil {
		return nil, errors.New("b24: invalid webhook URL: path must end in /rest/USER_ID/SECRET/")
	}
	secret := m[2]
	u.RawPath = ""
	base := u.String()
	c := newClient(o)
	c.cred = &credentials{
		base:    base,
		secret:  secret,
		display: strings.TrimSuffix(base, secret+"/") + redacted + "/",
	}
	return c, nil
}

// parseBaseURL checks the parts every base URL must satisfy. Errors quote
// neither the URL nor url.Parse's error (which would quote the URL).
func parseBaseURL(what, raw string, httpHosts []string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("b24: invalid %s: not a URL", what)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("b24: invalid %s: must be an absolute https:// URL", what)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("b24: invalid %s: must not contain user info, a query or a fragment", what)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopbackHost(u.Hostname()) && !slices.Contains(httpHosts, strings.ToLower(u.Hostname())) {
			return nil, fmt.Errorf("b24: invalid %s: host %q requires https:// (http:// only for loopback hosts)", what, u.Hostname())
		}
	default:
		return nil, fmt.Errorf("b24: invalid %s: scheme %q not supported, use https://", what, u.Scheme)
	}
	return u, nil
}

func applyOptions(opts []Option) options {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func newClient(o options) *Client {
	if o.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32 // many workers share one portal host
		o.hc = &http.Client{Transport: tr}
	} else {
		hc := *o.hc // the caller's client stays as it is
		o.hc = &hc
	}
	o.hc.CheckRedirect = noRedirect
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		hc:       o.hc,
		timeout:  o.timeout,
		pacer:    o.pacer,
		observer: o.observer,
		logger:   o.logger,
	}
	c.store = o.store
	return c
}

// noRedirect is the CheckRedirect of every client: a redirect is answered
// as it came (roundTrip turns it into PORTAL_MOVED), never followed.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// String describes the client without secrets, e.g.
// "b24.Client(webhook https://portal/rest/1/***/)".
func (c *Client) String() string {
	if c == nil || c.cred == nil {
		return "b24.Client(<nil>)"
	}
	kind := "webhook"
	if c.oauth != nil {
		kind = "oauth"
	}
	return "b24.Client(" + kind + " " + c.cred.display + ")"
}

// GoString is String, so that %#v does not print the secret either.
func (c *Client) GoString() string { return c.String() }

// Format prints String() for every verb, also for a dereferenced Client
// value, whose fields fmt would otherwise print through reflection, secrets
// included.
func (c Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// secrets returns every credential to redact from error texts right now.
func (c *Client) secrets() []string {
	s := []string{c.cred.secret}
	if c.oauth != nil {
		s = append(s, c.oauth.secrets()...)
	}
	return s
}

// Call calls a REST method with params (anything that encodes to a JSON
// object; nil sends {}) and decodes the answer's `result` into out when out
// is not nil. It returns the answer's total/next/time. For an OAuth client it
// adds `auth` and, on expired_token/invalid_token, refreshes the token once
// (shared with concurrent callers) and repeats the call once.
//
// Errors: *Error for an error answer, *TransportError for a network failure
// or an answer that is not Bitrix24 JSON (a 200 without `result` and `error`
// included), a wrapped Pacer error. Classify and IsAmbiguous tell what to do.
func (c *Client) Call(ctx context.Context, method string, params any, out any) (Meta, error) {
	env, err := c.call(ctx, method, params, nil)
	if err != nil {
		return Meta{}, err
	}
	if out != nil {
		if err := json.Unmarshal(env.Result, out); err != nil {
			// The portal answered 200: the work may be done.
			return env.meta(), &TransportError{Method: method, Err: fmt.Errorf("decode result: %w", err), Ambiguous: true}
		}
	}
	return env.meta(), nil
}

// call encodes params, adds auth and handles the one refresh. describe, when
// set, adds per-command details to the observer's CallInfo (batch).
func (c *Client) call(ctx context.Context, method string, params any, describe func(*envelope) []CommandInfo) (*envelope, error) {
	if !methodName.MatchString(method) {
		return nil, fmt.Errorf("b24: invalid method name %q", method)
	}
	body, err := encodeParams(params)
	if err != nil {
		return nil, fmt.Errorf("b24: %s: %w", method, err)
	}
	if c.oauth == nil {
		return c.send(ctx, method, body, nil, describe)
	}
	tok, gen, err := c.oauth.current(ctx, c)
	if err != nil {
		return nil, refreshFailed(method, "", err)
	}
	env, err := c.send(ctx, method, body, &tok.AccessToken, describe)
	authErr, ok := errors.AsType[*Error](err)
	if !ok || authErr.Class() != Auth {
		return env, err
	}
	tok, err = c.oauth.refresh(ctx, c, gen)
	if err != nil {
		return nil, refreshFailed(method, authErr.Code, err)
	}
	return c.send(ctx, method, body, &tok.AccessToken, describe)
}

// encodeParams returns the JSON object to send. json.Marshal writes compact
// JSON (a json.RawMessage included), so an object starts with '{' and ends
// with '}', which withAuth relies on.
func encodeParams(params any) ([]byte, error) {
	if params == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	switch {
	case string(b) == "null": // a nil map or pointer
		return []byte("{}"), nil
	case len(b) < 2 || b[0] != '{':
		return nil, fmt.Errorf("encode params: must encode to a JSON object, not %.20s", b)
	}
	return b, nil
}

// withAuth returns the object body with the member "auth": token added
// last, so that it wins over an "auth" the params may hold (PHP's
// json_decode keeps the last of duplicate keys).
func withAuth(body []byte, token string) []byte {
	a, _ := json.Marshal(token)
	out := make([]byte, 0, len(body)+len(a)+9)
	out = append(out, body[:len(body)-1]...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"auth":`...)
	out = append(out, a...)
	return append(out, '}')
}

// send makes one HTTP request: pacer, POST, decode, observer.
func (c *Client) send(ctx context.Context, method string, params []byte, auth *string, describe func(*envelope) []CommandInfo) (*envelope, error) {
	if c.pacer != nil {
		if err := c.pacer.Wait(ctx, method); err != nil {
			return nil, fmt.Errorf("b24: %s: pacer: %w", method, err)
		}
	}
	start := time.Now()
	env, err := c.roundTrip(ctx, method, params, auth)
	if c.observer != nil {
		ci := CallInfo{Method: method, Duration: time.Since(start), Time: envTime(env), Err: err}
		if describe != nil && err == nil {
			ci.Commands = describe(env)
		}
		c.observer(ci)
	}
	return env, err
}

func envTime(env *envelope) Time {
	if env == nil {
		return Time{}
	}
	return env.meta().Time
}

// roundTrip sends the request and turns the answer into an envelope or an
// error. It is the one place where answers are checked.
func (c *Client) roundTrip(ctx context.Context, method string, params []byte, auth *string) (*envelope, error) {
	body := params
	if auth != nil {
		body = withAuth(params, *auth)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// wrote is set once the request has been handed to the network: from
	// then on a failure may come after the portal did the work. Set even
	// when the write itself failed part-way, to stay on the safe side.
	// Atomic: on a timeout the transport's write loop may still be running
	// when Do returns.
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cred.base+method, bytes.NewReader(body))
	if err != nil {
		return nil, &TransportError{Method: method, Err: redactError(err, c.secrets()...)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "b24queue")

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &TransportError{Method: method, Err: redactError(err, c.secrets()...), Ambiguous: wrote.Load()}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return nil, c.portalMoved(method, resp)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &TransportError{Method: method, Ambiguous: true,
			Err: fmt.Errorf("HTTP %d: read answer: %w", resp.StatusCode, redactError(err, c.secrets()...))}
	}
	return c.decodeAnswer(method, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
}
