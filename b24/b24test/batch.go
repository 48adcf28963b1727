package b24test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxBatch is the most commands one batch runs; every command past it
// answers ERROR_BATCH_LENGTH_EXCEEDED.
const maxBatch = 50

// batchLocked runs a batch: one request for the query limit, each command
// billed to its own method. Commands run in the client's order; with halt,
// the first failed command stops the rest.
func (p *Portal) batchLocked(in params, order []string, rc *reqCtx, now time.Time) reply {
	keys, cmds := batchCommands(in["cmd"], order)
	halt := false
	if v, ok := in["halt"]; ok {
		n, _ := asInt(v)
		halt = n != 0 || asString(v) == "true"
	}
	dupIDs := p.rollLocked(p.faults.DuplicateIDRate, "duplicate_ids")
	var firstID any
	out := newBatchOut()
	for i, k := range keys {
		method, r := p.commandLocked(i, cmds[k], out.done, rc, now)
		if dupIDs && method == "department.add" && r.err == nil {
			if firstID == nil {
				firstID = r.res
			}
			r.res = firstID
		}
		out.add(k, r)
		if r.err != nil && halt {
			break
		}
	}
	p.countLocked("batch", "ok")
	total, resetAt := p.op.usage("batch", now)
	body := map[string]any{
		"result": map[string]any{
			"result":       out.results,
			"result_error": out.errs,
			"result_total": out.totals,
			"result_next":  out.nexts,
			"result_time":  out.times,
		},
		"time": timeBlock(now, 0, total, resetAt),
	}
	return reply{status: http.StatusOK, body: body, outcome: "ok", executed: true}
}

// commandLocked runs the i-th command of a batch, "method?query", with the
// results of the earlier ones substituted for $result[...] references.
func (p *Portal) commandLocked(i int, cmd string, done map[string]any, rc *reqCtx, now time.Time) (string, result) {
	method, query, _ := strings.Cut(cmd, "?")
	method = normMethod(method)
	var aerr *apiError
	switch {
	case i >= maxBatch:
		aerr = errBatchLength
	case method == "batch":
		aerr = errBatchNested
	case p.rollLocked(p.faults.CommandErrorRate, "command_error"):
		aerr = errInternal
	}
	cp, _, err := decodeForm(query)
	if aerr == nil && err != nil {
		aerr = errBadRequest
	}
	if aerr != nil {
		p.countLocked(method, aerr.code)
		return method, result{err: aerr}
	}
	substituteRefs(cp, done)
	return method, p.callLocked(callCtx{method: method, in: cp, now: now, inBatch: true, rc: rc})
}

// batchOut collects the answers of a batch's commands under their keys.
type batchOut struct {
	results, errs, totals, nexts, times *phpMap
	done                                map[string]any // answered results, for $result[...]
}

func newBatchOut() *batchOut {
	return &batchOut{
		results: newPHPMap(), errs: newPHPMap(), totals: newPHPMap(), nexts: newPHPMap(), times: newPHPMap(),
		done: map[string]any{},
	}
}

// add records a command's answer: an error in result_error (with its time
// block in result_time only when the refusal carries one, as the
// AbsurdResetRate fault's does), a success in result, result_time and, for
// a list, result_total and result_next.
func (o *batchOut) add(k string, r result) {
	if r.err != nil {
		o.errs.set(k, r.err.body())
		if !r.executed && r.tb != nil {
			o.times.set(k, r.tb)
		}
		return
	}
	o.times.set(k, r.tb)
	if r.missing {
		return
	}
	o.results.set(k, r.res)
	o.done[k] = r.res
	if r.pg != nil {
		o.totals.set(k, r.pg.total)
		if r.pg.next > 0 {
			o.nexts.set(k, r.pg.next)
		}
	}
}

