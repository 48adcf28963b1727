package b24test

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pageSize is the fixed page of every list method.
const pageSize = 50

// maxBatch is the most commands one batch may hold.
const maxBatch = 50

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
	"department.add":             (*Portal).departmentAdd,
	"department.get":             (*Portal).departmentGet,
	"crm.automatedsolution.add":  (*Portal).automatedSolutionAdd,
	"crm.automatedsolution.list": (*Portal).automatedSolutionList,
}

func coreError(desc string) *apiError {
	return &apiError{http.StatusBadRequest, "ERROR_CORE", desc}
}

// Descriptions as the real portal words them (seeds/).
const (
	descNoName      = "Не введено название раздела.<br>"
	descTwoRoots    = "В структуре компании должен быть только один раздел верхнего уровня"
	descNoParent    = "Parent department not found"
	descNoTitle     = "Не заполнено обязательное поле «Название»"
	descCapExceeded = "Превышено количество доступных цифровых рабочих мест"
)

// callLocked runs one method (a whole request or a batch command) with the
// operating limit: refused with 429 when the method's window total has
// reached the limit before the call, billed its cost after it ran (also when
// the method answered an error: the portal did the work of refusing).
func (p *Portal) callLocked(method string, in params, now time.Time) (res any, pg *page, tb map[string]any, aerr *apiError, executed bool) {
	h, ok := handlers[method]
	if !ok {
		p.countLocked(method, errNotFound.code)
		return nil, nil, nil, errNotFound, false
	}
	if until, ok := p.blocked[method]; (ok && now.Before(until)) || p.op.exhausted(method, now) {
		p.stats.Rejected429++
		p.countLocked(method, errOperating.code)
		return nil, nil, nil, errOperating, false
	}
	res, pg, aerr = h(p, in)
	cost := p.cfg.CallCost
	if c, ok := p.cfg.MethodCost[method]; ok {
		cost = c
	}
	if cost > 0 {
		p.op.bill(method, now, cost)
	}
	total, resetAt := p.op.usage(method, now)
	if aerr != nil {
		p.countLocked(method, aerr.code)
	} else {
		p.countLocked(method, "ok")
	}
	return res, pg, timeBlock(now, cost, total, resetAt), aerr, true
}

func (p *Portal) singleLocked(method string, in params, now time.Time) reply {
	res, pg, tb, aerr, executed := p.callLocked(method, in, now)
	if aerr != nil {
		return reply{status: aerr.status, body: aerr.body(), outcome: aerr.code, executed: executed}
	}
	body := map[string]any{"result": res, "time": tb}
	if pg != nil {
		body["total"] = pg.total
		if pg.next > 0 {
			body["next"] = pg.next
		}
	}
	return reply{status: http.StatusOK, body: body, outcome: "ok", executed: true}
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

// batchLocked runs a batch: one request for the query limit, each command
// billed to its own method.
func (p *Portal) batchLocked(in params, order []string, now time.Time) reply {
	keys, cmds := batchCommands(in["cmd"], order)
	if len(keys) > maxBatch {
		p.countLocked("batch", errBatchLength.code)
		return reply{status: errBatchLength.status, body: errBatchLength.body(), outcome: errBatchLength.code}
	}
	halt := false
	if v, ok := in["halt"]; ok {
		n, _ := asInt(v)
		halt = n != 0 || asString(v) == "true"
	}
	var (
		results = newPHPMap()
		errs    = newPHPMap()
		totals  = newPHPMap()
		nexts   = newPHPMap()
		times   = newPHPMap()
		done    = map[string]any{}
	)
	for _, k := range keys {
		method, query, _ := strings.Cut(cmds[k], "?")
		method = normMethod(method)
		var (
			res  any
			pg   *page
			tb   map[string]any
			aerr *apiError
		)
		if method == "batch" {
			aerr = errBatchNested
			p.countLocked(method, aerr.code)
		} else if r := p.faults.CommandErrorRate; r > 0 && p.rng.Float64() < r {
			aerr = errInternal
			p.stats.Faults["command_error"]++
			p.countLocked(method, aerr.code)
		} else if cp, _, err := decodeForm(query); err != nil {
			aerr = errBadRequest
			p.countLocked(method, aerr.code)
		} else {
			substituteRefs(cp, done)
			res, pg, tb, aerr, _ = p.callLocked(method, cp, now)
		}
		if aerr != nil {
			errs.set(k, aerr.body())
			if halt {
				break
			}
			continue
		}
		results.set(k, res)
		done[k] = res
		times.set(k, tb)
		if pg != nil {
			totals.set(k, pg.total)
			if pg.next > 0 {
				nexts.set(k, pg.next)
			}
		}
	}
	p.countLocked("batch", "ok")
	total, resetAt := p.op.usage("batch", now)
	body := map[string]any{
		"result": map[string]any{
			"result":       results,
			"result_error": errs,
			"result_total": totals,
			"result_next":  nexts,
			"result_time":  times,
		},
		"time": timeBlock(now, 0, total, resetAt),
	}
	return reply{status: http.StatusOK, body: body, outcome: "ok", executed: true}
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
// the referenced value itself; an unresolvable reference becomes "".
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
			return resolveRef(x, done)
		}
		return refPattern.ReplaceAllStringFunc(x, func(ref string) string {
			return asString(resolveRef(ref, done))
		})
	}
	return v
}

