package b24

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClassifyRecordedAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string // testdata/errors/FILE.json
		status    int    // as the seeds give it
		class     Class
		ambiguous bool
	}{
		{"QUERY_LIMIT_EXCEEDED", 503, RateLimited, false},
		{"OPERATION_TIME_LIMIT", 429, MethodBlocked, false},
		{"expired_token", 401, Auth, false},
		{"invalid_token", 401, Auth, false},
		{"INTERNAL_SERVER_ERROR", 500, Transient, true},
		{"ERROR_UNEXPECTED_ANSWER", 500, Transient, true},
		// ERROR_CORE is a validation error only with a known message; any
		// other may come after the department was saved (UF_HEAD failed)
		// or from the database: retry, and look up first.
		{"ERROR_CORE", 400, Permanent, false},
		{"ERROR_CORE_root", 400, Permanent, false},
		{"ERROR_CORE_parent", 400, Permanent, false},
		{"ERROR_CORE_db", 400, Transient, true},
		{"ERROR_CORE_access", 400, Transient, true},
		{"ERROR_CORE_db", 200, Transient, true},
		{"BX_EMPTY_REQUIRED", 400, Permanent, false},
		{"LIMIT_EXCEEDED", 400, Permanent, false},
		// The credential or the portal, never the item: the portal pauses.
		{"ACCESS_DENIED", 403, PortalUnavailable, false},
		{"NO_AUTH_FOUND", 401, PortalUnavailable, false},
		{"INVALID_CREDENTIALS", 403, PortalUnavailable, false},
		{"insufficient_scope", 403, PortalUnavailable, false},
		{"user_access_error", 403, PortalUnavailable, false},
		{"OVERLOAD_LIMIT", 503, PortalUnavailable, false},
		{"PORTAL_DELETED", 500, PortalUnavailable, false},
		{"PAYMENT_REQUIRED", 402, PortalUnavailable, false},
		{"INVALID_REQUEST", 400, Permanent, false},
		{"ERROR_BATCH_METHOD_NOT_ALLOWED", 405, Permanent, false},
		{"ERROR_BATCH_LENGTH_EXCEEDED", 400, Permanent, false},
		{"ERROR_MANIFEST_IS_NOT_AVAILABLE", 404, Permanent, false},
		{"SOME_NEW_CODE", 400, Permanent, false},
		{"SOME_NEW_CODE", 502, Transient, true},
		// The department.add page gives status 200 for most system errors:
		// the code decides, not the status.
		{"QUERY_LIMIT_EXCEEDED", 200, RateLimited, false},
		{"NO_AUTH_FOUND", 200, PortalUnavailable, false},
		{"OVERLOAD_LIMIT", 200, PortalUnavailable, false},
		{"INTERNAL_SERVER_ERROR", 200, Transient, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%d", tt.file, tt.status), func(t *testing.T) {
			t.Parallel()
			body := readTestdata(t, "errors/"+tt.file+".json")
			var want struct {
				Code string `json:"error"`
				Desc string `json:"error_description"`
			}
			if err := json.Unmarshal([]byte(body), &want); err != nil {
				t.Fatal(err)
			}
			f := setup(t)
			f.handle(t, "department.add", func(w http.ResponseWriter, _ map[string]any) { reply(w, tt.status, body) })
			_, _, err := f.client.AddDepartment(t.Context(), DepartmentFields{Name: "Sales", Parent: 1})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %#v, want *Error", err)
			}
			if e.Code != want.Code || e.Description != want.Desc || e.HTTPStatus != tt.status || e.Method != "department.add" {
				t.Errorf("got %+v, want code %q desc %q status %d", e, want.Code, want.Desc, tt.status)
			}
			if got := Classify(err); got != tt.class {
				t.Errorf("Classify = %v, want %v", got, tt.class)
			}
			if got := Classify(fmt.Errorf("handler: %w", err)); got != tt.class {
				t.Errorf("Classify(wrapped) = %v, want %v", got, tt.class)
			}
			if got := IsAmbiguous(err); got != tt.ambiguous {
				t.Errorf("IsAmbiguous = %v, want %v", got, tt.ambiguous)
			}
			if infos := f.observed(); len(infos) != 1 || !errors.Is(infos[0].Err, err) {
				t.Errorf("observer got %+v, want the error", infos)
			}
		})
	}
}

func TestClassifyOtherErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		class     Class
		ambiguous bool
	}{
		{"nil", nil, OK, false},
		{"canceled", context.Canceled, Transient, false},
		{"plain", errors.New("x"), Transient, false},
		{"transport written", &TransportError{Method: "m", Err: io.EOF, Ambiguous: true}, Transient, true},
		{"transport dial", fmt.Errorf("w: %w", &TransportError{Method: "m", Err: io.EOF}), Transient, false},
		{"joined", errors.Join(errors.New("x"), &Error{Code: CodeOperationTimeLimit}), MethodBlocked, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.err); got != tt.class {
				t.Errorf("Classify = %v, want %v", got, tt.class)
			}
			if got := IsAmbiguous(tt.err); got != tt.ambiguous {
				t.Errorf("IsAmbiguous = %v, want %v", got, tt.ambiguous)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	t.Parallel()
	want := map[Class]string{OK: "ok", Permanent: "permanent", RateLimited: "rate_limited", MethodBlocked: "method_blocked",
		Auth: "auth", Transient: "transient", PortalUnavailable: "portal_unavailable"}
	for c, s := range want {
		if c.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(c), c.String(), s)
		}
	}
}

// TestUndecodableAnswers: anything that is not a Bitrix24 answer is an
// ambiguous *TransportError, never success, never a definite error.
func TestUndecodableAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		ctype    string
		body     string
		wantText string
	}{
		{"html 502", 502, "text/html", "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", "HTTP 502"},
		{"html 200", 200, "text/html", "<html>maintenance</html>", "HTTP 200"},
		{"truncated 200", 200, "application/json", `{"result":18,"time":{"start":17`, "HTTP 200"},
		{"empty 200", 200, "application/json", ``, "HTTP 200"},
		{"empty object 200", 200, "application/json", `{}`, "neither result nor error"},
		{"time only 200", 200, "application/json", `{"time":{"start":1}}`, "neither result nor error"},
		{"list 200", 200, "application/json", `[18]`, "HTTP 200"},
		{"json 500 without code", 500, "application/json", `{"result":null}`, "HTTP 500"},
		{"json 404 without code", 404, "application/json", `{"message":"not found"}`, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			f.handle(t, "department.add", func(w http.ResponseWriter, _ map[string]any) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			id, _, err := f.client.AddDepartment(t.Context(), DepartmentFields{Name: "Sales", Parent: 1})
			var te *TransportError
			if !errors.As(err, &te) || !te.Ambiguous {
				t.Fatalf("id %d, err = %#v, want an ambiguous *TransportError", id, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if Classify(err) != Transient || !IsAmbiguous(err) {
				t.Errorf("Classify %v IsAmbiguous %v, want transient and ambiguous", Classify(err), IsAmbiguous(err))
			}
		})
	}
}

func TestResultOfWrongShapeIsAmbiguous(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "department.add", func(w http.ResponseWriter, _ map[string]any) { reply(w, 200, `{"result":{"id":18}}`) })
	_, _, err := f.client.AddDepartment(t.Context(), DepartmentFields{Name: "Sales", Parent: 1})
	if !IsAmbiguous(err) {
		t.Fatalf("err = %v, want ambiguous (the portal said 200)", err)
	}
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestNetworkErrorsAmbiguity(t *testing.T) {
	t.Parallel()

	t.Run("connection closed after the body was read", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.mux.HandleFunc("/rest/1/"+testSecret+"/department.add", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
		})
		_, _, err := f.client.AddDepartment(t.Context(), DepartmentFields{Name: "Sales", Parent: 1})
		var te *TransportError
		if !errors.As(err, &te) || !te.Ambiguous || !IsAmbiguous(err) {
			t.Fatalf("err = %v, want an ambiguous *TransportError", err)
		}
		if Classify(err) != Transient {
			t.Errorf("Classify = %v", Classify(err))
		}
	})

	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		c, err := NewWebhook("http://" + closedPort(t) + "/rest/1/" + testSecret + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.AddDepartment(t.Context(), DepartmentFields{Name: "Sales", Parent: 1})
		var te *TransportError
		if !errors.As(err, &te) || te.Ambiguous || IsAmbiguous(err) {
			t.Fatalf("err = %v, want a non-ambiguous *TransportError", err)
		}
		if Classify(err) != Transient {
			t.Errorf("Classify = %v", Classify(err))
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("err = %v, want it to wrap *net.OpError", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		f := setup(t, WithTimeout(50*time.Millisecond))
		f.mux.HandleFunc("/rest/1/"+testSecret+"/department.add", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			<-r.Context().Done() // until the client gives up
		})
		start := time.Now()
		_, _, err := f.client.AddDepartment(t.Context(), DepartmentFields{Name: "Sales", Parent: 1})
		if !IsAmbiguous(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ambiguous deadline exceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v, WithTimeout not applied", d)
		}
		if infos := f.observed(); len(infos) != 1 || infos[0].Err == nil {
			t.Errorf("observer got %+v, want the failed request", infos)
		}
	})

	t.Run("caller canceled before sending", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := f.client.Call(ctx, "profile", nil, nil)
		if err == nil || IsAmbiguous(err) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want non-ambiguous canceled", err)
		}
	})
}

