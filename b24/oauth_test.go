package b24

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testClientID     = "local.65a1b2c3d4e5f6.12345678"
	testClientSecret = "CliEntSecr3tValue"
)

// memStore is an in-memory TokenStore that counts its calls.
type memStore struct {
	mu           sync.Mutex
	tokens       map[string]Token
	loads, saves int
	saved        []Token
}

func (s *memStore) Load(_ context.Context, key string) (Token, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	t, ok := s.tokens[key]
	return t, ok, nil
}

func (s *memStore) Save(_ context.Context, key string, t Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = map[string]Token{}
	}
	s.saves++
	s.saved = append(s.saved, t)
	s.tokens[key] = t
	return nil
}

// oauthPortal simulates a portal that accepts one access token at a time and
// the OAuth server that rotates the pair: refresh token "refresh-N" yields
// "access-N+1"/"refresh-N+1".
type oauthPortal struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	valid     string // the access token the portal accepts
	gen       int
	refreshes int
	calls     int
	auths     []string
	// refreshGate, if set, is waited on by the token endpoint, so tests can
	// make callers pile up behind one refresh.
	refreshGate chan struct{}
	tokenErr    string // if set, the token endpoint answers this error code
}

func newOAuthPortal(t *testing.T) *oauthPortal {
	p := &oauthPortal{t: t, valid: "access-1", gen: 1}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rest/profile", p.serveREST)
	mux.HandleFunc("GET /oauth/token/", p.serveToken)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *oauthPortal) serveREST(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := jsonDecode(r, &body); err != nil {
		p.t.Errorf("REST body: %v", err)
	}
	auth, _ := body["auth"].(string)
	p.mu.Lock()
	p.calls++
	p.auths = append(p.auths, auth)
	valid := p.valid
	p.mu.Unlock()
	if body["x"] != "y" {
		p.t.Errorf("params lost: body %v", body)
	}
	switch {
	case auth == valid:
		reply(w, 200, `{"result":{"ID":"1"}}`)
	case strings.HasPrefix(auth, "access-"):
		reply(w, 401, `{"error":"expired_token","error_description":"The access token provided has expired."}`)
	default:
		reply(w, 401, `{"error":"invalid_token","error_description":"The access token provided is invalid."}`)
	}
}

func (p *oauthPortal) serveToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("grant_type") != "refresh_token" || q.Get("client_id") != testClientID || q.Get("client_secret") != testClientSecret {
		p.t.Errorf("token request query %v", q)
	}
	if p.refreshGate != nil {
		<-p.refreshGate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshes++
	if p.tokenErr != "" {
		reply(w, 400, `{"error":"`+p.tokenErr+`","error_description":"The refresh token is invalid."}`)
		return
	}
	if q.Get("refresh_token") != fmt.Sprintf("refresh-%d", p.gen) {
		reply(w, 400, `{"error":"invalid_grant","error_description":"The refresh token is invalid."}`)
		return
	}
	p.gen++
	p.valid = fmt.Sprintf("access-%d", p.gen)
	fmt.Fprintf(w, `{"access_token":%q,"expires":1736930911,"expires_in":3600,"scope":"app","domain":"oauth.bitrix.info","member_id":"abc","status":"L","refresh_token":"refresh-%d"}`, p.valid, p.gen)
}

// expire makes the portal accept only a newer token than the current one,
// as if the current access token had expired.
func (p *oauthPortal) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.valid = "access-none"
}

