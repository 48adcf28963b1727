package b24test

import (
	"math"
	"net/http"
	"time"
)

// pageSize is the fixed page of every list method.
const pageSize = 50

// absurdReset is how far ahead the AbsurdResetRate fault puts
// operating_reset_at.
const absurdReset = 10 * 365 * 24 * time.Hour

// reply is a finished REST answer. executed is true when a method ran (so
// faults that act "after the work" apply).
type reply struct {
	status   int
	body     any
	outcome  string
	executed bool
}

// page is the paging of a list answer.
type page struct{ total, next int } // next 0: no further page

type handler func(p *Portal, in params) (any, *page, *apiError)

var handlers = map[string]handler{
	"department.add":               (*Portal).departmentAdd,
	"department.get":               (*Portal).departmentGet,
	"crm.automatedsolution.add":    (*Portal).automatedSolutionAdd,
	"crm.automatedsolution.list":   (*Portal).automatedSolutionList,
	"department.update":            (*Portal).departmentUpdate,
	"crm.automatedsolution.update": (*Portal).automatedSolutionUpdate,
}

// listMethods are the methods that answer pages.
var listMethods = map[string]bool{"department.get": true, "crm.automatedsolution.list": true}

// callCtx is one method call: a whole request or one command of a batch.
type callCtx struct {
	method  string
	in      params
	now     time.Time
	inBatch bool
	rc      *reqCtx
}

// result is what a call answers. tb is its time block (also on the
// AbsurdResetRate refusal); missing means the answer has no result at all.
type result struct {
	res      any
	pg       *page
	tb       map[string]any
	err      *apiError
	executed bool
	missing  bool
}

// callLocked runs one call with the operating limit and the per-call
// faults: refused before the work when the method is blocked or a fault
// says so; otherwise run and billed its cost (also when the method answered
// an error: the portal did the work of refusing), then the faults that
// change its answer.
func (p *Portal) callLocked(c callCtx) result {
	h, ok := handlers[c.method]
	if !ok {
		p.countLocked(c.method, errNotFound.code)
		return result{err: errNotFound}
	}
	if r, refused := p.refuseLocked(c); refused {
		p.countLocked(c.method, r.err.code)
		return r
	}
	res, pg, aerr := h(p, c.in)
	cost := p.cfg.CallCost
	if mc, ok := p.cfg.MethodCost[c.method]; ok {
		cost = mc
	}
	if cost > 0 {
		p.op.bill(c.method, c.now, cost)
	}
	total, resetAt := p.op.usage(c.method, c.now)
	r := result{res: res, pg: pg, tb: timeBlock(c.now, cost, total, resetAt), err: aerr, executed: true}
	if aerr != nil {
		p.countLocked(c.method, aerr.code)
		return r
	}
	p.countLocked(c.method, "ok")
	p.skewLocked(c, &r)
	return r
}

// refuseLocked decides whether a call is refused before its work: the
// operating limit or BlockMethod, then the faults AbsurdResetRate,
// EchoURLRate and, for department.add, DBErrorRate.
func (p *Portal) refuseLocked(c callCtx) (result, bool) {
	if until, ok := p.blocked[c.method]; (ok && c.now.Before(until)) || p.op.exhausted(c.method, c.now) {
		p.stats.Rejected429++
		return result{err: errOperating}, true
	}
	f := p.faults
	if p.rollLocked(f.AbsurdResetRate, "absurd_reset") {
		p.stats.Rejected429++
		total, _ := p.op.usage(c.method, c.now)
		return result{err: errOperating, tb: timeBlock(c.now, 0, total, c.now.Add(absurdReset).Unix())}, true
	}
	if p.rollLocked(f.EchoURLRate, "echo_url") {
		return result{err: echoError(c.rc.urlOf(c.method))}, true
	}
	if c.method == "department.add" && p.rollLocked(f.DBErrorRate, "db_error") {
		return result{err: errDeadlock}, true
	}
	return result{}, false
}

// skewLocked applies the faults that change a successful call's answer: a
// null or missing result of a list method, a float ID of a batch create.
func (p *Portal) skewLocked(c callCtx, r *result) {
	f := p.faults
	switch {
	case listMethods[c.method] && p.rollLocked(f.NullResultRate, "null_result"):
		r.res, r.pg = nil, nil
	case listMethods[c.method] && p.rollLocked(f.MissingResultRate, "missing_result"):
		r.res, r.pg, r.missing = nil, nil, true
	case c.inBatch && c.method == "department.add" && p.rollLocked(f.FloatIDRate, "float_id"):
		if id, ok := r.res.(int64); ok {
			r.res = float64(id) + 0.5
		}
	}
}

func (p *Portal) singleLocked(c callCtx) reply {
	r := p.callLocked(c)
	if r.err != nil {
		body := r.err.body()
		if r.tb != nil {
			body["time"] = r.tb
		}
		return reply{status: r.err.status, body: body, outcome: r.err.code, executed: r.executed}
	}
	body := map[string]any{"time": r.tb}
	if !r.missing {
		body["result"] = r.res
	}
	if r.pg != nil {
		body["total"] = r.pg.total
		if r.pg.next > 0 {
			body["next"] = r.pg.next
		}
	}
	return reply{status: http.StatusOK, body: body, outcome: "ok", executed: true}
}

// paginate cuts a list of n at the offset start into one page. An offset
// past the end gives the first page again, as the real portal does (the
// page number is clamped), never an empty page.
func paginate(n, start int) (lo, hi int, pg *page) {
	if start >= n {
		start = 0
	}
	lo = start
	hi = min(lo+pageSize, n)
	pg = &page{total: n}
	if hi < n {
		pg.next = hi
	}
	return lo, hi, pg
}

// timeBlock is the "time" object of an answer. Simulated work takes exactly
// its cost, so finish = start + cost by the injected clock.
func timeBlock(now time.Time, cost time.Duration, operating float64, resetAt int64) map[string]any {
	const layout = "2006-01-02T15:04:05-07:00"
	fin := now.Add(cost)
	return map[string]any{
		"start":              round6(float64(now.UnixNano()) / 1e9),
		"finish":             round6(float64(fin.UnixNano()) / 1e9),
		"duration":           round6(cost.Seconds()),
		"processing":         round6(cost.Seconds()),
		"date_start":         now.Format(layout),
		"date_finish":        fin.Format(layout),
		"operating":          round6(operating),
		"operating_reset_at": resetAt,
	}
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }
