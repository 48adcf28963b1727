package b24

// Reading an answer: the one place where what the portal (or anything in
// between) sent becomes an envelope, an *Error or a *TransportError.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// envelope is a decoded answer. Its keys match exactly (see UnmarshalJSON).
type envelope struct {
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
	Desc   json.RawMessage `json:"error_description"`
	Total  json.RawMessage `json:"total"`
	Next   json.RawMessage `json:"next"`
	Time   json.RawMessage `json:"time"`

	decoded *Meta // meta's result, decoded once (the observer and the caller both ask)
}

// UnmarshalJSON matches the answer's keys exactly. encoding/json would fill
// Result from "Result" or "rEsult" too, and an answer that is not the
// portal's must never pass for a success.
func (e *envelope) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("answer is null")
	}
	*e = envelope{Result: m["result"], Error: m["error"], Desc: m["error_description"],
		Total: m["total"], Next: m["next"], Time: m["time"]}
	return nil
}

func (e *envelope) meta() Meta {
	if e.decoded == nil {
		m := e.decodeMeta()
		e.decoded = &m
	}
	return *e.decoded
}

func (e *envelope) decodeMeta() Meta {
	var m Meta
	if len(e.Time) > 0 {
		_ = json.Unmarshal(e.Time, &m.Time) // tolerant, never fails
	}
	var n flexInt
	if len(e.Total) > 0 {
		_ = n.UnmarshalJSON(e.Total)
		m.Total = int(n)
	}
	n = 0
	if len(e.Next) > 0 {
		_ = n.UnmarshalJSON(e.Next)
		m.Next = int(n)
	}
	return m
}

// portalMoved is the error of a 3xx answer: PORTAL_MOVED naming the host of
// its Location and nothing else (the path may carry the webhook secret).
// The portal did nothing, so it is not ambiguous.
func (c *Client) portalMoved(method string, resp *http.Response) *Error {
	desc := "portal moved (redirect without a Location)"
	if u, err := resp.Location(); err == nil && u.Host != "" {
		desc = "portal moved to " + u.Host
	}
	return &Error{Code: CodePortalMoved, Description: Redact(desc, c.secrets()...), HTTPStatus: resp.StatusCode, Method: method}
}

// decodeAnswer checks an answer: an `error` field makes an *Error whatever
// the status; a 2xx with `result` is success; everything else (not JSON, no
// result and no error, a non-2xx without an error code) is an ambiguous
// *TransportError, because the portal may have done the work.
func (c *Client) decodeAnswer(method string, status int, ctype string, raw []byte) (*envelope, error) {
	var env envelope
	// Called directly: json.Unmarshal(raw, &env) would scan raw twice more
	// before handing it to the same method.
	if err := env.UnmarshalJSON(raw); err != nil {
		return nil, &TransportError{Method: method, Ambiguous: true,
			Err: fmt.Errorf("HTTP %d: answer is not Bitrix24 JSON (Content-Type %q, %d bytes: %s)", status, ctype, len(raw), snippet(raw, c.secrets()))}
	}
	if code := errorCode(env.Error); code != "" {
		e := newError(code, env.Desc, c.secrets())
		e.HTTPStatus, e.Method = status, method
		return nil, e
	}
	if status < 200 || status > 299 {
		return nil, &TransportError{Method: method, Ambiguous: true,
			Err: fmt.Errorf("HTTP %d without an error code: %s", status, snippet(raw, c.secrets()))}
	}
	if env.Result == nil {
		return nil, &TransportError{Method: method, Ambiguous: true,
			Err: fmt.Errorf("HTTP %d: answer has neither result nor error: %s", status, snippet(raw, c.secrets()))}
	}
	return &env, nil
}

// newError is the *Error of an answer's (or a batch command's) error code
// and raw error_description (a string, else its JSON text), both redacted of
// secrets: the portal may echo the request URL, webhook code included.
func newError(code string, desc json.RawMessage, secrets []string) *Error {
	var d string
	if err := json.Unmarshal(desc, &d); err != nil {
		d = string(desc)
	}
	return &Error{Code: Redact(code, secrets...), Description: Redact(d, secrets...)}
}

// errorCode returns the `error` field when it is a non-empty string (the
// OAuth server and the portal both send strings); "" when absent.
func errorCode(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	if string(raw) == "null" || string(raw) == "false" {
		return ""
	}
	return "ERROR_UNEXPECTED_ANSWER" // an error we cannot read is still an error
}

// snippet quotes the start of a body for an error text, redacted.
func snippet(raw []byte, secrets []string) string {
	const n = 120
	s := Redact(string(raw), secrets...) // before cutting, so no half secret stays
	if len(s) > n {
		s = s[:n] + "…"
	}
	return fmt.Sprintf("%q", s)
}