// TestErrorsNeverContainSecrets formats every kind of error the client
// produces, and the client itself, in every verb.
func TestErrorsNeverContainSecrets(t *testing.T) {
	t.Parallel()
	f := setup(t, WithTimeout(100*time.Millisecond))
	// The portal echoes the URL in bodies and descriptions, as proxies do.
	f.handle(t, "echo.error", func(w http.ResponseWriter, _ map[string]any) {
		reply(w, 400, `{"error":"ERROR_CORE","error_description":"bad call to /rest/1/`+testSecret+`/echo.error"}`)
	})
	f.handle(t, "echo.html", func(w http.ResponseWriter, _ map[string]any) {
		w.WriteHeader(502)
		_, _ = io.WriteString(w, "<html>upstream /rest/1/"+testSecret+"/echo.html failed</html>")
	})
	f.handle(t, "echo.hang", func(w http.ResponseWriter, _ map[string]any) {
		time.Sleep(300 * time.Millisecond)
	})
	var errs []error
	for _, m := range []string{"echo.error", "echo.html", "echo.hang"} {
		_, err := f.client.Call(t.Context(), m, nil, nil)
		errs = append(errs, err)
	}
	dead, err := NewWebhook("http://" + closedPort(t) + "/rest/1/" + testSecret + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dead.Call(t.Context(), "profile", nil, nil)
	errs = append(errs, err)
	_, _, err = dead.Batch(t.Context(), true, []BatchCommand{{Key: "a", Method: "profile"}})
	errs = append(errs, err)

	// OAuth: the refresh URL carries client_secret and refresh_token.
	const access, refresh, clientSecret = "AccessT0kenXYZ123", "RefreshT0kenXYZ456", "ClientS3cretXYZ789"
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reply(w, 401, `{"error":"expired_token","error_description":"The access token provided has expired."}`)
	}))
	t.Cleanup(portal.Close)
	oc, err := NewOAuth(OAuthConfig{
		PortalURL: portal.URL, ClientID: "app.1", ClientSecret: clientSecret,
		Token:         Token{AccessToken: access, RefreshToken: refresh},
		TokenEndpoint: "http://" + closedPort(t) + "/oauth/token/",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = oc.Call(t.Context(), "profile", nil, nil)
	if Classify(err) != Transient || IsAmbiguous(err) {
		t.Errorf("OAuth call with a refresh that could not reach the OAuth server: Classify = %v, ambiguous %v; want transient, not ambiguous (%v)",
			Classify(err), IsAmbiguous(err), err)
	}
	errs = append(errs, err)

	secrets := []string{testSecret, access, refresh, clientSecret}
	check := func(what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s leaks a secret: %s", what, s)
			}
		}
	}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("error %d is nil", i)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			check(fmt.Sprintf("error %d %s", i, verb), fmt.Sprintf(verb, err))
		}
		for u := err; u != nil; u = errors.Unwrap(u) {
			check(fmt.Sprintf("error %d unwrapped %T", i, u), u.Error())
		}
	}
	for _, c := range []*Client{f.client, dead, oc} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			check("client "+verb, fmt.Sprintf(verb, c))
			check("client value "+verb, fmt.Sprintf(verb, *c))
		}
	}
	if s := oc.String(); !strings.Contains(s, "oauth") {
		t.Errorf("OAuth String() = %q", s)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		secrets []string
		want    string
	}{
		{"https://p/rest/1/abc/x", []string{"abc"}, "https://p/rest/1/***/x"},
		{"nothing", nil, "nothing"},
		{"empty secret", []string{""}, "empty secret"},
		{"?t=a%2Bb&u=a+b", []string{"a+b"}, "?t=***&u=***"},
		{"abcdef and abc", []string{"abc", "abcdef"}, "*** and ***"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in, tt.secrets...); got != tt.want {
			t.Errorf("Redact(%q, %q) = %q, want %q", tt.in, tt.secrets, got, tt.want)
		}
	}
}

