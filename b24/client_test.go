package b24

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// testSecret is the webhook code of every test client; tests assert that it
// never leaks into an error text.
const testSecret = "Wh00kS3cr3tC0de42"

// fixture is a test portal: an httptest server with a mux, and a webhook
// client pointing at it that records what its Observer was told.
type fixture struct {
	srv    *httptest.Server
	mux    *http.ServeMux
	client *Client

	mu    sync.Mutex
	infos []CallInfo
}

func setup(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	f := &fixture{mux: http.NewServeMux()}
	f.srv = httptest.NewServer(f.mux)
	t.Cleanup(f.srv.Close)
	opts = append([]Option{WithObserver(f.record)}, opts...)
	c, err := NewWebhook(f.srv.URL+"/rest/1/"+testSecret+"/", opts...)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	f.client = c
	return f
}

func (f *fixture) record(ci CallInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.infos = append(f.infos, ci)
}

func (f *fixture) observed() []CallInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CallInfo(nil), f.infos...)
}

// handle serves one REST method of the webhook and checks the envelope of
// every request: POST, JSON content type, a JSON object body, which it
// passes to fn.
func (f *fixture) handle(t *testing.T, method string, fn func(w http.ResponseWriter, body map[string]any)) {
	t.Helper()
	f.mux.HandleFunc("/rest/1/"+testSecret+"/"+method, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("%s: HTTP method %s, want POST", method, r.Method)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", method, ct)
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s: read body: %v", method, err)
		}
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("%s: body %q is not a JSON object: %v", method, raw, err)
		}
		fn(w, body)
	})
}

// reply writes status and body as JSON.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jsonEqual compares a decoded body with the JSON text want.
func jsonEqual(t *testing.T, got map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Errorf("request body = %s, want %s", g, want)
	}
}

func TestNewWebhookValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url string
		wantBase  string // "" = must fail
	}{
		{"https", "https://example.bitrix24.ru/rest/1/" + testSecret + "/", "https://example.bitrix24.ru/rest/1/" + testSecret + "/"},
		{"slash added", "https://example.bitrix24.ru/rest/7/" + testSecret, "https://example.bitrix24.ru/rest/7/" + testSecret + "/"},
		{"box install subpath", "https://corp.example.com/b24/rest/1/" + testSecret + "/", "https://corp.example.com/b24/rest/1/" + testSecret + "/"},
		{"http loopback v4", "http://127.0.0.1:8080/rest/1/" + testSecret + "/", "http://127.0.0.1:8080/rest/1/" + testSecret + "/"},
		{"http loopback 127/8", "http://127.3.4.5/rest/1/" + testSecret + "/", "http://127.3.4.5/rest/1/" + testSecret + "/"},
		{"http localhost", "http://localhost:1/rest/1/" + testSecret + "/", "http://localhost:1/rest/1/" + testSecret + "/"},
		{"http loopback v6", "http://[::1]:9/rest/1/" + testSecret + "/", "http://[::1]:9/rest/1/" + testSecret + "/"},
		{"http remote", "http://example.bitrix24.ru/rest/1/" + testSecret + "/", ""},
		{"http private ip", "http://10.0.0.1/rest/1/" + testSecret + "/", ""},
		{"http localhost lookalike", "http://localhost.evil.com/rest/1/" + testSecret + "/", ""},
		{"ftp", "ftp://example.bitrix24.ru/rest/1/" + testSecret + "/", ""},
		{"no secret", "https://example.bitrix24.ru/rest/1/", ""},
		{"user not numeric", "https://example.bitrix24.ru/rest/admin/" + testSecret + "/", ""},
		{"method appended", "https://example.bitrix24.ru/rest/1/" + testSecret + "/profile", ""},
		{"query", "https://example.bitrix24.ru/rest/1/" + testSecret + "/?x=1", ""},
		{"userinfo", "https://u:" + testSecret + "@example.bitrix24.ru/rest/1/" + testSecret + "/", ""},
		{"relative", "/rest/1/" + testSecret + "/", ""},
		{"garbage", "https://exa mple.com/rest/1/" + testSecret + "/%zz", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewWebhook(tt.url)
			if tt.wantBase == "" {
				if err == nil {
					t.Fatalf("NewWebhook(%q) succeeded, want error", tt.url)
				}
				if strings.Contains(err.Error(), testSecret) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewWebhook(%q): %v", tt.url, err)
			}
			if c.cred.base != tt.wantBase {
				t.Errorf("base = %q, want %q", c.cred.base, tt.wantBase)
			}
			if s := c.String(); strings.Contains(s, testSecret) || !strings.Contains(s, "/***/") {
				t.Errorf("String() = %q, want the secret replaced by ***", s)
			}
		})
	}
}

