package b24test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestConditions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		set    func(p *Portal, on bool)
		status int
		code   string
		desc   string
		oauth  bool // OAuth calls answer it too
	}{
		{"webhook revoked", (*Portal).SetWebhookRevoked, 401, "INVALID_CREDENTIALS", "Invalid request credentials", false},
		{"portal deleted", (*Portal).SetDeleted, 403, "PORTAL_DELETED", "Portal was deleted", true},
		{"overload", (*Portal).SetOverload, 503, "OVERLOAD_LIMIT", "REST API is blocked due to overload", true},
		{"payment required", (*Portal).SetPaymentRequired, 402, "PAYMENT_REQUIRED", "Subscription has been ended", true},
		{"access denied", (*Portal).SetAccessDenied, 403, "ACCESS_DENIED", "Access denied", true},
		{"insufficient scope", (*Portal).SetInsufficientScope, 401, "insufficient_scope", "The request requires higher privileges than provided by the webhook token", true},
		{"user access", (*Portal).SetUserAccessError, 401, "user_access_error", "The user does not have access to the application", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := setup(t, Config{OAuth: OAuthConfig{AccessToken: "tok"}})
			add := map[string]any{"NAME": "Sales", "PARENT": 1}
			tt.set(s.Portal, true)
			a := call(t, s, "department.add", add)
			wantError(t, a, tt.status, tt.code)
			if a.desc() != tt.desc {
				t.Errorf("description %q, want %q", a.desc(), tt.desc)
			}
			// A batch is refused as a whole.
			wantError(t, call(t, s, "batch", map[string]any{"cmd": []string{"department.get"}}), tt.status, tt.code)
			oa := postJSON(t, s.OAuthPortalURL()+"rest/department.add", map[string]any{"auth": "tok", "NAME": "Sales", "PARENT": 1})
			if tt.oauth != (oa.code() == tt.code) {
				t.Errorf("OAuth call answered %d %s; refused too: %v", oa.status, oa.raw, tt.oauth)
			}
			if got := len(s.Departments()); got != 1+boolInt(!tt.oauth) {
				t.Errorf("%d departments while refused", got)
			}
			tt.set(s.Portal, false)
			wantOK(t, call(t, s, "department.add", add))
			if st := s.Stats(); st.Calls["department.add"][tt.code] < 1 {
				t.Errorf("refusals not counted: %v", st.Calls)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOrderOfChecks: the query bucket first, then a moved portal, then the
// portal's state, then authentication, then access.
func TestOrderOfChecks(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Burst: 1, Rate: 1e-9, WebhookSecret: "right"})
	s.SetWebhookRevoked(true)
	wantError(t, call(t, s, "department.get", nil), 401, "INVALID_CREDENTIALS")
	// Over budget: 503 although the webhook is revoked.
	wantError(t, call(t, s, "department.get", nil), 503, "QUERY_LIMIT_EXCEEDED")

	s2, _ := setup(t, Config{WebhookSecret: "right"})
	wrong := s2.URL + "/rest/1/wrong/department.get"
	s2.SetAccessDenied(true)
	wantError(t, postJSON(t, wrong, nil), 401, "NO_AUTH_FOUND") // auth before access
	s2.SetDeleted(true)
	wantError(t, postJSON(t, wrong, nil), 403, "PORTAL_DELETED") // state before auth
	s2.MoveTo("new.example.com")
	if a := noFollow(t, http.MethodPost, wrong); a.status != http.StatusFound { // redirect before state
		t.Errorf("moved and deleted: %d %s", a.status, a.raw)
	}
}

// noFollow sends an empty POST (or GET) without following redirects.
func noFollow(t *testing.T, method, url string) answer {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(method, url, strings.NewReader(`{"NAME":"Sales","PARENT":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, raw: raw, location: resp.Header.Get("Location")}
}

func TestMovedPortal(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{WebhookSecret: "s3cret"})
	s.MoveTo("new.example.com")
	a := noFollow(t, http.MethodPost, s.WebhookURL()+"department.add.json?x=1")
	if a.status != http.StatusFound || a.location != "https://new.example.com/rest/1/s3cret/department.add.json?x=1" || len(a.raw) != 0 {
		t.Errorf("want 302 to the new host, same path, no body: %d %q %q", a.status, a.location, a.raw)
	}
	oauth := noFollow(t, http.MethodPost, s.OAuthPortalURL()+"rest/department.get")
	if oauth.status != http.StatusFound || oauth.location != "https://new.example.com/rest/department.get" {
		t.Errorf("OAuth call: %d %q", oauth.status, oauth.location)
	}
	if st := s.Stats(); st.RedirectedGETs != 0 || st.Calls["department.add"]["redirect"] != 1 || st.Requests != 2 {
		t.Errorf("stats %+v", st)
	}

	// A client that follows re-sends the call as a GET without its body.
	// Moved onto itself, the simulator sees (and counts) those GETs.
	s.MoveTo(s.URL)
	resp, err := http.Post(s.WebhookURL()+"department.add", "application/json", strings.NewReader(`{"NAME":"Sales","PARENT":1}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("following a portal moved onto itself: want too many redirects, got %d", resp.StatusCode)
	}
	if st := s.Stats(); st.RedirectedGETs == 0 || st.DepartmentsCreated != 0 {
		t.Errorf("RedirectedGETs %d, created %d; want some GETs and nothing created", st.RedirectedGETs, st.DepartmentsCreated)
	}

	s.MoveTo("")
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "Sales", "PARENT": 1}))
}