func resolveRef(ref string, done map[string]any) any {
	sm := refPattern.FindStringSubmatch(ref)
	cur, ok := done[sm[1]]
	if !ok {
		return ""
	}
	for _, sel := range splitPHPKey("x" + sm[2])[1:] {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[sel]
		case []any:
			i, err := strconv.Atoi(sel)
			if err != nil || i < 0 || i >= len(c) {
				return ""
			}
			cur = c[i]
		default:
			return ""
		}
	}
	if cur == nil {
		return ""
	}
	return cur
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

func (p *Portal) departmentAdd(in params) (any, *page, *apiError) {
	nameV, _ := in.lookup("NAME")
	name := strings.TrimSpace(asString(nameV))
	if name == "" {
		return nil, nil, coreError(descNoName)
	}
	parentV, has := in.lookup("PARENT")
	parent, numeric := asInt(parentV)
	if !has || asString(parentV) == "" || (numeric && parent == 0) {
		for _, d := range p.depts {
			if d.Parent == 0 {
				return nil, nil, coreError(descTwoRoots)
			}
		}
		parent = 0
	} else if !numeric || p.deptIndex(parent) < 0 {
		return nil, nil, coreError(descNoParent)
	}
	d := Department{ID: p.nextDept, Name: name, Sort: 500, Parent: parent}
	if v, ok := in.lookup("SORT"); ok {
		if n, ok := asInt(v); ok {
			d.Sort = int(n)
		}
	}
	if v, ok := in.lookup("UF_HEAD"); ok {
		if n, ok := asInt(v); ok {
			d.Head = n
		}
	}
	if k := (deptKey{parent: d.Parent, name: d.Name}); p.deptNames[k] {
		p.stats.DuplicateDepartments++
	} else {
		p.deptNames[k] = true
	}
	p.nextDept++
	p.depts = append(p.depts, d)
	p.stats.DepartmentsCreated++
	return d.ID, nil, nil
}

// deptKey identifies a department by what a duplicate shares with it.
type deptKey struct {
	parent int64
	name   string
}

// deptIndex returns the index of department id in p.depts, or -1. IDs are
// handed out in order and departments are never removed, so department id
// sits at index id-1; the scan is the fallback should that ever change.
func (p *Portal) deptIndex(id int64) int {
	if i := id - 1; i >= 0 && i < int64(len(p.depts)) && p.depts[i].ID == id {
		return int(i)
	}
	for i, d := range p.depts {
		if d.ID == id {
			return i
		}
	}
	return -1
}

// likeMatch is SQL LIKE with implicit surrounding %, case-insensitive:
// the pattern's %-separated parts must appear in order.
func likeMatch(pattern, s string) bool {
	s = strings.ToLower(s)
	pos := 0
	for part := range strings.SplitSeq(strings.ToLower(pattern), "%") {
		i := strings.Index(s[pos:], part)
		if i < 0 {
			return false
		}
		pos += i + len(part)
	}
	return true
}

