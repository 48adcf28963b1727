package b24

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// OAuthConfig configures an OAuth (local or market application) client.
type OAuthConfig struct {
	PortalURL    string // https://example.bitrix24.ru/ (calls go to PortalURL + "rest/" + method)
	ClientID     string // application client_id, required
	ClientSecret string // application client_secret, required
	// Token is the initial pair; the pair in the TokenStore wins when it is
	// newer, or carries a refusal of the same refresh token, but not when it
	// is refused with another refresh token (this Token is then tried: an
	// operator's new pair). It may be empty when a TokenStore is set.
	Token         Token
	TokenEndpoint string // default https://oauth.bitrix.info/oauth/token/
	StoreKey      string // key for the TokenStore, default the portal host
}

// Format prints the configuration with ClientSecret and the tokens replaced
// by "***", for every verb.
func (c OAuthConfig) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "b24.OAuthConfig{PortalURL:%s ClientID:%s ClientSecret:*** Token:%v TokenEndpoint:%s StoreKey:%s}",
		c.PortalURL, c.ClientID, c.Token, c.TokenEndpoint, c.StoreKey)
}

// oauthState is the token of one OAuth client. gen counts token changes: a
// caller remembers the gen it sent with and refreshes only if no newer token
// arrived meanwhile, so 20 callers failing with the same token cause one
// refresh.
type oauthState struct {
	clientID, clientSecret string
	endpoint               string
	storeKey               string

	mu       sync.Mutex
	tok      Token
	gen      uint64
	loaded   bool          // the TokenStore was consulted
	inflight chan struct{} // closed when the running refresh ends; nil if none
	lastErr  error         // outcome of the last refresh
	old      []string      // earlier tokens, still redacted from error texts
}

// NewOAuth returns a client that calls PortalURL + "rest/" + method with the
// access token as `auth`, refreshing it once on expired_token/invalid_token.
// PortalURL and TokenEndpoint must be https:// (http:// for loopback hosts).
// It reports every configuration problem at once; errors hold no secret.
func NewOAuth(cfg OAuthConfig, opts ...Option) (*Client, error) {
	var errs []error
	o := applyOptions(opts)
	portal, err := parseBaseURL("PortalURL", cfg.PortalURL, o.httpHosts)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.TokenEndpoint == "" {
		cfg.TokenEndpoint = DefaultTokenEndpoint
	}
	endpoint, err := parseBaseURL("TokenEndpoint", cfg.TokenEndpoint, o.httpHosts)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("b24: OAuth ClientID is required"))
	}
	if cfg.ClientSecret == "" {
		errs = append(errs, errors.New("b24: OAuth ClientSecret is required"))
	}
	c := newClient(o)
	if c.store == nil && cfg.Token.AccessToken == "" && cfg.Token.RefreshToken == "" {
		errs = append(errs, errors.New("b24: OAuth Token is required without a TokenStore"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if !strings.HasSuffix(portal.Path, "/") {
		portal.Path += "/"
	}
	key := cfg.StoreKey
	if key == "" {
		key = portal.Host
	}
	c.cred = &credentials{base: portal.String() + "rest/", display: portal.String()}
	c.oauth = &oauthState{
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		endpoint:     endpoint.String(),
		storeKey:     key,
		tok:          cfg.Token,
		loaded:       c.store == nil,
	}
	return c, nil
}

// Token returns the client's current token pair (for an OAuth client; the
// zero Token for a webhook client). It does not consult the TokenStore.
func (c *Client) Token() Token {
	if c.oauth == nil {
		return Token{}
	}
	c.oauth.mu.Lock()
	defer c.oauth.mu.Unlock()
	return c.oauth.tok
}

func (o *oauthState) secrets() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string{o.clientSecret, o.tok.AccessToken, o.tok.RefreshToken}, o.old...)
}

// setLocked installs t as the current token. o.mu must be held.
func (o *oauthState) setLocked(t Token) {
	if t.RefreshToken == "" { // the server may omit an unchanged refresh token
		t.RefreshToken = o.tok.RefreshToken
	}
	o.old = append(o.old, o.tok.AccessToken, o.tok.RefreshToken)
	if len(o.old) > 8 {
		o.old = o.old[len(o.old)-8:]
	}
	o.tok = t
	o.gen++
}