func TestNewWebhookHTTPRemoteErrorIsClear(t *testing.T) {
	t.Parallel()
	_, err := NewWebhook("http://example.bitrix24.ru/rest/1/" + testSecret + "/")
	if err == nil || !strings.Contains(err.Error(), "https") || !strings.Contains(err.Error(), "example.bitrix24.ru") {
		t.Fatalf("error = %v, want it to name the host and require https", err)
	}
}

func TestInsecureHTTPHostsAreOptIn(t *testing.T) {
	t.Parallel()
	url := "http://b24sim:8090/rest/1/" + testSecret + "/"
	if _, err := NewWebhook(url, WithInsecureHTTPHosts("other")); err == nil {
		t.Error("http:// accepted for a host that was not listed")
	}
	if _, err := NewWebhook(url, WithInsecureHTTPHosts("B24SIM")); err != nil {
		t.Errorf("listed host refused: %v", err)
	}
	_, err := NewOAuth(OAuthConfig{PortalURL: "http://b24sim:8090/", TokenEndpoint: "http://b24sim:8090/oauth/token/",
		ClientID: "id", ClientSecret: "cs", Token: Token{AccessToken: "a", RefreshToken: "r"}}, WithInsecureHTTPHosts("b24sim"))
	if err != nil {
		t.Errorf("OAuth with a listed http host refused: %v", err)
	}
}

func TestCallSendsJSONAndDecodesAnswer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "department.add", func(w http.ResponseWriter, body map[string]any) {
		jsonEqual(t, body, `{"NAME":"Отдел изучения маглов","PARENT":15,"SORT":450,"UF_HEAD":1}`)
		reply(w, 200, readTestdata(t, "department.add.json"))
	})
	f.handle(t, "profile", func(w http.ResponseWriter, body map[string]any) {
		jsonEqual(t, body, `{}`)
		// total/next as strings, start as an int: PHP sends both.
		reply(w, 200, `{"result":{"ID":"1"},"total":"120","next":50,"time":{"start":1736927311,"operating":"0.5","operating_reset_at":1736927911.0}}`)
	})

	var id int64
	meta, err := f.client.Call(t.Context(), "department.add", map[string]any{"NAME": "Отдел изучения маглов", "PARENT": 15, "SORT": 450, "UF_HEAD": 1}, &id)
	if err != nil {
		t.Fatal(err)
	}
	if id != 18 {
		t.Errorf("id = %d, want 18", id)
	}
	wantTime := Time{Start: 1736927311.779587, Finish: 1736927312.132503, Duration: 0.35291600227355957, Processing: 0.17050600051879883, Operating: 0.1704881191253662}
	if meta.Time != wantTime {
		t.Errorf("time = %+v, want %+v", meta.Time, wantTime)
	}

	var prof map[string]string
	meta, err = f.client.Call(t.Context(), "profile", nil, &prof)
	if err != nil {
		t.Fatal(err)
	}
	if prof["ID"] != "1" || meta.Total != 120 || meta.Next != 50 {
		t.Errorf("result %v total %d next %d", prof, meta.Total, meta.Next)
	}
	if meta.Time.Start != 1736927311 || meta.Time.Operating != 0.5 || !meta.Time.ResetAt().Equal(time.Unix(1736927911, 0)) {
		t.Errorf("time = %+v", meta.Time)
	}
	// out == nil: no decoding, still success.
	if _, err := f.client.Call(t.Context(), "profile", nil, nil); err != nil {
		t.Errorf("Call with nil out: %v", err)
	}

	infos := f.observed()
	if len(infos) != 3 || infos[0].Method != "department.add" || infos[0].Time != wantTime || infos[0].Err != nil {
		t.Errorf("observer got %+v", infos)
	}
}

