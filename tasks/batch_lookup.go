package tasks

// Lookups before a batch is sent again: the objects of items whose earlier
// create may have happened are searched for with as few requests as
// possible, as commands of batch requests themselves.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/b24queue/b24queue/b24"
)

// lookupQuery is one list command and the items its answer may contain.
type lookupQuery struct {
	method string
	filter map[string]any
	// paged queries are continued while the portal answers a next page
	// (a NAME with % or _ is a LIKE pattern that may match many pages).
	paged bool
	start int
	items []*batchItem
	// failed: the command failed, so nothing is known about its items.
	failed bool
}

// command is q's batch command under key.
func (q *lookupQuery) command(key string) b24.BatchCommand {
	if q.method == b24.MethodAutomatedSolutionList {
		return b24.AutomatedSolutionListCommand(key, q.filter, q.start)
	}
	return b24.DepartmentGetCommand(key, q.filter, q.start)
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
	todo, alone := splitFilteredReferences(todo)
	var missing []*batchItem
	for _, it := range alone {
		rest, err := r.lookupOne(ctx, it)
		if err != nil {
			return nil, err
		}
		missing = append(missing, rest...)
	}
	if len(todo) == 1 {
		rest, err := r.lookupOne(ctx, todo[0])
		return append(missing, rest...), err
	}
	if len(todo) == 0 {
		return missing, nil
	}
	queries := lookupQueries(todo)
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
	out := missing
	for _, q := range queries {
		for _, it := range q.items {
			switch id, ok := found[it]; {
			case q.failed:
				r.record(r.apply(ctx, it, &b24.TransportError{Method: q.method, Err: errors.New("lookup failed"), Ambiguous: true}))
			case ok:
				r.record(r.created(ctx, it, id, true))
			default:
				out = append(out, it)
			}
		}
	}
	return out, nil
}

// lookupQueries groups todo into as few list commands as possible.
func lookupQueries(todo []*batchItem) []*lookupQuery {
	var queries []*lookupQuery
	byParent := map[int64]*lookupQuery{}
	for _, it := range todo {
		switch {
		case it.method == methodWorkplaceAdd:
			queries = append(queries, &lookupQuery{method: b24.MethodAutomatedSolutionList,
				filter: map[string]any{"title": it.wp.Title}, items: []*batchItem{it}, paged: true})
		case it.dept.Parent == 0:
			queries = append(queries, &lookupQuery{method: b24.MethodDepartmentGet,
				filter: map[string]any{"NAME": it.dept.Name}, items: []*batchItem{it}, paged: true})
		default:
			q, ok := byParent[it.dept.Parent]
			if !ok {
				q = &lookupQuery{method: b24.MethodDepartmentGet, filter: map[string]any{"PARENT": it.dept.Parent}, paged: true}
				byParent[it.dept.Parent] = q
				queries = append(queries, q)
			}
			q.items = append(q.items, it)
		}
	}
	return queries
}

// lookupRound sends up to b24.MaxBatch queries as one batch, records the
// matches in found, and returns the queries that need another page.
func (r *batchRun) lookupRound(ctx context.Context, round []*lookupQuery, found map[*batchItem]int64) ([]*lookupQuery, error) {
	cmds := make([]b24.BatchCommand, len(round))
	for i, q := range round {
		cmds[i] = q.command(cmdKey(i))
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
		if _, derr := q.match(raw, found); derr != nil {
			q.failed = true
			continue
		}
		// The portal reads the offset from `start` and answers page 1 again
		// past the end: continue only while it says there is a next page.
		if start, more := res.NextStart(cmdKey(i)); q.paged && more && start > q.start {
			q.start = start
			next = append(next, q)
		}
	}
	return next, nil
}

// match records, for each of q's items, the lowest ID of an object in the
// page raw with exactly its name and parent (departments) or title
// (workplaces). It returns the page's length.
func (q *lookupQuery) match(raw json.RawMessage, found map[*batchItem]int64) (int, error) {
	keep := func(it *batchItem, id int64) {
		if old, ok := found[it]; !ok || id < old {
			found[it] = id
		}
	}
	if q.method == b24.MethodAutomatedSolutionList {
		list, err := b24.DecodeAutomatedSolutions(raw)
		if err != nil {
			return 0, err
		}
		for _, s := range list {
			for _, it := range q.items {
				if sameName(s.Title, it.wp.Title) {
					keep(it, s.ID)
				}
			}
		}
		return len(list), nil
	}
	list, err := b24.DecodeDepartments(raw)
	if err != nil {
		return 0, err
	}
	for _, d := range list {
		for _, it := range q.items {
			if sameName(d.Name, it.dept.Name) && d.Parent == it.dept.Parent {
				keep(it, d.ID)
			}
		}
	}
	return len(list), nil
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

// sameName reports whether a name the portal holds is the item's: exactly,
// but for the spaces around it (the portal trims names on save).
func sameName(held, want string) bool { return strings.TrimSpace(held) == strings.TrimSpace(want) }

// splitFilteredReferences separates the items whose lookup would filter by
// a value the portal's batch takes for a reference (a title or top-level
// NAME holding "$result[...]"): they are looked up by plain call. Items
// looked up by PARENT are compared here, so their names never travel.
func splitFilteredReferences(items []*batchItem) (batched, alone []*batchItem) {
	batched = items[:0:0]
	for _, it := range items {
		filtered := it.method == methodWorkplaceAdd || it.dept.Parent == 0
		if filtered && b24.HasBatchReference(it.name()) {
			alone = append(alone, it)
		} else {
			batched = append(batched, it)
		}
	}
	return batched, alone
}