func TestIsValidationMessage(t *testing.T) {
	t.Parallel()
	for _, msg := range ValidationMessages {
		if !IsValidationMessage(msg) {
			t.Errorf("IsValidationMessage(%q) = false for a listed message", msg)
		}
	}
	tests := map[string]bool{
		"Не введено название раздела.<br>":         true,
		" не введено НАЗВАНИЕ раздела. <br /> ":    true,
		"Не введено название раздела.\n<BR>\n":     true,
		"parent department not found<br>":          true,
		"Parent  department\tnot found":            true,
		"The department name is not provided.<br>": true,
		"В структуре компании должен быть только один раздел верхнего уровня": true,
		"There can only be one top-level department in the company structure": true,
		"":              false,
		"<br>":          false,
		"Access denied": false,
		"Не введено название раздела. Ещё":  false,
		"Parent department not found: 7":    false,
		"Deadlock found when trying to get": false,
	}
	for msg, want := range tests {
		if got := IsValidationMessage(msg); got != want {
			t.Errorf("IsValidationMessage(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestBatchCommandAmbiguity: the error of a command of an answered batch
// is not ambiguous (the portal reports the command returned nothing),
// except ERROR_CORE without a validation message: department.add may have
// saved the department before failing.
func TestBatchCommandAmbiguity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code, desc string
		class      Class
		ambiguous  bool
	}{
		{CodeErrorCore, "Не введено название раздела.<br>", Permanent, false},
		{CodeErrorCore, "Parent department not found", Permanent, false},
		{CodeErrorCore, "Deadlock found when trying to get lock", Transient, true},
		{CodeInternalServerError, "Internal server error", Transient, false},
		{CodeQueryLimitExceeded, "Too many requests", RateLimited, false},
		{CodeAccessDenied, "Access denied", PortalUnavailable, false},
	}
	for _, tt := range tests {
		err := fmt.Errorf("item: %w", &Error{Code: tt.code, Description: tt.desc, Method: MethodDepartmentAdd, Command: "c0"})
		if Classify(err) != tt.class || IsAmbiguous(err) != tt.ambiguous {
			t.Errorf("%s %q: Classify %v, ambiguous %v; want %v, %v", tt.code, tt.desc, Classify(err), IsAmbiguous(err), tt.class, tt.ambiguous)
		}
	}
}