func (p *oauthPortal) client(t *testing.T, tok Token, opts ...Option) *Client {
	t.Helper()
	c, err := NewOAuth(OAuthConfig{
		PortalURL:     p.srv.URL,
		ClientID:      testClientID,
		ClientSecret:  testClientSecret,
		Token:         tok,
		TokenEndpoint: p.srv.URL + "/oauth/token/",
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *oauthPortal) counts() (calls, refreshes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, p.refreshes
}

func TestOAuthSendsAuthAndRefreshesOnExpiry(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	store := &memStore{}
	var observed atomic.Int32
	c := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1"},
		WithTokenStore(store), WithObserver(func(CallInfo) { observed.Add(1) }))

	if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
		t.Fatal(err)
	}
	p.expire() // portal now rejects access-1 with expired_token
	var out map[string]string
	if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, &out); err != nil {
		t.Fatal(err)
	}
	if out["ID"] != "1" {
		t.Errorf("result %v", out)
	}
	calls, refreshes := p.counts()
	if calls != 3 || refreshes != 1 {
		t.Errorf("calls %d refreshes %d, want 3 and 1", calls, refreshes)
	}
	if want := []string{"access-1", "access-1", "access-2"}; fmt.Sprint(p.auths) != fmt.Sprint(want) {
		t.Errorf("auth sent %v, want %v", p.auths, want)
	}
	if observed.Load() != 3 {
		t.Errorf("observer told %d times, want 3 (refresh excluded)", observed.Load())
	}
	if store.saves != 1 || store.saved[0].AccessToken != "access-2" || store.saved[0].RefreshToken != "refresh-2" {
		t.Errorf("store saves %d %v", store.saves, store.saved)
	}
	if exp := store.saved[0].ExpiresAt; time.Until(exp) < 59*time.Minute || time.Until(exp) > time.Hour {
		t.Errorf("ExpiresAt %v, want about now+3600s", exp)
	}
	if got := c.Token(); got.AccessToken != "access-2" {
		t.Errorf("Token() = %v", got.AccessToken)
	}
}

func TestOAuthConcurrentRefreshHappensOnce(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	p.valid = "access-none" // access-1 is expired on the portal
	p.refreshGate = make(chan struct{})
	store := &memStore{}
	c := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, WithTokenStore(store))

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil)
			errs <- err
		})
	}
	// Hold the refresh until every caller has failed with the old token,
	// so they all pile up behind the one refresh.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if calls, _ := p.counts(); calls == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("callers did not all fail with the old token")
		}
		time.Sleep(time.Millisecond)
	}
	close(p.refreshGate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("call failed: %v", err)
		}
	}
	calls, refreshes := p.counts()
	if refreshes != 1 {
		t.Errorf("%d refresh requests, want 1", refreshes)
	}
	if calls != 2*n {
		t.Errorf("%d REST calls, want %d (each caller retries once)", calls, 2*n)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.saves != 1 || store.saved[0].AccessToken != "access-2" || store.saved[0].RefreshToken != "refresh-2" {
		t.Errorf("store saves %d %v, want one save of the new pair", store.saves, store.saved)
	}
}

// TestOAuthRefusedRefreshIsPortalUnavailable: the OAuth server refusing
// the refresh token is about the credential, never the item: the call's
// error carries the OAuth code and classifies as PortalUnavailable.
func TestOAuthRefusedRefreshIsPortalUnavailable(t *testing.T) {
	t.Parallel()
	for _, code := range []string{CodeInvalidGrant, CodeInvalidClient, CodeWrongClient} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			p := newOAuthPortal(t)
			p.valid = "access-none"
			p.tokenErr = code
			c := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1"})
			_, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil)
			if Classify(err) != PortalUnavailable || IsAmbiguous(err) {
				t.Fatalf("err = %v: Classify %v, ambiguous %v; want portal_unavailable, not ambiguous", err, Classify(err), IsAmbiguous(err))
			}
			apiErr, ok := errors.AsType[*Error](err)
			if !ok || apiErr.Code != code {
				t.Errorf("error %v does not carry the OAuth code %s", err, code)
			}
			for _, sec := range []string{testClientSecret, "refresh-1", "access-1"} {
				if strings.Contains(err.Error(), sec) {
					t.Errorf("error %q leaks %s", err, sec)
				}
			}
			if calls, refreshes := p.counts(); calls != 1 || refreshes != 1 {
				t.Errorf("calls %d refreshes %d, want 1 and 1 (no retry without a new token)", calls, refreshes)
			}
		})
	}
}

