package b24test

import (
	"net/http"
	"strings"
)

// Conditions are portal-level states an operator or Bitrix24 puts a portal
// in. Each refuses REST calls until it is lifted; none is rolled by dice.
// They start as Config.Conditions and change with the Portal's setters or
// the /_sim/ endpoints.
type Conditions struct {
	// MovedTo, when set, is the portal's new address: every REST request
	// is answered 302 with Location MovedTo + the same path and query, and
	// no body. A bare host ("new.bitrix24.ru") gets "https://"; a value
	// with a scheme ("http://127.0.0.1:8091") is used as it is.
	MovedTo string `json:"moved_to"`
	// Deleted: every REST call answers PORTAL_DELETED.
	Deleted bool `json:"deleted"`
	// Overload: every REST call answers 503 OVERLOAD_LIMIT (a manual block
	// by Bitrix24 support).
	Overload bool `json:"overload"`
	// PaymentRequired: every REST call answers 402 PAYMENT_REQUIRED.
	PaymentRequired bool `json:"payment_required"`
	// WebhookRevoked: webhook calls answer 401 INVALID_CREDENTIALS
	// ("Invalid request credentials"); OAuth calls are not affected.
	WebhookRevoked bool `json:"webhook_revoked"`
	// AccessDenied: authenticated calls answer 403 ACCESS_DENIED.
	AccessDenied bool `json:"access_denied"`
	// InsufficientScope: authenticated calls answer 401 insufficient_scope.
	InsufficientScope bool `json:"insufficient_scope"`
	// UserAccessError: authenticated calls answer 401 user_access_error.
	UserAccessError bool `json:"user_access_error"`
	// RefreshRevoked: the token endpoint answers 400 invalid_grant to every
	// refresh (the app's refresh tokens were revoked).
	RefreshRevoked bool `json:"refresh_revoked"`
	// ClientRevoked: the token endpoint answers 401 invalid_client to every
	// refresh (the app was removed or its secret changed).
	ClientRevoked bool `json:"client_revoked"`
}

// switchDef names one boolean condition for the /_sim/ endpoint
// POST /_sim/NAME?on=1 and the flag --NAME.
type switchDef struct {
	name, usage string
	field       func(*Conditions) *bool
}

// switches lists every boolean condition.
var switches = []switchDef{
	{"deleted", "answer PORTAL_DELETED to every REST call", func(c *Conditions) *bool { return &c.Deleted }},
	{"overload", "answer 503 OVERLOAD_LIMIT to every REST call", func(c *Conditions) *bool { return &c.Overload }},
	{"payment-required", "answer 402 PAYMENT_REQUIRED to every REST call", func(c *Conditions) *bool { return &c.PaymentRequired }},
	{"webhook-revoked", "answer 401 INVALID_CREDENTIALS to webhook calls", func(c *Conditions) *bool { return &c.WebhookRevoked }},
	{"access-denied", "answer 403 ACCESS_DENIED to authenticated calls", func(c *Conditions) *bool { return &c.AccessDenied }},
	{"insufficient-scope", "answer 401 insufficient_scope to authenticated calls", func(c *Conditions) *bool { return &c.InsufficientScope }},
	{"user-access-error", "answer 401 user_access_error to authenticated calls", func(c *Conditions) *bool { return &c.UserAccessError }},
	{"refresh-revoked", "answer invalid_grant to every token refresh", func(c *Conditions) *bool { return &c.RefreshRevoked }},
	{"client-revoked", "answer invalid_client to every token refresh", func(c *Conditions) *bool { return &c.ClientRevoked }},
}

// Errors of the conditions. Statuses follow the official system error table
// (bitrix24/b24restdocs error-codes); OVERLOAD_LIMIT is 503 as on the method
// pages. Clients must classify by the code, never by the status.
var (
	errDeleted      = &apiError{http.StatusForbidden, "PORTAL_DELETED", "Portal was deleted"}
	errOverload     = &apiError{http.StatusServiceUnavailable, "OVERLOAD_LIMIT", "REST API is blocked due to overload"}
	errPayment      = &apiError{http.StatusPaymentRequired, "PAYMENT_REQUIRED", "Subscription has been ended"}
	errRevoked      = &apiError{http.StatusUnauthorized, "INVALID_CREDENTIALS", "Invalid request credentials"}
	errScopeWebhook = &apiError{http.StatusUnauthorized, "insufficient_scope", "The request requires higher privileges than provided by the webhook token"}
	errScopeOAuth   = &apiError{http.StatusUnauthorized, "insufficient_scope", "The request requires higher privileges than provided by the access token"}
	errUserAccess   = &apiError{http.StatusUnauthorized, "user_access_error", "The user does not have access to the application"}
)