func TestCallRejectsBadInput(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, m := range []string{"", "department.add?x=1", "../admin", "a/b", "a..b"} {
		if _, err := f.client.Call(t.Context(), m, nil, nil); err == nil {
			t.Errorf("Call(%q) succeeded, want error", m)
		}
	}
	if _, err := f.client.Call(t.Context(), "profile", []int{1}, nil); err == nil {
		t.Error("Call with a list as params succeeded, want error")
	}
	if n := len(f.observed()); n != 0 {
		t.Errorf("%d requests sent for invalid input", n)
	}
}

type pacerFunc func(ctx context.Context, method string) error

func (p pacerFunc) Wait(ctx context.Context, method string) error { return p(ctx, method) }

func TestPacerAskedBeforeEveryRequest(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []string
	var f *fixture
	f = setup(t, WithPacer(pacerFunc(func(_ context.Context, method string) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, method)
		if n := len(f.observed()); n != len(asked)-1 {
			t.Errorf("pacer asked after %d requests, want before request %d", n, len(asked))
		}
		return nil
	})))
	f.handle(t, "profile", func(w http.ResponseWriter, _ map[string]any) { reply(w, 200, `{"result":true}`) })
	f.handle(t, "batch", func(w http.ResponseWriter, _ map[string]any) { reply(w, 200, `{"result":{"result":{"a":true}}}`) })
	for range 2 {
		if _, err := f.client.Call(t.Context(), "profile", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.client.Batch(t.Context(), false, []BatchCommand{{Key: "a", Method: "profile"}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"profile", "profile", "batch"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("pacer asked for %v, want %v", asked, want)
	}
}

func TestPacerErrorStopsTheCall(t *testing.T) {
	t.Parallel()
	errSlow := errors.New("limiter: slot too far")
	f := setup(t, WithPacer(pacerFunc(func(context.Context, string) error { return errSlow })))
	f.handle(t, "profile", func(http.ResponseWriter, map[string]any) { t.Error("request sent despite pacer error") })
	_, err := f.client.Call(t.Context(), "profile", nil, nil)
	if !errors.Is(err, errSlow) {
		t.Fatalf("err = %v, want wrapping the pacer error", err)
	}
	if Classify(err) != Transient || IsAmbiguous(err) {
		t.Errorf("Classify = %v, IsAmbiguous = %v; want transient, false", Classify(err), IsAmbiguous(err))
	}
	if n := len(f.observed()); n != 0 {
		t.Errorf("observer told %d times, want 0 (nothing sent)", n)
	}
}

func jsonDecode(r *http.Request, v any) error { return json.NewDecoder(r.Body).Decode(v) }

// TestEncodeParamsAndAuth pins the request body: params encode to one JSON
// object (nil and null maps to {}), anything else is refused before a
// request is made, and an OAuth token is added as the last member so that
// it wins over an "auth" in the params.
func TestEncodeParamsAndAuth(t *testing.T) {
	var nilMap map[string]any
	for _, tc := range []struct {
		name   string
		params any
		want   string // body with auth "t<k>"
	}{
		{"nil", nil, `{"auth":"t\u003ck"}`},
		{"nil map", nilMap, `{"auth":"t\u003ck"}`},
		{"empty struct", struct{}{}, `{"auth":"t\u003ck"}`},
		{"fields", map[string]any{"NAME": "R&D", "PARENT": 1}, `{"NAME":"R\u0026D","PARENT":1,"auth":"t\u003ck"}`},
		{"raw with spaces", json.RawMessage(` { "a" : [1, 2] } `), `{"a":[1,2],"auth":"t\u003ck"}`},
		{"auth in params", map[string]string{"auth": "forged"}, `{"auth":"forged","auth":"t\u003ck"}`},
	} {
		body, err := encodeParams(tc.params)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := withAuth(body, "t<k")
		if string(got) != tc.want {
			t.Errorf("%s: body %s, want %s", tc.name, got, tc.want)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(got, &m); err != nil || string(m["auth"]) != `"t\u003ck"` {
			t.Errorf("%s: body %s does not decode to an object whose auth is the token (%v)", tc.name, got, err)
		}
	}
	for _, bad := range []any{[]int{1}, "text", 3, json.RawMessage(`[]`)} {
		if b, err := encodeParams(bad); err == nil || !strings.Contains(err.Error(), "must encode to a JSON object") {
			t.Errorf("params %#v: body %s, err %v; want a refusal", bad, b, err)
		}
	}
}

// TestRedirectIsNeverFollowed: a renamed portal answers 302 with its new
// address. Go's client would re-send the POST as a GET without its body;
// the client must send exactly one request and report PORTAL_MOVED naming
// only the new host (the Location's path carries the webhook secret).
func TestRedirectIsNeverFollowed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		status   int
		location string // "" = the test server itself, under /moved/
		opts     []Option
	}{
		{"302 own client", http.StatusFound, "", nil},
		{"301", http.StatusMovedPermanently, "", nil},
		{"307", http.StatusTemporaryRedirect, "", nil},
		{"308 caller's client", http.StatusPermanentRedirect, "", []Option{WithHTTPClient(&http.Client{})}},
		{"other host", http.StatusFound, "https://renamed.bitrix24.ru/rest/1/" + testSecret + "/department.add", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, tc.opts...)
			var mu sync.Mutex
			var seen []string
			f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, r.Method+" "+r.URL.Path)
				mu.Unlock()
				if !strings.HasPrefix(r.URL.Path, "/moved/") {
					loc := tc.location
					if loc == "" {
						loc = f.srv.URL + "/moved/rest/1/" + testSecret + "/department.add"
					}
					w.Header().Set("Location", loc)
					w.WriteHeader(tc.status)
					return
				}
				reply(w, 200, `{"result":18}`)
			})
			_, _, err := f.client.AddDepartment(t.Context(), DepartmentFields{Name: "Sales", Parent: 1})
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 || !strings.HasPrefix(seen[0], "POST ") {
				t.Fatalf("requests %v, want exactly one POST", seen)
			}
			wantHost := strings.TrimPrefix(f.srv.URL, "http://")
			if tc.location != "" {
				wantHost = "renamed.bitrix24.ru"
			}
			e, ok := errors.AsType[*Error](err)
			if !ok || e.Code != CodePortalMoved || e.Description != "portal moved to "+wantHost || e.HTTPStatus != tc.status {
				t.Fatalf("err = %#v, want PORTAL_MOVED to %s with HTTP %d", err, wantHost, tc.status)
			}
			if s := err.Error(); strings.Contains(s, testSecret) || strings.Contains(s, "/rest/") {
				t.Errorf("error %q quotes the Location's path", s)
			}
			if Classify(err) != PortalUnavailable || IsAmbiguous(err) {
				t.Errorf("Classify %v, ambiguous %v; want portal_unavailable, not ambiguous", Classify(err), IsAmbiguous(err))
			}
		})
	}
}

