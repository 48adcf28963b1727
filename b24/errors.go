package b24

import (
	"errors"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
)

// Class is what an error means to a caller that may retry. It is the single
// place where Bitrix24 error codes get a meaning; the queue layer maps a Class
// to queue behaviour.
type Class int

// The classes. PortalUnavailable came last so that the values of the others
// did not change; String gives each its name.
const (
	OK            Class = iota // nil error
	Permanent                  // the item cannot be created as asked (BX_EMPTY_REQUIRED, ERROR_CORE with a validation message, LIMIT_EXCEEDED, INVALID_REQUEST, every unknown code below HTTP 500): do not retry
	RateLimited                // QUERY_LIMIT_EXCEEDED
	MethodBlocked              // OPERATION_TIME_LIMIT
	Auth                       // expired_token, invalid_token (after the client's one refresh did not help)
	Transient                  // 5xx, INTERNAL_SERVER_ERROR, ERROR_UNEXPECTED_ANSWER, ERROR_CORE without a validation message, network, non-JSON, a refresh the OAuth server did not answer
	// PortalUnavailable: the credential or the portal is unusable, never the
	// item: NO_AUTH_FOUND, INVALID_CREDENTIALS, insufficient_scope,
	// user_access_error, ACCESS_DENIED, PORTAL_DELETED, OVERLOAD_LIMIT,
	// PAYMENT_REQUIRED, PORTAL_MOVED (a redirect), and a token refresh the
	// OAuth server refused (invalid_grant, invalid_client, wrong_client, or
	// any other answer of it below HTTP 500). A caller pauses the portal and
	// keeps the item.
	PortalUnavailable
)