// TestOAuthRefreshFailureClasses: a refresh the OAuth server could not
// answer (5xx, network) is Transient; any other answer of the OAuth server
// is about the credential (PortalUnavailable). Never ambiguous: the call
// itself was refused with expired_token.
func TestOAuthRefreshFailureClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		class  Class
	}{
		{"5xx html", 502, "<html>bad gateway</html>", Transient},
		{"5xx with a code", 503, `{"error":"temporarily_unavailable","error_description":"try later"}`, Transient},
		{"other 4xx code", 400, `{"error":"invalid_request","error_description":"bad request"}`, PortalUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newOAuthPortal(t)
			p.valid = "access-none"
			tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reply(w, tt.status, tt.body) }))
			t.Cleanup(tokens.Close)
			c, err := NewOAuth(OAuthConfig{PortalURL: p.srv.URL, ClientID: testClientID, ClientSecret: testClientSecret,
				Token: Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, TokenEndpoint: tokens.URL + "/oauth/token/"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil)
			if Classify(err) != tt.class || IsAmbiguous(err) {
				t.Errorf("err = %v: Classify %v, ambiguous %v; want %v, not ambiguous", err, Classify(err), IsAmbiguous(err), tt.class)
			}
		})
	}
}

func TestOAuthRetriesOnlyOnce(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	mux := http.NewServeMux()
	var calls atomic.Int32
	mux.HandleFunc("/rest/profile", func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		reply(w, 401, `{"error":"expired_token","error_description":"The access token provided has expired."}`)
	})
	portal := httptest.NewServer(mux)
	t.Cleanup(portal.Close)
	c, err := NewOAuth(OAuthConfig{PortalURL: portal.URL + "/", ClientID: testClientID, ClientSecret: testClientSecret,
		Token: Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, TokenEndpoint: p.srv.URL + "/oauth/token/"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(t.Context(), "profile", nil, nil)
	if Classify(err) != Auth {
		t.Fatalf("err = %v, want auth", err)
	}
	if _, refreshes := p.counts(); calls.Load() != 2 || refreshes != 1 {
		t.Errorf("calls %d refreshes %d, want 2 and 1", calls.Load(), refreshes)
	}
}

func TestOAuthTokenStoreLoad(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name       string
		cfg        Token
		stored     *Token
		wantAuth   string
		wantRefres int
	}{
		{"stored newer wins", Token{AccessToken: "access-0", RefreshToken: "refresh-0", ExpiresAt: now.Add(time.Minute)},
			&Token{AccessToken: "access-1", RefreshToken: "refresh-1", ExpiresAt: now.Add(time.Hour)}, "access-1", 0},
		{"config newer wins", Token{AccessToken: "access-1", RefreshToken: "refresh-1", ExpiresAt: now.Add(time.Hour)},
			&Token{AccessToken: "access-0", RefreshToken: "refresh-0", ExpiresAt: now.Add(time.Minute)}, "access-1", 0},
		{"nothing stored", Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, nil, "access-1", 0},
		{"only stored", Token{}, &Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, "access-1", 0},
		{"refresh token only", Token{RefreshToken: "refresh-1"}, nil, "access-2", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newOAuthPortal(t)
			p.valid = tt.wantAuth
			store := &memStore{}
			if tt.stored != nil {
				store.tokens = map[string]Token{"shared-key": *tt.stored}
			}
			c, err := NewOAuth(OAuthConfig{PortalURL: p.srv.URL, ClientID: testClientID, ClientSecret: testClientSecret,
				Token: tt.cfg, TokenEndpoint: p.srv.URL + "/oauth/token/", StoreKey: "shared-key"}, WithTokenStore(store))
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if p.auths[0] != tt.wantAuth {
				t.Errorf("first call sent %q, want %q", p.auths[0], tt.wantAuth)
			}
			if _, r := p.counts(); r != tt.wantRefres {
				t.Errorf("%d refreshes, want %d", r, tt.wantRefres)
			}
			if store.loads < 1 {
				t.Error("store not consulted")
			}
		})
	}
}