// current returns the token to send and its generation, loading the
// TokenStore on first use (and on every call while the pair held is
// refused, to find a new pair) and refreshing first when there is no access
// token or it is known to be expired. A refused pair fails at once with the
// refusal. A failed refresh is returned as it is (see refreshFailed).
func (o *oauthState) current(ctx context.Context, c *Client) (Token, uint64, error) {
	o.mu.Lock()
	if c.store != nil && (!o.loaded || o.tok.Refused()) {
		// While refused, a store that cannot be read leaves the refusal.
		if err := o.loadLocked(ctx, c); err != nil && !o.tok.Refused() {
			o.mu.Unlock()
			return Token{}, 0, err
		}
	}
	tok, gen := o.tok, o.gen
	o.mu.Unlock()
	if tok.Refused() {
		return Token{}, 0, refusedError(tok)
	}
	if tok.AccessToken == "" || (!tok.ExpiresAt.IsZero() && !time.Now().Before(tok.ExpiresAt)) {
		if _, err := o.refresh(ctx, c, gen); err != nil {
			return Token{}, 0, err
		}
		o.mu.Lock()
		tok, gen = o.tok, o.gen
		o.mu.Unlock()
	}
	return tok, gen, nil
}

// loadLocked loads the TokenStore's pair and keeps what pick says. o.mu
// must be held.
func (o *oauthState) loadLocked(ctx context.Context, c *Client) error {
	stored, ok, err := c.store.Load(ctx, o.storeKey)
	if err != nil {
		return fmt.Errorf("load token: %s", Redact(err.Error(), o.clientSecret, o.tok.AccessToken, o.tok.RefreshToken))
	}
	o.loaded = true
	if ok {
		o.keepLocked(pick(o.tok, stored))
	}
	return nil
}

// keepLocked installs t unless it is the pair held already. o.mu must be
// held.
func (o *oauthState) keepLocked(t Token) {
	if !same(t, o.tok) {
		o.setLocked(t)
	}
}

// usable returns t, or the refusal when t is refused.
func usable(t Token) (Token, error) {
	if t.Refused() {
		return Token{}, refusedError(t)
	}
	return t, nil
}

// refresh replaces the token of generation failedGen, once: if a newer token
// exists it is returned; if a refresh is running the caller waits for it;
// otherwise this caller refreshes. The refresh runs detached from the
// caller's cancellation (bounded by the client timeout), because abandoning a
// refresh whose answer is lost would burn the single-use refresh token. A
// refused pair is never refreshed: its refusal is returned.
func (o *oauthState) refresh(ctx context.Context, c *Client, failedGen uint64) (Token, error) {
	o.mu.Lock()
	if o.gen > failedGen || o.tok.Refused() {
		t := o.tok
		o.mu.Unlock()
		return usable(t)
	}
	if ch := o.inflight; ch != nil {
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Token{}, ctx.Err()
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.gen > failedGen {
			return usable(o.tok)
		}
		return Token{}, o.lastErr
	}
	ch := make(chan struct{})
	o.inflight = ch
	cur := o.tok
	o.mu.Unlock()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	t, save, err := o.obtain(rctx, c, cur)
	if save && c.store != nil {
		if serr := c.store.Save(rctx, o.storeKey, t); serr != nil {
			// The pair (or its refusal) holds in this process; another
			// process that loads the old pair asks the OAuth server itself.
			c.logger.Warn("b24: saving the OAuth token pair failed", "portal", c.cred.display, "refused", t.Refused(),
				"err", Redact(serr.Error(), o.clientSecret, t.AccessToken, t.RefreshToken, cur.RefreshToken))
		}
	}

	o.mu.Lock()
	if !t.empty() {
		o.keepLocked(t)
		t = o.tok
	}
	o.lastErr = err
	o.inflight = nil
	close(ch)
	o.mu.Unlock()
	if err != nil {
		return Token{}, err
	}
	return t, nil
}

