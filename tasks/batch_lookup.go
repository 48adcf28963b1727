package tasks

// Lookups before a batch is sent again: the objects of items whose earlier
// create may have happened are searched for with as few requests as
// possible, as commands of batch requests themselves.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/b24queue/b24queue/b24"
)

// listPage is the page size of Bitrix24 list methods: a page this long may
// have a next one.
const listPage = 50

// lookupQuery is one list command and the items its answer may contain.
type lookupQuery struct {
	method string
	params map[string]any
	// paged queries (department.get by PARENT) are continued with START
	// while a page comes back full.
	paged bool
	start int
	items []*batchItem
	// failed: the command failed, so nothing is known about its items.
	failed bool
}

// lookup finds the objects of todo that exist already and adopts them. It
// returns the items still to create. Items whose lookup command failed are
// put back into their verify group (nothing is known about them); a failure
// of a whole lookup request is returned.
//
// Departments are searched with one department.get per distinct PARENT
// (names compared exactly: the portal filters NAME with LIKE), new
// top-level departments by NAME; workplaces with one
// crm.automatedsolution.list per title (the portal filters title exactly).
// A single item is looked up with the plain Find call.
func (r *batchRun) lookup(ctx context.Context, todo []*batchItem) ([]*batchItem, error) {
	if len(todo) == 1 {
		return r.lookupOne(ctx, todo[0])
	}
	var queries []*lookupQuery
	byParent := map[int64]*lookupQuery{}
	for _, it := range todo {
		switch {
		case it.method == methodWorkplaceAdd:
			queries = append(queries, &lookupQuery{method: "crm.automatedsolution.list",
				params: map[string]any{"filter": map[string]any{"title": it.wp.Title}}, items: []*batchItem{it}})
		case it.dept.Parent == 0:
			queries = append(queries, &lookupQuery{method: "department.get",
				params: map[string]any{"NAME": it.dept.Name}, items: []*batchItem{it}})
		default:
			q, ok := byParent[it.dept.Parent]
			if !ok {
				q = &lookupQuery{method: "department.get", params: map[string]any{"PARENT": it.dept.Parent}, paged: true}
				byParent[it.dept.Parent] = q
				queries = append(queries, q)
			}
			q.items = append(q.items, it)
		}
	}
	found := map[*batchItem]int64{}
	pending := queries
	for len(pending) > 0 {
		n := min(len(pending), b24.MaxBatch)
		round, rest := pending[:n], pending[n:]
		next, err := r.lookupRound(ctx, round, found)
		if err != nil {
			return nil, err
		}
		pending = append(rest, next...)
	}
	out := todo[:0:0]
	for _, q := range queries {
		for _, it := range q.items {
			switch id, ok := found[it]; {
			case q.failed:
				r.record(r.requeue(ctx, it, verifyGroup(r.portal.Name, it.method), time.Time{}, true, "lookup failed"))
			case ok:
				r.record(r.created(ctx, it, id, true))
			default:
				out = append(out, it)
			}
		}
	}
	return out, nil
}

// lookupRound sends up to b24.MaxBatch queries as one batch, records the
// matches in found, and returns the queries that need another page.
func (r *batchRun) lookupRound(ctx context.Context, round []*lookupQuery, found map[*batchItem]int64) ([]*lookupQuery, error) {
	cmds := make([]b24.BatchCommand, len(round))
	for i, q := range round {
		params := q.params
		if q.start > 0 {
			params = map[string]any{"START": q.start}
			for k, v := range q.params {
				params[k] = v
			}
		}
		cmds[i] = b24.BatchCommand{Key: cmdKey(i), Method: q.method, Params: params}
	}
	res, _, err := r.portal.Client.Batch(ctx, false, cmds)
	if err != nil {
		return nil, err
	}
	var next []*lookupQuery
	for i, q := range round {
		raw, ok := res.Results[cmdKey(i)]
		if !ok {
			q.failed = true
			continue
		}
		var n int
		var derr error
		if q.method == "department.get" {
			n, derr = matchDepartments(raw, q.items, found)
		} else {
			derr = matchWorkplaces(raw, q.items, found)
		}
		if derr != nil {
			q.failed = true
			continue
		}
		if q.paged && n >= listPage {
			q.start += n
			next = append(next, q)
		}
	}
	return next, nil
}

// lookupDepartment is a department.get item (values arrive as strings).
type lookupDepartment struct {
	ID     looseInt `json:"ID"`
	Name   string   `json:"NAME"`
	Parent looseInt `json:"PARENT"`
}

// matchDepartments records, for each item, the lowest ID of a department
// with exactly its name and parent. It returns the page's length.
func matchDepartments(raw json.RawMessage, items []*batchItem, found map[*batchItem]int64) (int, error) {
	list, err := decodeLooseList[lookupDepartment](raw)
	if err != nil {
		return 0, err
	}
	for _, d := range list {
		for _, it := range items {
			if d.Name == it.dept.Name && int64(d.Parent) == it.dept.Parent {
				if id, ok := found[it]; !ok || int64(d.ID) < id {
					found[it] = int64(d.ID)
				}
			}
		}
	}
	return len(list), nil
}

// matchWorkplaces records the lowest ID of a workplace titled exactly like
// each item.
func matchWorkplaces(raw json.RawMessage, items []*batchItem, found map[*batchItem]int64) error {
	var res struct {
		List json.RawMessage `json:"automatedSolutions"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("decode crm.automatedsolution.list result: %w", err)
	}
	list, err := decodeLooseList[struct {
		ID    looseInt `json:"id"`
		Title string   `json:"title"`
	}](res.List)
	if err != nil {
		return err
	}
	for _, s := range list {
		for _, it := range items {
			if s.Title == it.wp.Title {
				if id, ok := found[it]; !ok || int64(s.ID) < id {
					found[it] = int64(s.ID)
				}
			}
		}
	}
	return nil
}

// decodeLooseList decodes a PHP list: a JSON array, an object keyed by
// index, or [] / null / absent for none.
func decodeLooseList[T any](raw json.RawMessage) ([]T, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []T
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var m map[string]T
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	keys := make([]int, 0, len(m))
	for k := range m {
		n, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("decode list: key %q", k)
		}
		keys = append(keys, n)
	}
	slices.Sort(keys)
	for _, k := range keys {
		list = append(list, m[strconv.Itoa(k)])
	}
	return list, nil
}

// lookupOne looks a single item up with the plain call.
func (r *batchRun) lookupOne(ctx context.Context, it *batchItem) ([]*batchItem, error) {
	var id int64
	var found bool
	var err error
	if it.method == methodWorkplaceAdd {
		var s b24.AutomatedSolution
		s, found, err = r.portal.Client.FindAutomatedSolution(ctx, it.wp.Title)
		id = s.ID
	} else {
		var d b24.Department
		d, found, err = r.portal.Client.FindDepartment(ctx, it.dept.Name, it.dept.Parent)
		id = d.ID
	}
	if err != nil {
		return nil, err
	}
	if found {
		r.record(r.created(ctx, it, id, true))
		return nil, nil
	}
	return []*batchItem{it}, nil
}