// TestOAuthAdoptsPairRefreshedByAnotherProcess: the refresh token in memory
// was spent by another worker, which saved the new pair; this client must
// pick that pair up instead of failing with invalid_grant.
func TestOAuthAdoptsPairRefreshedByAnotherProcess(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	store := &memStore{}
	a := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1", ExpiresAt: time.Now().Add(time.Hour)}, WithTokenStore(store))
	b := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1", ExpiresAt: time.Now().Add(time.Hour)}, WithTokenStore(store))
	for _, c := range []*Client{a, b} {
		if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	p.expire()
	if _, err := a.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
		t.Fatalf("second process: %v", err)
	}
	if _, r := p.counts(); r != 1 {
		t.Errorf("%d refreshes, want 1", r)
	}
	if got := b.Token().AccessToken; got != "access-2" {
		t.Errorf("b uses %q, want access-2", got)
	}
}

func TestNewOAuthValidation(t *testing.T) {
	t.Parallel()
	good := OAuthConfig{PortalURL: "https://example.bitrix24.ru", ClientID: testClientID, ClientSecret: testClientSecret,
		Token: Token{AccessToken: "a", RefreshToken: "r"}}
	tests := []struct {
		name   string
		mod    func(*OAuthConfig)
		opts   []Option
		errHas string // "" = must succeed
	}{
		{"ok", func(*OAuthConfig) {}, nil, ""},
		{"loopback http", func(c *OAuthConfig) {
			c.PortalURL = "http://127.0.0.1:1/"
			c.TokenEndpoint = "http://localhost:2/oauth/token/"
		}, nil, ""},
		{"http portal", func(c *OAuthConfig) { c.PortalURL = "http://example.bitrix24.ru/" }, nil, "PortalURL"},
		{"http endpoint", func(c *OAuthConfig) { c.TokenEndpoint = "http://oauth.example.com/token/" }, nil, "TokenEndpoint"},
		{"no client id", func(c *OAuthConfig) { c.ClientID = "" }, nil, "ClientID"},
		{"no secret", func(c *OAuthConfig) { c.ClientSecret = "" }, nil, "ClientSecret"},
		{"no token", func(c *OAuthConfig) { c.Token = Token{} }, nil, "Token"},
		{"no token but store", func(c *OAuthConfig) { c.Token = Token{} }, []Option{WithTokenStore(&memStore{})}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tt.mod(&cfg)
			c, err := NewOAuth(cfg, tt.opts...)
			if tt.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.oauth.storeKey == "" || !strings.HasSuffix(c.cred.base, "/rest/") {
					t.Errorf("storeKey %q base %q", c.oauth.storeKey, c.cred.base)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want mention of %s", err, tt.errHas)
			}
			if strings.Contains(err.Error(), testClientSecret) {
				t.Errorf("error leaks the client secret: %v", err)
			}
		})
	}
}

func TestTokenAndConfigFormattingHidesSecrets(t *testing.T) {
	t.Parallel()
	tok := Token{AccessToken: "AccessT0kenXYZ123", RefreshToken: "RefreshT0kenXYZ456", RefusedCode: CodeInvalidGrant, RefusedDescription: "refused"}
	cfg := OAuthConfig{PortalURL: "https://p/", ClientID: "id", ClientSecret: testClientSecret, Token: tok}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{tok, &tok, cfg, &cfg} {
			s := fmt.Sprintf(verb, v)
			for _, sec := range []string{tok.AccessToken, tok.RefreshToken, testClientSecret} {
				if strings.Contains(s, sec) {
					t.Errorf("%s of %T leaks: %s", verb, v, s)
				}
			}
			if !strings.Contains(s, CodeInvalidGrant) {
				t.Errorf("%s of %T does not show the refusal: %s", verb, v, s)
			}
		}
	}
}