// TestCallersHTTPClientIsNotChanged: WithHTTPClient's client keeps its own
// CheckRedirect; the b24 client uses a copy that never follows.
func TestCallersHTTPClientIsNotChanged(t *testing.T) {
	t.Parallel()
	hc := &http.Client{Timeout: time.Minute}
	c, err := NewWebhook("https://example.bitrix24.ru/rest/1/"+testSecret+"/", WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("the caller's http.Client was changed")
	}
	if c.hc == hc || c.hc.CheckRedirect == nil || c.hc.Timeout != time.Minute {
		t.Errorf("client uses %+v, want a copy of the caller's client that does not follow redirects", c.hc)
	}
}

// A cloud portal may run one request for up to 60 s; a client that gives up
// earlier turns a slow success into an ambiguous failure.
func TestDefaultTimeoutOutlastsThePortal(t *testing.T) {
	t.Parallel()
	c, err := NewWebhook("https://example.bitrix24.ru/rest/1/" + testSecret + "/")
	if err != nil {
		t.Fatal(err)
	}
	if c.timeout != DefaultTimeout || DefaultTimeout <= 60*time.Second {
		t.Errorf("timeout %v (DefaultTimeout %v), want the default, above the portal's 60 s", c.timeout, DefaultTimeout)
	}
}
