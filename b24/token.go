package b24

// The OAuth token pair, the store that shares it between processes, and
// the rules for which of two pairs a client holds, refusals included.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Token is an OAuth token pair. ExpiresAt is when AccessToken expires (zero
// when unknown); it also orders pairs: the later ExpiresAt is the newer pair.
//
// RefusedCode and RefusedDescription are set when the OAuth server refused
// RefreshToken (invalid_grant, invalid_client or wrong_client; the
// description redacted of secrets). Such a pair is dead, and the OAuth
// server blocks applications that refresh too often, so no client asks with
// that refresh token again: the refusing client saves the pair, marked, to
// its TokenStore, and every client that loads it (or holds the same
// refresh token and loads it when it would refresh) fails at once with the
// refusal's *Error (PortalUnavailable). A pair with another refresh token
// clears the refusal: stored by anyone (an operator who registered the
// application again), or given as OAuthConfig.Token.
type Token struct {
	AccessToken, RefreshToken       string
	ExpiresAt                       time.Time
	RefusedCode, RefusedDescription string
}

// Refused reports whether the OAuth server refused t's refresh token.
func (t Token) Refused() bool { return t.RefusedCode != "" }

// Format prints the pair with both tokens replaced by "***" (and whether
// each is set), and a refusal's code, for every verb, so that logging a
// Token never leaks it.
func (t Token) Format(f fmt.State, _ rune) {
	mask := func(s string) string {
		if s == "" {
			return `""`
		}
		return redacted
	}
	fmt.Fprintf(f, "b24.Token{AccessToken:%s RefreshToken:%s ExpiresAt:%s",
		mask(t.AccessToken), mask(t.RefreshToken), t.ExpiresAt.Format(time.RFC3339))
	if t.Refused() {
		fmt.Fprintf(f, " Refused:%s", t.RefusedCode)
	}
	_, _ = f.Write([]byte("}"))
}

// TokenStore keeps the newest token pair of a portal across processes (a
// refresh token is single-use: whoever refreshes must publish the new pair;
// a refused refresh token is published too, marked, so that nobody asks with
// it again). Load returns ok=false when nothing is stored. Implementations
// must keep every field of Token and be safe for concurrent use.
//
// The store has no compare-and-swap: a refusal is saved only when the store
// holds no working pair with another refresh token (then that pair is
// adopted instead), but a pair saved by another process between that check
// and the save is overwritten. That process keeps its pair in memory and
// saves the next one when it refreshes.
type TokenStore interface {
	Load(ctx context.Context, key string) (Token, bool, error)
	Save(ctx context.Context, key string, t Token) error
}

// empty reports whether t holds no token at all.
func (t Token) empty() bool { return t.AccessToken == "" && t.RefreshToken == "" }

// same reports whether a and b are the same pair in the same state.
func same(a, b Token) bool {
	return a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.RefusedCode == b.RefusedCode
}

// newer reports whether a is a newer pair than b.
func newer(a, b Token) bool {
	if a.empty() {
		return false
	}
	if b.empty() {
		return true
	}
	return a.ExpiresAt.After(b.ExpiresAt)
}

// pick returns the pair a client holding cur keeps after loading st from
// the TokenStore:
//   - with cur's refresh token, st wins when it carries a refusal or is
//     newer, unless cur is refused (a refusal is never forgotten for its
//     refresh token);
//   - a refused st with another refresh token says nothing of cur's: cur
//     stays (a configured new pair is tried);
//   - a working st with another refresh token wins when it is newer or cur
//     is refused (the new pair clears the refusal).
func pick(cur, st Token) Token {
	switch {
	case st.empty():
		return cur
	case st.RefreshToken == cur.RefreshToken:
		if !cur.Refused() && (st.Refused() || newer(st, cur)) {
			return st
		}
		return cur
	case st.Refused():
		return cur
	case cur.Refused() || newer(st, cur):
		return st
	}
	return cur
}

// refusalCodes are the OAuth server's answers that refuse a refresh token
// for good.
var refusalCodes = map[string]bool{CodeInvalidGrant: true, CodeInvalidClient: true, CodeWrongClient: true}

// asRefusal returns the OAuth server's *Error when err refuses the refresh
// token for good.
func asRefusal(err error) (*Error, bool) {
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Method != methodOAuthToken || !refusalCodes[e.Code] {
		return nil, false
	}
	return e, true
}

// refused returns t marked refused by e.
func (t Token) refused(e *Error) Token {
	t.RefusedCode, t.RefusedDescription = e.Code, e.Description
	return t
}

// refusedError is the error of a call made with a pair whose refresh token
// was refused earlier: the refusal again, without asking the OAuth server.
func refusedError(t Token) error {
	return fmt.Errorf("refresh token refused earlier, not asked again until a new token pair is stored: %w",
		&Error{Code: t.RefusedCode, Description: t.RefusedDescription, Method: methodOAuthToken})
}