// tokenRequests is how many requests reached the token endpoint.
func (p *oauthPortal) tokenRequests() int {
	_, r := p.counts()
	return r
}

// TestOAuthRefusalIsRememberedFleetWide: the OAuth server blocks apps that
// refresh too often, so a refused refresh token is asked for once, fleet-wide:
// the refusing client saves the pair marked refused; a client that loads it
// (b: on its first call; c: when its own refresh comes) fails at once.
func TestOAuthRefusalIsRememberedFleetWide(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	store := &memStore{}
	tok := Token{AccessToken: "access-1", RefreshToken: "refresh-1"}
	c := p.client(t, tok, WithTokenStore(store))
	if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
		t.Fatal(err) // c has loaded the (empty) store and holds a working pair
	}
	p.expire()
	p.mu.Lock()
	p.tokenErr = CodeInvalidGrant
	p.mu.Unlock()

	a := p.client(t, tok, WithTokenStore(store))
	b := p.client(t, tok, WithTokenStore(store))
	for i, cl := range []*Client{a, b, c, a, b, c} {
		_, err := cl.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil)
		if Classify(err) != PortalUnavailable || IsAmbiguous(err) {
			t.Fatalf("call %d: err = %v: Classify %v, ambiguous %v; want portal_unavailable", i, err, Classify(err), IsAmbiguous(err))
		}
		if e, ok := errors.AsType[*Error](err); !ok || e.Code != CodeInvalidGrant || strings.Contains(err.Error(), "refresh-1") {
			t.Errorf("call %d: err = %v, want the OAuth code and no secret", i, err)
		}
	}
	if n := p.tokenRequests(); n != 1 {
		t.Errorf("%d requests reached the token endpoint, want 1", n)
	}
	if calls, _ := p.counts(); calls != 3 {
		t.Errorf("%d REST calls, want 3 (c's first, a's expired, c's expired)", calls)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	saved := store.tokens[p.srvHost()]
	if saved.RefreshToken != "refresh-1" || saved.RefusedCode != CodeInvalidGrant || !saved.Refused() {
		t.Errorf("stored %v, want refresh-1 marked refused with invalid_grant", saved)
	}
}

func (p *oauthPortal) srvHost() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// TestOAuthRefusalWithoutStore: without a TokenStore the refusal is still
// remembered in the process.
func TestOAuthRefusalWithoutStore(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	p.valid = "access-none"
	p.tokenErr = CodeWrongClient
	c := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1"})
	for range 3 {
		if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); Classify(err) != PortalUnavailable {
			t.Fatalf("err = %v, want portal_unavailable", err)
		}
	}
	if n := p.tokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if !c.Token().Refused() || c.Token().RefusedCode != CodeWrongClient {
		t.Errorf("Token() = %v, want the refusal", c.Token())
	}
}

// TestOAuthTransientRefreshFailureIsNotRemembered: only a refusal is
// remembered; a refresh the OAuth server did not answer is tried again.
func TestOAuthTransientRefreshFailureIsNotRemembered(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	p.valid = "access-none"
	var requests atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		reply(w, 502, "<html>bad gateway</html>")
	}))
	t.Cleanup(tokens.Close)
	store := &memStore{}
	c, err := NewOAuth(OAuthConfig{PortalURL: p.srv.URL, ClientID: testClientID, ClientSecret: testClientSecret,
		Token: Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, TokenEndpoint: tokens.URL + "/oauth/token/"}, WithTokenStore(store))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); Classify(err) != Transient {
			t.Fatalf("err = %v, want transient", err)
		}
	}
	if requests.Load() != 2 || store.saves != 0 || c.Token().Refused() {
		t.Errorf("%d token requests, %d saves, token %v; want 2, 0, not refused", requests.Load(), store.saves, c.Token())
	}
}