// batchCommands lists the commands in the client's order: a JSON list by
// index, an object in document order (order), keys order does not name last.
func batchCommands(raw any, order []string) ([]string, map[string]string) {
	cmds := map[string]string{}
	var keys []string
	switch c := raw.(type) {
	case []any:
		for i, v := range c {
			k := strconv.Itoa(i)
			keys = append(keys, k)
			cmds[k] = asString(v)
		}
	case map[string]any:
		for _, k := range order {
			if v, ok := c[k]; ok {
				if _, dup := cmds[k]; !dup {
					keys = append(keys, k)
					cmds[k] = asString(v)
				}
			}
		}
		var rest []string
		for k, v := range c {
			if _, ok := cmds[k]; !ok {
				rest = append(rest, k)
				cmds[k] = asString(v)
			}
		}
		sort.Strings(rest)
		keys = append(keys, rest...)
	}
	return keys, cmds
}

// refPattern matches $result[key] with optional [field] selectors.
var refPattern = regexp.MustCompile(`\$result\[([^\]]*)\]((?:\[[^\]]*\])*)`)

// substituteRefs replaces $result[k][f]... in every string value with the
// results of earlier commands. A value that is exactly one reference takes
// the referenced value itself; a reference inside a longer string is
// rendered as PHP would ("Team $result[c0]" → "Team 2"). A reference that
// does not resolve (no such command, a failed one, no such field) stays as
// literal text, as on the real portal.
func substituteRefs(m map[string]any, done map[string]any) {
	for k, v := range m {
		m[k] = substituteValue(v, done)
	}
}

func substituteValue(v any, done map[string]any) any {
	switch x := v.(type) {
	case map[string]any:
		substituteRefs(x, done)
		return x
	case []any:
		for i := range x {
			x[i] = substituteValue(x[i], done)
		}
		return x
	case string:
		if loc := refPattern.FindStringIndex(x); loc != nil && loc[0] == 0 && loc[1] == len(x) {
			if val, ok := resolveRef(x, done); ok {
				return val
			}
			return x
		}
		return refPattern.ReplaceAllStringFunc(x, func(ref string) string {
			if val, ok := resolveRef(ref, done); ok {
				return phpString(val)
			}
			return ref
		})
	}
	return v
}

// resolveRef looks a reference up in the earlier results; ok is false
// when it does not resolve to a value.
func resolveRef(ref string, done map[string]any) (any, bool) {
	sm := refPattern.FindStringSubmatch(ref)
	cur, ok := done[sm[1]]
	for _, sel := range splitPHPKey("x" + sm[2])[1:] {
		if !ok {
			break
		}
		switch c := cur.(type) {
		case map[string]any:
			cur, ok = c[sel]
		case []any:
			i, err := strconv.Atoi(sel)
			ok = err == nil && i >= 0 && i < len(c)
			if ok {
				cur = c[i]
			}
		default:
			ok = false
		}
	}
	return cur, ok && cur != nil
}

// phpString renders a value inside a string as PHP does: arrays as "Array".
func phpString(v any) string {
	switch v.(type) {
	case map[string]any, []any:
		return "Array"
	}
	return asString(v)
}

// phpMap is an ordered map that encodes as PHP's json_encode does: empty →
// [], keys exactly "0".."n-1" in order → a list, otherwise an object.
type phpMap struct {
	keys []string
	vals map[string]any
}

func newPHPMap() *phpMap { return &phpMap{vals: map[string]any{}} }

func (m *phpMap) set(k string, v any) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// MarshalJSON implements json.Marshaler with PHP array semantics.
func (m *phpMap) MarshalJSON() ([]byte, error) {
	sequential := true
	for i, k := range m.keys {
		if k != strconv.Itoa(i) {
			sequential = false
			break
		}
	}
	if sequential {
		list := make([]any, len(m.keys))
		for i, k := range m.keys {
			list[i] = m.vals[k]
		}
		return json.Marshal(list)
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range m.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		vb, err := json.Marshal(m.vals[k])
		if err != nil {
			return nil, err
		}
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