// portalStateError is the refusal of a portal-level condition checked
// before authentication, or nil.
func (c Conditions) portalStateError() *apiError {
	switch {
	case c.Deleted:
		return errDeleted
	case c.Overload:
		return errOverload
	case c.PaymentRequired:
		return errPayment
	}
	return nil
}

// accessError is the refusal of a condition checked after authentication,
// or nil.
func (c Conditions) accessError(oauth bool) *apiError {
	switch {
	case c.AccessDenied:
		return errAccess
	case c.InsufficientScope && oauth:
		return errScopeOAuth
	case c.InsufficientScope:
		return errScopeWebhook
	case c.UserAccessError:
		return errUserAccess
	}
	return nil
}

// tokenError is the refusal of the token endpoint's conditions, or nil.
func (c Conditions) tokenError() *apiError {
	switch {
	case c.ClientRevoked:
		return errBadClient
	case c.RefreshRevoked:
		return errBadGrant
	}
	return nil
}

// location is where a moved portal sends a request for requestURI.
func (c Conditions) location(requestURI string) string {
	base := strings.TrimSuffix(c.MovedTo, "/")
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	return base + requestURI
}

// Conditions returns the portal's current conditions.
func (p *Portal) Conditions() Conditions {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cond
}

// SetConditions replaces every condition at once.
func (p *Portal) SetConditions(c Conditions) {
	p.updateConditions(func(cur *Conditions) { *cur = c })
}

func (p *Portal) updateConditions(f func(*Conditions)) {
	p.mu.Lock()
	f(&p.cond)
	p.mu.Unlock()
}

// SetAccessDenied makes every authenticated REST call answer 403
// ACCESS_DENIED while on.
func (p *Portal) SetAccessDenied(on bool) {
	p.updateConditions(func(c *Conditions) { c.AccessDenied = on })
}

// SetWebhookRevoked revokes (on) or restores (off) the inbound webhook:
// while revoked, webhook calls answer 401 INVALID_CREDENTIALS.
func (p *Portal) SetWebhookRevoked(on bool) {
	p.updateConditions(func(c *Conditions) { c.WebhookRevoked = on })
}

// SetDeleted deletes (on) or restores (off) the portal: while deleted,
// every REST call answers PORTAL_DELETED.
func (p *Portal) SetDeleted(on bool) {
	p.updateConditions(func(c *Conditions) { c.Deleted = on })
}

// MoveTo renames the portal to newHost (see Conditions.MovedTo): every REST
// request is answered 302 to it. An empty newHost moves it back.
func (p *Portal) MoveTo(newHost string) {
	p.updateConditions(func(c *Conditions) { c.MovedTo = newHost })
}

// SetOverload puts (on) or lifts (off) the manual overload block: while
// on, every REST call answers 503 OVERLOAD_LIMIT.
func (p *Portal) SetOverload(on bool) {
	p.updateConditions(func(c *Conditions) { c.Overload = on })
}

// SetPaymentRequired makes every REST call answer 402 PAYMENT_REQUIRED
// while on.
func (p *Portal) SetPaymentRequired(on bool) {
	p.updateConditions(func(c *Conditions) { c.PaymentRequired = on })
}

// SetInsufficientScope makes every authenticated REST call answer
// insufficient_scope while on.
func (p *Portal) SetInsufficientScope(on bool) {
	p.updateConditions(func(c *Conditions) { c.InsufficientScope = on })
}

// SetUserAccessError makes every authenticated REST call answer
// user_access_error while on.
func (p *Portal) SetUserAccessError(on bool) {
	p.updateConditions(func(c *Conditions) { c.UserAccessError = on })
}

// SetRefreshRevoked makes the token endpoint answer invalid_grant to every
// refresh while on.
func (p *Portal) SetRefreshRevoked(on bool) {
	p.updateConditions(func(c *Conditions) { c.RefreshRevoked = on })
}

// SetClientRevoked makes the token endpoint answer invalid_client to every
// refresh while on.
func (p *Portal) SetClientRevoked(on bool) {
	p.updateConditions(func(c *Conditions) { c.ClientRevoked = on })
}
