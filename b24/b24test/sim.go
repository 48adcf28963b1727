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
// rotates both tokens; the used refresh token stops working.
func (p *Portal) serveToken(w http.ResponseWriter, r *http.Request) (int, string) {
	in, _, err := readParams(r)
	if err != nil {
		return oauthError(w, http.StatusBadRequest, "invalid_request", "cannot decode request")
	}
	get := func(k string) string { return asString(in[k]) }
	if get("grant_type") != "refresh_token" {
		return oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be refresh_token")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	okID := get("client_id") == p.cfg.OAuth.ClientID
	okSecret := subtleEq(get("client_secret"), p.cfg.OAuth.ClientSecret)
	if !okID || !okSecret {
		return oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client credentials")
	}
	old := get("refresh_token")
	if !p.refresh[old] {
		return oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh token")
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

func oauthError(w http.ResponseWriter, status int, code, desc string) (int, string) {
	return writeJSON(w, status, map[string]string{"error": code, "error_description": desc}), code
}

// serveSim answers the /_sim/ control endpoints (no authentication: the
// simulator is a local test tool).
func (p *Portal) serveSim(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + strings.TrimSuffix(r.URL.Path, "/")
	switch route {
	case "GET /_sim/stats":
		writeJSON(w, http.StatusOK, p.Stats())
	case "GET /_sim/departments":
		writeJSON(w, http.StatusOK, p.Departments())
	case "GET /_sim/workplaces":
		writeJSON(w, http.StatusOK, p.Workplaces())
	case "POST /_sim/faults":
		var f Faults
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err == nil {
			err = json.Unmarshal(body, &f)
		}
		if err == nil {
			err = f.validate()
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		p.SetFaults(f)
		writeJSON(w, http.StatusOK, f.withDefaults())
	case "POST /_sim/block":
		method := r.URL.Query().Get("method")
		secs, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		if method == "" || err != nil || secs < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want ?method=NAME&seconds=N"})
			return
		}
		p.BlockMethod(method, time.Duration(secs*float64(time.Second)))
		writeJSON(w, http.StatusOK, map[string]any{"method": normMethod(method), "seconds": secs})
	case "POST /_sim/access-denied":
		on := r.URL.Query().Get("on")
		p.SetAccessDenied(on == "1" || on == "true")
		writeJSON(w, http.StatusOK, map[string]bool{"access_denied": on == "1" || on == "true"})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown simulator endpoint"})
	}
}