func (p *Portal) departmentGet(in params) (any, *page, *apiError) {
	var match []Department
	for _, d := range p.depts {
		if v, ok := in.lookup("ID"); ok {
			ids, _ := asIntList(v)
			if !containsInt(ids, d.ID) {
				continue
			}
		}
		if v, ok := in.lookup("NAME"); ok && !likeMatch(asString(v), d.Name) {
			continue
		}
		if v, ok := in.lookup("PARENT"); ok {
			if n, _ := asInt(v); n != d.Parent {
				continue
			}
		}
		if v, ok := in.lookup("UF_HEAD"); ok {
			if n, _ := asInt(v); n != d.Head {
				continue
			}
		}
		match = append(match, d)
	}
	field := strings.ToUpper(asString(in["sort"]))
	desc := strings.EqualFold(asString(in["order"]), "desc")
	less := func(a, b Department) bool {
		switch field {
		case "NAME":
			if a.Name != b.Name {
				return a.Name < b.Name
			}
		case "SORT":
			if a.Sort != b.Sort {
				return a.Sort < b.Sort
			}
		case "PARENT":
			if a.Parent != b.Parent {
				return a.Parent < b.Parent
			}
		}
		return a.ID < b.ID
	}
	sort.SliceStable(match, func(i, j int) bool {
		if desc {
			return less(match[j], match[i])
		}
		return less(match[i], match[j])
	})
	lo, hi, pg := paginate(len(match), in.start())
	out := make([]any, 0, hi-lo)
	for _, d := range match[lo:hi] {
		m := map[string]any{
			"ID":      strconv.FormatInt(d.ID, 10),
			"NAME":    d.Name,
			"SORT":    strconv.Itoa(d.Sort),
			"UF_HEAD": strconv.FormatInt(d.Head, 10),
		}
		if d.Parent != 0 {
			m["PARENT"] = strconv.FormatInt(d.Parent, 10)
		}
		out = append(out, m)
	}
	return out, pg, nil
}

func paginate(n, start int) (lo, hi int, pg *page) {
	lo = min(start, n)
	hi = min(lo+pageSize, n)
	pg = &page{total: n}
	if hi < n {
		pg.next = hi
	}
	return lo, hi, pg
}

func containsInt(xs []int64, x int64) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func workplaceMap(w Workplace) map[string]any {
	ids := make([]any, len(w.TypeIDs))
	for i, id := range w.TypeIDs {
		ids[i] = id
	}
	return map[string]any{"id": w.ID, "title": w.Title, "typeIds": ids}
}

func (p *Portal) automatedSolutionAdd(in params) (any, *page, *apiError) {
	fields := asMap(in["fields"])
	title := strings.TrimSpace(asString(fields["title"]))
	if title == "" {
		return nil, nil, &apiError{http.StatusBadRequest, "BX_EMPTY_REQUIRED", descNoTitle}
	}
	typeIDs, ok := asIntList(fields["typeIds"])
	if !ok {
		return nil, nil, &apiError{http.StatusBadRequest, "BX_INVALID_VALUE", "Invalid value of field «typeIds»"}
	}
	if p.cfg.WorkplaceCap > 0 && len(p.wps) >= p.cfg.WorkplaceCap {
		return nil, nil, &apiError{http.StatusBadRequest, "LIMIT_EXCEEDED", descCapExceeded}
	}
	for _, w := range p.wps {
		if w.Title == title {
			p.stats.DuplicateWorkplaces++
			break
		}
	}
	w := Workplace{ID: p.nextWP, Title: title, TypeIDs: append([]int64{}, typeIDs...)}
	p.nextWP++
	p.wps = append(p.wps, w)
	p.stats.WorkplacesCreated++
	return map[string]any{"automatedSolution": workplaceMap(w)}, nil, nil
}

func (p *Portal) automatedSolutionList(in params) (any, *page, *apiError) {
	filter := asMap(in["filter"])
	var match []Workplace
	for _, w := range p.wps {
		if v, ok := firstKey(filter, "title", "=title"); ok && asString(v) != w.Title {
			continue
		}
		if v, ok := firstKey(filter, "id", "=id"); ok {
			if n, _ := asInt(v); n != w.ID {
				continue
			}
		}
		match = append(match, w)
	}
	order := asMap(in["order"])
	if dir, ok := firstKey(order, "id", "ID"); ok && strings.EqualFold(asString(dir), "desc") {
		sort.SliceStable(match, func(i, j int) bool { return match[i].ID > match[j].ID })
	} else if dir, ok := firstKey(order, "title"); ok {
		desc := strings.EqualFold(asString(dir), "desc")
		sort.SliceStable(match, func(i, j int) bool {
			if desc {
				return match[i].Title > match[j].Title
			}
			return match[i].Title < match[j].Title
		})
	}
	lo, hi, pg := paginate(len(match), in.start())
	list := make([]any, 0, hi-lo)
	for _, w := range match[lo:hi] {
		list = append(list, workplaceMap(w))
	}
	return map[string]any{"automatedSolutions": list}, pg, nil
}

func firstKey(m map[string]any, keys ...string) (any, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	return nil, false
}