func TestTokenEndpointConditions(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{OAuth: OAuthConfig{ClientID: "app", ClientSecret: "cs", RefreshToken: "R1"}})
	refresh := func(token string) answer {
		return do(t, mustGet(t, s.TokenEndpoint()+"?grant_type=refresh_token&client_id=app&client_secret=cs&refresh_token="+token))
	}
	s.SetRefreshRevoked(true)
	a := refresh("R1")
	wantError(t, a, http.StatusBadRequest, "invalid_grant")
	s.SetRefreshRevoked(false)
	s.SetClientRevoked(true)
	wantError(t, refresh("R1"), http.StatusUnauthorized, "invalid_client")
	s.SetClientRevoked(false)
	a = refresh("R1") // the token was never used up by the refused attempts
	wantOK(t, a)
	wantError(t, refresh("R1"), http.StatusBadRequest, "invalid_grant")
	if st := s.Stats(); st.TokenRequests != 4 || st.Refreshes != 1 || st.Requests != 0 {
		t.Errorf("TokenRequests %d Refreshes %d Requests %d, want 4, 1, 0", st.TokenRequests, st.Refreshes, st.Requests)
	}

	// An OAuth call with insufficient scope names the access token.
	s.SetInsufficientScope(true)
	b := postJSON(t, s.OAuthPortalURL()+"rest/department.get", map[string]any{"auth": a.body["access_token"]})
	wantError(t, b, http.StatusUnauthorized, "insufficient_scope")
	if !strings.HasSuffix(b.desc(), "provided by the access token") {
		t.Errorf("description %q", b.desc())
	}
}

func TestSimConditionEndpoints(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Conditions: Conditions{Overload: true}})
	wantError(t, call(t, s, "department.get", nil), 503, "OVERLOAD_LIMIT")
	simPost(t, s, "/_sim/overload?on=0", "")
	wantOK(t, call(t, s, "department.get", nil))

	for _, sw := range switches {
		simPost(t, s, "/_sim/"+sw.name+"?on=1", "")
	}
	var c Conditions
	getJSON(t, s.URL+"/_sim/conditions", &c)
	want := Conditions{Deleted: true, Overload: true, PaymentRequired: true, WebhookRevoked: true, AccessDenied: true,
		InsufficientScope: true, UserAccessError: true, RefreshRevoked: true, ClientRevoked: true}
	if c != want {
		t.Errorf("conditions %+v, want %+v", c, want)
	}
	simPost(t, s, "/_sim/conditions", `{"webhook_revoked":true}`)
	wantError(t, call(t, s, "department.get", nil), 401, "INVALID_CREDENTIALS")
	simPost(t, s, "/_sim/webhook-revoked", "") // no on=1: off
	wantOK(t, call(t, s, "department.get", nil))

	simPost(t, s, "/_sim/move?to="+url.QueryEscape("new.example.com"), "")
	if a := noFollow(t, http.MethodPost, s.WebhookURL()+"department.get"); a.location != "https://new.example.com/rest/1/"+s.Config().WebhookSecret+"/department.get" {
		t.Errorf("moved: %d %q", a.status, a.location)
	}
	simPost(t, s, "/_sim/move", "")
	wantOK(t, call(t, s, "department.get", nil))

	resp, err := http.Post(s.URL+"/_sim/conditions", "application/json", strings.NewReader(`{"deleted":"yes"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || s.Conditions().Deleted {
		t.Errorf("bad conditions body: %d, %+v", resp.StatusCode, s.Conditions())
	}
}

func simPost(t *testing.T, s *Server, path, body string) {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", path, resp.Status, raw)
	}
}
