package b24test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// reqCtx is what a REST request says about itself: the method and the
// credentials it came with.
type reqCtx struct {
	method       string
	oauth        bool
	user, secret string // webhook path
	token        string // OAuth access token, once authenticated
	base         string // scheme://host the request came to
}

// parseRESTPath reads /rest/USER/SECRET/METHOD or /rest/METHOD.
func parseRESTPath(r *http.Request) (*reqCtx, bool) {
	rc := &reqCtx{base: "http://" + r.Host}
	if r.TLS != nil {
		rc.base = "https://" + r.Host
	}
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/rest/"), "/")
	switch len(segs) {
	case 1:
		rc.oauth, rc.method = true, segs[0]
	case 3:
		rc.user, rc.secret, rc.method = segs[0], segs[1], segs[2]
	default:
		return nil, false
	}
	rc.method = normMethod(rc.method)
	return rc, true
}

// urlOf is the URL of a call of method with the request's credentials, as
// an error description that echoes it shows it.
func (rc *reqCtx) urlOf(method string) string {
	if rc.oauth {
		return rc.base + "/rest/" + method + "?auth=" + rc.token
	}
	return rc.base + "/rest/" + rc.user + "/" + rc.secret + "/" + method
}

// serveREST handles one REST call and returns what to log.
func (p *Portal) serveREST(w http.ResponseWriter, r *http.Request) (method string, status int, outcome string) {
	rc, ok := parseRESTPath(r)
	if !ok {
		return "", writeError(w, errNotFound), errNotFound.code
	}
	in, order, err := readParams(r)
	if err != nil {
		return rc.method, writeError(w, errBadRequest), errBadRequest.code
	}

	p.mu.Lock()
	loc, aerr := p.admitLocked(r, rc, in)
	var fp faultPlan
	switch {
	case loc != "":
		p.countLocked(rc.method, "redirect")
	case aerr != nil:
		p.countLocked(rc.method, aerr.code)
	default:
		fp = p.planLocked()
	}
	p.mu.Unlock()

	switch {
	case loc != "":
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
		return rc.method, http.StatusFound, "redirect"
	case aerr != nil:
		return rc.method, writeError(w, aerr), aerr.code
	case fp.internal:
		return rc.method, writeError(w, errInternal), errInternal.code
	case fp.badGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n")
		return rc.method, http.StatusBadGateway, "bad_gateway"
	}
	if fp.hold {
		p.holdFor(fp.holdDelay) // not the request's context: the work happens anyway
	}
	if p.cfg.Latency > 0 {
		sleepCtx(r.Context(), p.cfg.Latency)
	}
	rep := p.run(rc, in, order, fp.hold)
	status, outcome = p.answer(w, r, rep, fp)
	return rc.method, status, outcome
}

// admitLocked runs the checks before a REST request may run, in order: the
// query bucket, a moved portal (the 302 Location is returned), the
// portal's state, authentication, access.
func (p *Portal) admitLocked(r *http.Request, rc *reqCtx, in params) (location string, aerr *apiError) {
	now := p.cfg.Clock()
	if r.Method == http.MethodGet {
		p.stats.RedirectedGETs++
	}
	if !p.bucket.admit(now) {
		p.stats.Rejected503++
		return "", errQueryLimit
	}
	p.stats.Requests++
	p.times = append(p.times, now)
	if len(p.times) > maxTimestamps {
		p.times = append(p.times[:0], p.times[len(p.times)/2:]...)
	}
	if p.cond.MovedTo != "" {
		return p.cond.location(r.URL.RequestURI()), nil
	}
	if aerr := p.cond.portalStateError(); aerr != nil {
		return "", aerr
	}
	if aerr := p.authLocked(rc, in, now); aerr != nil {
		return "", aerr
	}
	return "", p.cond.accessError(rc.oauth)
}

// run executes the request's method (or batch) under the lock.
func (p *Portal) run(rc *reqCtx, in params, order []string, held bool) reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	if held {
		p.stats.Held++
	}
	now := p.cfg.Clock()
	if rc.method == "batch" {
		return p.batchLocked(in, order, rc, now)
	}
	return p.singleLocked(callCtx{method: rc.method, in: in, now: now, rc: rc})
}

// answer writes rep, applying the faults that act after the work.
func (p *Portal) answer(w http.ResponseWriter, r *http.Request, rep reply, fp faultPlan) (status int, outcome string) {
	if !rep.executed {
		return writeJSON(w, rep.status, rep.body), rep.outcome
	}
	switch {
	case fp.lost:
		dropConnection(w)
		return 0, "lost_response"
	case fp.slow:
		sleepCtx(r.Context(), fp.slowDelay)
	}
	if fp.malformed {
		b, _ := json.Marshal(rep.body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b[:len(b)/2])
		return http.StatusOK, "malformed"
	}
	return writeJSON(w, rep.status, rep.body), rep.outcome
}

// authLocked checks the webhook path or the OAuth token and removes "auth"
// from the parameters.
func (p *Portal) authLocked(rc *reqCtx, in params, now time.Time) *apiError {
	if rc.oauth {
		tok := asString(in["auth"])
		if tok == "" {
			return errNoAuth
		}
		exp, ok := p.access[tok]
		if !ok {
			return errInvalidTok
		}
		if !now.Before(exp) {
			return errExpired
		}
		rc.token = tok
	} else {
		okUser := rc.user == strconv.Itoa(p.cfg.WebhookUserID)
		if !okUser || !subtleEq(rc.secret, p.cfg.WebhookSecret) {
			return errNoAuth
		}
		if p.cond.WebhookRevoked {
			return errRevoked
		}
	}
	delete(in, "auth")
	return nil
}

// holdFor waits d of real time, or less if the portal is stopping. It
// ignores the request's context on purpose.
func (p *Portal) holdFor(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.stopping:
	}
}

// stop releases held requests at once (so that a server can close without
// waiting for them); they still run.
func (p *Portal) stop() { p.stopOnce.Do(func() { close(p.stopping) }) }

// readParams merges the query string and the body (JSON or form). A body
// that cannot be decoded counts as no parameters, as PHP's json_decode
// failing quietly does on the real portal: the method runs without them.
// Only a body that cannot be read, or a broken query string, is an error.
func readParams(r *http.Request) (params, []string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, nil, err
	}
	in, order, err := decodeForm(r.URL.RawQuery)
	if err != nil {
		return nil, nil, err
	}
	ct := r.Header.Get("Content-Type")
	trimmed := bytes.TrimSpace(body)
	var bp params
	var border []string
	if strings.Contains(ct, "json") || (!strings.Contains(ct, "form") && len(trimmed) > 0 && trimmed[0] == '{') {
		bp, border, err = decodeJSON(body)
	} else {
		bp, border, err = decodeForm(string(body))
	}
	if err != nil {
		return in, order, nil
	}
	for k, v := range bp {
		in[k] = v
	}
	if border != nil {
		order = border
	}
	return in, order, nil
}

func normMethod(m string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(m), ".json"))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