// String returns the class name used in metrics and logs:
// "ok", "permanent", "rate_limited", "method_blocked", "auth", "transient",
// "portal_unavailable".
func (c Class) String() string {
	switch c {
	case OK:
		return "ok"
	case Permanent:
		return "permanent"
	case RateLimited:
		return "rate_limited"
	case MethodBlocked:
		return "method_blocked"
	case Auth:
		return "auth"
	case Transient:
		return "transient"
	case PortalUnavailable:
		return "portal_unavailable"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Error codes the client knows by name. Codes are compared exactly (Bitrix24
// mixes upper and lower case codes).
const (
	CodeQueryLimitExceeded    = "QUERY_LIMIT_EXCEEDED"
	CodeOperationTimeLimit    = "OPERATION_TIME_LIMIT"
	CodeExpiredToken          = "expired_token"
	CodeInvalidToken          = "invalid_token"
	CodeInternalServerError   = "INTERNAL_SERVER_ERROR"
	CodeErrorUnexpectedAnswer = "ERROR_UNEXPECTED_ANSWER"
	CodeErrorCore             = "ERROR_CORE"
	CodeEmptyRequired         = "BX_EMPTY_REQUIRED"
	CodeAccessDenied          = "ACCESS_DENIED"
	CodeLimitExceeded         = "LIMIT_EXCEEDED"
	CodeNoAuthFound           = "NO_AUTH_FOUND"
	CodeInvalidCredentials    = "INVALID_CREDENTIALS"
	CodeInsufficientScope     = "insufficient_scope"
	CodeUserAccessError       = "user_access_error"
	CodeInvalidRequest        = "INVALID_REQUEST"
	CodeOverloadLimit         = "OVERLOAD_LIMIT"
	CodePortalDeleted         = "PORTAL_DELETED"
	CodeManifestNotAvailable  = "ERROR_MANIFEST_IS_NOT_AVAILABLE"
	CodePaymentRequired       = "PAYMENT_REQUIRED"
	// CodePortalMoved is this client's own code, not the portal's: the
	// portal answered a redirect (3xx), as a renamed portal does with its
	// new address. The client never follows it (Go would re-send the call
	// as a GET without its body); the *Error's Description names the new
	// host only, never the Location's path, which may carry the webhook
	// secret.
	CodePortalMoved = "PORTAL_MOVED"
	// Codes of the OAuth server's answer to a token refresh.
	CodeInvalidGrant  = "invalid_grant"
	CodeInvalidClient = "invalid_client"
	CodeWrongClient   = "wrong_client"
)

// methodOAuthToken is the Method of an *Error the OAuth server answered to
// a token refresh.
const methodOAuthToken = "oauth.token"

// portalCodes are the codes of PortalUnavailable: the credential or the
// portal is unusable, whatever the item and the HTTP status (PORTAL_DELETED
// comes with 500, OVERLOAD_LIMIT with 503).
var portalCodes = map[string]bool{
	CodeNoAuthFound:        true,
	CodeInvalidCredentials: true,
	CodeInsufficientScope:  true,
	CodeUserAccessError:    true,
	CodeAccessDenied:       true,
	CodePortalDeleted:      true,
	CodeOverloadLimit:      true,
	CodePaymentRequired:    true,
	CodePortalMoved:        true,
	CodeInvalidGrant:       true,
	CodeInvalidClient:      true,
	CodeWrongClient:        true,
}

// permanentCodes are codes that stay permanent even when the portal answers
// them with a 5xx status.
var permanentCodes = map[string]bool{
	CodeEmptyRequired:        true,
	CodeLimitExceeded:        true,
	CodeInvalidRequest:       true,
	CodeManifestNotAvailable: true,
}

// Error is an error answer of the portal (or of the OAuth server):
// {"error": Code, "error_description": Description}. Method is the REST
// method called (for a batch command, the command's method; "oauth.token"
// for the OAuth server's answer to a token refresh). HTTPStatus is 0 for a
// batch command's error, which has no status of its own (Command is then the
// command's key in its batch, "" for the answer to a request), and for a
// refusal remembered from an earlier refresh (see Token).
type Error struct {
	Code        string
	Description string
	HTTPStatus  int
	Method      string
	Command     string
}

// Error formats the answer; it never contains credentials because the
// client redacts the description when it builds the error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("b24: ")
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteString(": ")
	}
	b.WriteString(e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	return b.String()
}

// Class classifies the answer by its code. The HTTP status only matters for
// codes the client does not know: an unknown code with a 5xx status is
// Transient (a broken proxy or portal), below 500 it is Permanent.
// ERROR_CORE is Permanent only with one of the ValidationMessages; any other
// is Transient (and ambiguous, see IsAmbiguous): department.add saves the
// department, then sets UF_HEAD, and answers ERROR_CORE when that second
// step fails although the department exists; ERROR_CORE also wraps database
// errors. An answer
// of the OAuth server to a token refresh is PortalUnavailable unless it came
// with a 5xx status (Transient): the refresh token or the application was
// refused, which no retry of the item changes.
func (e *Error) Class() Class {
	if e.Method == methodOAuthToken && !portalCodes[e.Code] {
		if e.HTTPStatus >= 500 {
			return Transient
		}
		return PortalUnavailable
	}
	switch e.Code {
	case CodeQueryLimitExceeded:
		return RateLimited
	case CodeOperationTimeLimit:
		return MethodBlocked
	case CodeExpiredToken, CodeInvalidToken:
		return Auth
	case CodeInternalServerError, CodeErrorUnexpectedAnswer:
		return Transient
	case CodeErrorCore:
		if IsValidationMessage(e.Description) {
			return Permanent
		}
		return Transient
	}
	if portalCodes[e.Code] {
		return PortalUnavailable
	}
	if permanentCodes[e.Code] || strings.HasPrefix(e.Code, "ERROR_BATCH_") {
		return Permanent
	}
	if e.HTTPStatus >= 500 {
		return Transient
	}
	return Permanent
}

// TransportError is a failure to get a decodable answer: a network error, a
// timeout, or a body that is not a Bitrix24 JSON answer. Ambiguous is true
// when the request may have reached the portal and done its work (it was
// written before the failure, or an answer came back that cannot be read).
// A call whose OAuth token refresh failed also ends in a TransportError, not
// ambiguous (the call was not sent, or refused with expired_token), which
// wraps the refresh's failure: the OAuth server's *Error when it answered
// one, so that Classify sees its code.
type TransportError struct {
	Method    string
	Err       error
	Ambiguous bool
}

// Error describes the failure; the client redacts URLs in Err before it
// builds the error, so the text holds no credentials.
func (e *TransportError) Error() string {
	s := "b24: " + e.Method + ": "
	if e.Err != nil {
		s += e.Err.Error()
	} else {
		s += "transport error"
	}
	if e.Ambiguous {
		s += " (outcome unknown: the request may have reached the portal)"
	}
	return s
}

// Unwrap returns the underlying error (context.DeadlineExceeded, *net.OpError...).
func (e *TransportError) Unwrap() error { return e.Err }

// Classify tells a caller what err means: OK for nil; the class of the first
// *Error in the chain (by its code, see (*Error).Class), also when a
// *TransportError wraps it (a refused token refresh); Transient for a
// *TransportError and for every other error (context.Canceled, a pacer
// error), since nothing says the portal refused the request.
func Classify(err error) Class {
	if err == nil {
		return OK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Class()
	}
	return Transient
}

// IsAmbiguous reports whether the request that failed with err may have
// reached the portal and done its work, so that a create must look up before
// it tries again. True for a *TransportError after the request was written
// (timeout, reset, EOF) or with an undecodable answer, and for a Transient
// *Error (5xx, INTERNAL_SERVER_ERROR, ERROR_CORE without a validation
// message) answering a request; false for limit answers (503
// QUERY_LIMIT_EXCEEDED, 429 OPERATION_TIME_LIMIT), dial errors, definite API
// errors, PortalUnavailable errors (the portal did nothing), a failed token
// refresh (the call was not sent), errors that are not ours, and the error
// of a command in an answered batch (Error.Command set): the portal reports
// that command returned no result, which it does for a command it did not
// run. The one exception among commands is ERROR_CORE without a validation
// message: department.add may have saved the department before failing.
func IsAmbiguous(err error) bool {
	if err == nil {
		return false
	}
	if te, ok := errors.AsType[*TransportError](err); ok {
		return te.Ambiguous
	}
	if e, ok := errors.AsType[*Error](err); ok {
		if e.Command != "" {
			return e.Code == CodeErrorCore && e.Class() == Transient
		}
		return e.Class() == Transient
	}
	return false
}

// ValidationMessages are the descriptions with which ERROR_CORE is a
// validation error of department.add, and so Permanent: the department was
// not saved. Any other ERROR_CORE is Transient and ambiguous (see
// (*Error).Class). IsValidationMessage compares a description with them
// after dropping HTML tags (the portal appends <br>) and folding space and
// case. Do not change the list at run time.
var ValidationMessages = []string{
	// NAME missing: the portal's answer (Russian portals), as the
	// department.add page of the REST docs (bitrix24/b24restdocs,
	// api-reference/departments/department-add.md, Russian edition) gives it.
	"Не введено название раздела.",
	// The same, as the English edition of that page words it.
	"The department name is not provided.",
	// A PARENT that makes a second top-level department (a missing or wrong
	// PARENT): the Russian edition of the same page.
	"В структуре компании должен быть только один раздел верхнего уровня",
	// The same, English edition.
	"There can only be one top-level department in the company structure",
	// PARENT names no department: the simulator's wording (b24/b24test);
	// the docs give no portal wording for it (the portal answers the
	// top-level message above).
	"Parent department not found",
}

// htmlTag matches an HTML tag such as <br> or <br />.
var htmlTag = regexp.MustCompile(`<[^>]*>`)

// IsValidationMessage reports whether desc, an ERROR_CORE description, is
// one of the ValidationMessages: compared without HTML tags and entities,
// with runs of space as one space, trimmed, case-insensitively.
func IsValidationMessage(desc string) bool {
	d := normalizeMessage(desc)
	if d == "" {
		return false
	}
	for _, m := range ValidationMessages {
		if strings.EqualFold(d, normalizeMessage(m)) {
			return true
		}
	}
	return false
}

func normalizeMessage(s string) string {
	s = html.UnescapeString(htmlTag.ReplaceAllString(s, " "))
	return strings.Join(strings.Fields(s), " ")
}

// redacted replaces each secret in text.
const redacted = "***"

// Redact returns s with every non-empty secret replaced by "***", also in its
// URL query- and path-escaped forms (tokens travel in query strings). Safe to
// call with no secrets. Longer secrets are replaced first so that a secret
// containing another is not half-redacted.
func Redact(s string, secrets ...string) string {
	var forms []string
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		forms = append(forms, sec, url.QueryEscape(sec), url.PathEscape(sec))
	}
	// Longest first.
	for i := 1; i < len(forms); i++ {
		for j := i; j > 0 && len(forms[j]) > len(forms[j-1]); j-- {
			forms[j], forms[j-1] = forms[j-1], forms[j]
		}
	}
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, redacted)
	}
	return s
}

// redactError rewrites err so that its text holds no secret: a *url.Error
// (which embeds the full request URL) gets a redacted copy of its URL and
// keeps its cause for errors.Is/As; any other error whose text contains a
// secret is replaced by a plain error with the redacted text.
func redactError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	if ue, ok := err.(*url.Error); ok {
		inner := ue.Err
		if inner != nil && Redact(inner.Error(), secrets...) != inner.Error() {
			inner = redactError(inner, secrets...)
		}
		return &url.Error{Op: ue.Op, URL: Redact(ue.URL, secrets...), Err: inner}
	}
	if msg := Redact(err.Error(), secrets...); msg != err.Error() {
		// Keep the cause for errors.Is (context.DeadlineExceeded...) only
		// when its own text is clean.
		cause := errors.Unwrap(err)
		if cause != nil && Redact(cause.Error(), secrets...) != cause.Error() {
			cause = nil
		}
		return &redactedError{msg: msg, cause: cause}
	}
	return err
}

// redactedError carries a redacted message and, when its text is free of
// secrets, the cause.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }
