package b24test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveToken is the OAuth token endpoint (/oauth/token/): a refresh grant
// rotates both tokens; the used refresh token stops working. Every request
// counts in Stats.TokenRequests, answered or refused.
func (p *Portal) serveToken(w http.ResponseWriter, r *http.Request) (int, string) {
	in, _, err := readParams(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.TokenRequests++
	if err != nil {
		return oauthError(w, errTokenRequest)
	}
	get := func(k string) string { return asString(in[k]) }
	if get("grant_type") != "refresh_token" {
		return oauthError(w, errUnknownGrant)
	}
	okID := get("client_id") == p.cfg.OAuth.ClientID
	okSecret := subtleEq(get("client_secret"), p.cfg.OAuth.ClientSecret)
	if !okID || !okSecret {
		return oauthError(w, errBadClient)
	}
	if aerr := p.cond.tokenError(); aerr != nil {
		return oauthError(w, aerr)
	}
	old := get("refresh_token")
	if !p.refresh[old] {
		return oauthError(w, errBadGrant)
	}
	delete(p.refresh, old)
	access, refresh := randomHex(16), randomHex(16)
	now := p.cfg.Clock()
	exp := now.Add(p.cfg.OAuth.AccessTTL)
	p.access[access] = exp
	p.refresh[refresh] = true
	p.stats.Refreshes++
	return writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  access,
		"refresh_token": refresh,
		"expires_in":    int64(p.cfg.OAuth.AccessTTL / time.Second),
		"expires":       exp.Unix(),
		"scope":         "department,crm",
		"domain":        r.Host,
		"member_id":     "b24sim",
		"user_id":       p.cfg.WebhookUserID,
		"status":        "L",
	}), "ok"
}

func oauthError(w http.ResponseWriter, e *apiError) (int, string) {
	return writeError(w, e), e.code
}

// simRoutes are the /_sim/ endpoints by "METHOD name"; the boolean
// conditions (POST /_sim/NAME?on=1) are in switches.
var simRoutes = map[string]func(p *Portal, w http.ResponseWriter, r *http.Request){
	"GET stats":       func(p *Portal, w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Stats()) },
	"GET departments": func(p *Portal, w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Departments()) },
	"GET workplaces":  func(p *Portal, w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Workplaces()) },
	"GET faults":      func(p *Portal, w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Faults()) },
	"GET conditions":  func(p *Portal, w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Conditions()) },
	"POST faults":     (*Portal).simFaults,
	"POST conditions": (*Portal).simConditions,
	"POST block":      (*Portal).simBlock,
	"POST move": func(p *Portal, w http.ResponseWriter, r *http.Request) {
		p.MoveTo(r.URL.Query().Get("to"))
		writeJSON(w, http.StatusOK, p.Conditions())
	},
}

// serveSim answers the /_sim/ control endpoints (no authentication: the
// simulator is a local test tool).
func (p *Portal) serveSim(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/_sim/"), "/")
	if route, ok := simRoutes[r.Method+" "+name]; ok {
		route(p, w, r)
		return
	}
	for _, s := range switches {
		if r.Method == http.MethodPost && name == s.name {
			on := r.URL.Query().Get("on")
			p.updateConditions(func(c *Conditions) { *s.field(c) = on == "1" || on == "true" })
			writeJSON(w, http.StatusOK, p.Conditions())
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown simulator endpoint"})
}

// simFaults is POST /_sim/faults: a JSON Faults replaces the current one.
func (p *Portal) simFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if !decodeSimBody(w, r, &f) {
		return
	}
	if err := f.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	p.SetFaults(f)
	writeJSON(w, http.StatusOK, f.withDefaults())
}

// simConditions is POST /_sim/conditions: a JSON Conditions replaces the
// current one.
func (p *Portal) simConditions(w http.ResponseWriter, r *http.Request) {
	var c Conditions
	if !decodeSimBody(w, r, &c) {
		return
	}
	p.SetConditions(c)
	writeJSON(w, http.StatusOK, c)
}

// simBlock is POST /_sim/block?method=M&seconds=N.
func (p *Portal) simBlock(w http.ResponseWriter, r *http.Request) {
	method := r.URL.Query().Get("method")
	secs, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
	if method == "" || err != nil || secs < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want ?method=NAME&seconds=N"})
		return
	}
	p.BlockMethod(method, time.Duration(secs*float64(time.Second)))
	writeJSON(w, http.StatusOK, map[string]any{"method": normMethod(method), "seconds": secs})
}

// decodeSimBody decodes a JSON body into v, answering 400 when it cannot.
func decodeSimBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return false
	}
	return true
}