// obtain gets what follows cur: the TokenStore's pair when it is newer
// (another process refreshed already, and cur's refresh token is spent) or
// refuses cur's refresh token (another process was refused: do not ask
// again), else an answer of the token endpoint. It returns the pair to hold
// from now on (empty: keep cur), whether it is new here and must be saved
// (refreshed, or refused here), and the refresh's error.
func (o *oauthState) obtain(ctx context.Context, c *Client, cur Token) (Token, bool, error) {
	if stored, ok := o.load(ctx, c); ok {
		switch p := pick(cur, stored); {
		case p.Refused():
			return p, false, refusedError(p)
		case p.AccessToken != cur.AccessToken:
			return p, false, nil
		}
	}
	if cur.RefreshToken == "" {
		return Token{}, false, errors.New("no refresh token")
	}
	t, err := o.requestToken(ctx, c, cur.RefreshToken)
	if err == nil {
		return t, true, nil
	}
	e, refused := asRefusal(err)
	if !refused {
		return Token{}, false, err
	}
	// Two processes may refresh cur at once: the OAuth server answers the
	// second with invalid_grant, and the first saves its new pair. Adopt
	// that pair rather than publish a refusal over it.
	if stored, ok := o.load(ctx, c); ok && !stored.Refused() && stored.RefreshToken != cur.RefreshToken {
		return stored, false, nil
	}
	return cur.refused(e), true, err
}

// load returns the TokenStore's pair; ok is false without a store, without
// a pair, or when the store cannot be read (the caller goes on without).
func (o *oauthState) load(ctx context.Context, c *Client) (Token, bool) {
	if c.store == nil {
		return Token{}, false
	}
	t, ok, err := c.store.Load(ctx, o.storeKey)
	return t, ok && err == nil
}

// requestToken asks the OAuth server for a new pair:
// GET endpoint?grant_type=refresh_token&client_id=..&client_secret=..&refresh_token=..
func (o *oauthState) requestToken(ctx context.Context, c *Client, refreshToken string) (Token, error) {
	const method = methodOAuthToken
	secrets := []string{o.clientSecret, refreshToken}
	q := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {o.clientID},
		"client_secret": {o.clientSecret},
		"refresh_token": {refreshToken},
	}
	sep := "?"
	if strings.Contains(o.endpoint, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.endpoint+sep+q.Encode(), nil)
	if err != nil {
		return Token{}, &TransportError{Method: method, Err: redactError(err, secrets...)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "b24queue")
	resp, err := c.hc.Do(req)
	if err != nil {
		return Token{}, &TransportError{Method: method, Err: redactError(err, secrets...), Ambiguous: true}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Token{}, &TransportError{Method: method, Err: redactError(err, secrets...), Ambiguous: true}
	}
	var ans struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		ExpiresIn    flexInt         `json:"expires_in"`
		Error        json.RawMessage `json:"error"`
		Desc         string          `json:"error_description"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return Token{}, &TransportError{Method: method, Ambiguous: true,
			Err: fmt.Errorf("HTTP %d: answer is not JSON: %s", resp.StatusCode, snippet(raw, secrets))}
	}
	if code := errorCode(ans.Error); code != "" {
		return Token{}, &Error{Code: Redact(code, secrets...), Description: Redact(ans.Desc, secrets...), HTTPStatus: resp.StatusCode, Method: method}
	}
	if resp.StatusCode != http.StatusOK || ans.AccessToken == "" {
		return Token{}, &TransportError{Method: method, Ambiguous: true,
			Err: fmt.Errorf("HTTP %d: answer without access_token", resp.StatusCode)}
	}
	t := Token{AccessToken: ans.AccessToken, RefreshToken: ans.RefreshToken}
	if ans.ExpiresIn > 0 {
		t.ExpiresAt = time.Now().Add(time.Duration(ans.ExpiresIn) * time.Second)
	}
	return t, nil
}

// refreshFailed is the error of a call of method whose token could not be
// had: a *TransportError that is not ambiguous (the call was not sent, or
// the portal refused it with the code after), wrapping err, the failure of
// the refresh (or of loading the TokenStore). When the OAuth server answered,
// err holds its *Error, so Classify sees its code: PortalUnavailable for a
// refused refresh token, Transient for a 5xx; a refresh that did not reach
// the OAuth server is Transient. err's text holds no secret: requestToken
// and the TokenStore load redact theirs.
func refreshFailed(method, after string, err error) error {
	if after != "" {
		err = fmt.Errorf("token refresh after %s failed: %w", after, err)
	} else {
		err = fmt.Errorf("token: %w", err)
	}
	return &TransportError{Method: method, Err: err}
}