// TestOAuthNewPairClearsRefusal: a pair with another refresh token (an
// operator registered the app again) replaces a refused one, whether it
// comes through the TokenStore or through OAuthConfig.Token; a configured
// pair with the refused refresh token does not.
func TestOAuthNewPairClearsRefusal(t *testing.T) {
	t.Parallel()
	refused := Token{AccessToken: "access-1", RefreshToken: "refresh-1", RefusedCode: CodeInvalidGrant, RefusedDescription: "The refresh token is invalid."}

	// setup returns a portal accepting valid and a store holding the refused pair.
	setup := func(t *testing.T, valid string) (*oauthPortal, *memStore) {
		p := newOAuthPortal(t)
		p.valid = valid
		store := &memStore{tokens: map[string]Token{}}
		store.tokens[p.srvHost()] = refused
		return p, store
	}

	t.Run("through the store", func(t *testing.T) {
		t.Parallel()
		p, store := setup(t, "access-5")
		c := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, WithTokenStore(store))
		if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); Classify(err) != PortalUnavailable {
			t.Fatalf("err = %v, want portal_unavailable", err)
		}
		store.mu.Lock()
		store.tokens[p.srvHost()] = Token{AccessToken: "access-5", RefreshToken: "refresh-5"}
		store.mu.Unlock()
		if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
			t.Fatalf("after a new pair was stored: %v", err)
		}
		if calls, r := p.counts(); calls != 1 || r != 0 {
			t.Errorf("calls %d token requests %d, want 1 and 0", calls, r)
		}
	})

	t.Run("through the configuration", func(t *testing.T) {
		t.Parallel()
		p, store := setup(t, "access-9")
		same := p.client(t, Token{RefreshToken: "refresh-1"}, WithTokenStore(store))
		if _, err := same.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); Classify(err) != PortalUnavailable {
			t.Errorf("configured pair with the refused refresh token: err = %v, want portal_unavailable", err)
		}
		fresh := p.client(t, Token{AccessToken: "access-9", RefreshToken: "refresh-9"}, WithTokenStore(store))
		if _, err := fresh.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
			t.Errorf("configured new pair: %v", err)
		}
		if calls, r := p.counts(); calls != 1 || r != 0 {
			t.Errorf("calls %d token requests %d, want 1 and 0", calls, r)
		}
	})
}

// TestOAuthRefusalAfterALostRace: two processes refreshed the same token;
// the loser's refusal must not overwrite the winner's new pair, which it
// adopts instead.
func TestOAuthRefusalAfterALostRace(t *testing.T) {
	t.Parallel()
	p := newOAuthPortal(t)
	p.valid = "access-none"
	store := &memStore{}
	c := p.client(t, Token{AccessToken: "access-1", RefreshToken: "refresh-1"}, WithTokenStore(store))
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// The winner's refresh spent refresh-1 and its pair lands in the
		// store while this answer is on its way.
		_ = store.Save(context.Background(), p.srvHost(), Token{AccessToken: "access-2", RefreshToken: "refresh-2", ExpiresAt: time.Now().Add(time.Hour)})
		p.mu.Lock()
		p.valid = "access-2"
		p.mu.Unlock()
		reply(w, 400, `{"error":"invalid_grant","error_description":"The refresh token is invalid."}`)
	}))
	t.Cleanup(tokens.Close)
	c.oauth.endpoint = tokens.URL + "/oauth/token/"
	if _, err := c.Call(t.Context(), "profile", map[string]any{"x": "y"}, nil); err != nil {
		t.Fatalf("err = %v, want the winner's pair adopted", err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if got := store.tokens[p.srvHost()]; got.RefreshToken != "refresh-2" || got.Refused() {
		t.Errorf("stored %v, want the winner's pair, not refused", got)
	}
}
