package b24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fuzzAnswer is what the fuzz portal answers next. The fuzz engine runs the
// target sequentially within one process, but the mutex keeps a parallel
// `go test` run honest.
type fuzzAnswer struct {
	mu     sync.Mutex
	status int
	ctype  string
	body   []byte
}

func (a *fuzzAnswer) set(status int, ctype string, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status, a.ctype, a.body = status, ctype, body
}

func (a *fuzzAnswer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	status, ctype, body := a.status, a.ctype, a.body
	a.mu.Unlock()
	if ctype != "" {
		w.Header().Set("Content-Type", ctype)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fuzzSecret is the webhook code of the fuzz client: it must never show in
// an error, whatever the portal answers (the body may echo it).
const fuzzSecret = "fuzzsecret0123456789abcdef"

// validID is the oracle for an ID result: a positive integer, as a JSON
// number or a string (PHP's encoding) holding an integer or a JSON number
// literal with nothing around it.
func validID(raw json.RawMessage) (int64, bool) {
	s := strings.TrimSpace(string(raw))
	if uq, err := strconv.Unquote(s); err == nil && strings.HasPrefix(s, `"`) {
		s = uq
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Otherwise only a JSON number literal, nothing around it.
		var f float64
		if s != strings.TrimSpace(s) || json.Unmarshal([]byte(s), &f) != nil || f != float64(int64(f)) {
			return 0, false
		}
		n = int64(f)
	}
	return n, n > 0
}

// successOracle decides from the raw answer alone whether it is a valid
// success answer of an ID-returning method, and which ID it carries: a 2xx
// status, a JSON object, no error code (absent, null, false or ""), and a
// result that is a positive integer.
func successOracle(status int, body []byte) (int64, bool) {
	if status < 200 || status > 299 {
		return 0, false
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil || env == nil {
		return 0, false
	}
	if e, ok := env["error"]; ok {
		switch strings.TrimSpace(string(e)) {
		case "null", "false", `""`:
		default:
			return 0, false
		}
	}
	r, ok := env["result"]
	if !ok {
		return 0, false
	}
	return validID(r)
}

// FuzzDecodeResponse feeds arbitrary status codes and bodies to the client
// through an HTTP server, for department.add (an ID result),
// crm.automatedsolution.add (an object result) and batch. The client must
// never panic, never report success for an answer that is not a valid
// success (see successOracle), return the ID the answer carries, classify
// every failure as *Error or *TransportError, and never put the webhook
// code into an error text.
func FuzzDecodeResponse(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"result":18,"time":{"start":1,"finish":2,"operating":0.1,"operating_reset_at":1700000000}}`},
		{200, `{"result":"18"}`},
		{200, `{"result":0}`},
		{200, `{"result":-3}`},
		{200, `{"result":1.5}`},
		{200, `{"result":null}`},
		{200, `{"result":true}`},
		{200, `{"result":[]}`},
		{200, `{"result":{}}`},
		{200, `{"result":{"automatedSolution":{"id":5,"title":"HR","typeIds":["1",2]}}}`},
		{200, `{"result":{"automatedSolution":null}}`},
		{200, `{"result":{"automatedSolution":{"id":0,"title":"HR"}}}`},
		{200, `{"result":{"automatedSolution":{"id":"x"}}}`},
		{200, `{"result":{"result":{"a":1},"result_error":[],"result_time":[]}}`},
		{200, `{"result":{"result":[],"result_error":{"a":{"error":"ERROR_CORE","error_description":"x"}}}}`},
		{200, `{"error":"","result":7}`},
		{200, `{"error":null,"result":7}`},
		{200, `{"error":false,"result":7}`},
		{200, `{"error":{"code":1},"result":7}`},
		{200, `{"res`},
		{200, ``},
		{200, `null`},
		{200, `[]`},
		{200, `"ok"`},
		{200, `{"result":18}{"result":19}`},
		{201, `{"result":18}`},
		{204, ``},
		{302, `{"result":18}`},
		{400, `{"error":"ERROR_CORE","error_description":"Parent department not found"}`},
		{401, `{"error":"expired_token","error_description":"The access token provided has expired."}`},
		{429, `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked"}`},
		{500, `{"result":18}`},
		{502, `<html><body><h1>502 Bad Gateway</h1></body></html>`},
		{503, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`},
		{200, `{"error":"` + fuzzSecret + `","error_description":"` + fuzzSecret + `"}`},
		{500, `<p>` + fuzzSecret + `</p>`},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body))
	}

	ans := &fuzzAnswer{}
	srv := httptest.NewServer(ans)
	f.Cleanup(srv.Close)
	c, err := NewWebhook(srv.URL + "/rest/1/" + fuzzSecret + "/")
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 200 || status > 599 {
			// net/http refuses to write other codes (1xx are informational).
			status = 200 + int(uint(status)%400)
		}
		if status == http.StatusNoContent || status == http.StatusNotModified {
			body = nil // no body allowed
		}
		ctype := "application/json"
		if bytes.HasPrefix(bytes.TrimSpace(body), []byte("<")) {
			ctype = "text/html"
		}
		ans.set(status, ctype, body)

		checkErr := func(what string, err error) {
			t.Helper()
			var be *Error
			var te *TransportError
			if !errors.As(err, &be) && !errors.As(err, &te) {
				t.Fatalf("%s: error %T %q is neither *Error nor *TransportError", what, err, err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("%s: error text leaks the webhook code: %q", what, err)
			}
		}

		wantID, wantOK := successOracle(status, body)
		id, _, err := c.AddDepartment(ctx, DepartmentFields{Name: "X", Parent: 1})
		switch {
		case err == nil && !wantOK:
			t.Fatalf("department.add: HTTP %d %q reported as success with ID %d", status, body, id)
		case err == nil && id != wantID:
			t.Fatalf("department.add: HTTP %d %q: ID %d, want %d", status, body, id, wantID)
		case err != nil && wantOK:
			t.Fatalf("department.add: valid success HTTP %d %q refused: %v", status, body, err)
		case err != nil:
			checkErr("department.add", err)
		}

		ws, _, err := c.AddAutomatedSolution(ctx, AutomatedSolutionFields{Title: "HR"})
		if err == nil {
			// A success needs result.automatedSolution.id positive.
			var env struct {
				Result struct {
					AS map[string]json.RawMessage `json:"automatedSolution"`
				} `json:"result"`
			}
			_ = json.Unmarshal(body, &env)
			wid, ok := validID(env.Result.AS["id"])
			if _, envOK := successOracleAny(status, body); !envOK || !ok || ws.ID != wid {
				t.Fatalf("crm.automatedsolution.add: HTTP %d %q reported as success with %+v", status, body, ws)
			}
		} else {
			checkErr("crm.automatedsolution.add", err)
		}

		_, _, err = c.Batch(ctx, false, []BatchCommand{
			{Key: "a", Method: "department.add", Params: map[string]any{"NAME": "A", "PARENT": 1}},
			{Key: "b", Method: "department.add", Params: map[string]any{"NAME": "B", "PARENT": "$result[a]"}},
		})
		if err != nil {
			checkErr("batch", err)
		}
	})
}

// successOracleAny is successOracle without the ID rule: a 2xx JSON object
// with a result and no error code.
func successOracleAny(status int, body []byte) (json.RawMessage, bool) {
	if status < 200 || status > 299 {
		return nil, false
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil || env == nil {
		return nil, false
	}
	if e, ok := env["error"]; ok {
		switch strings.TrimSpace(string(e)) {
		case "null", "false", `""`:
		default:
			return nil, false
		}
	}
	r, ok := env["result"]
	return r, ok
}
