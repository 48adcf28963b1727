package b24

// Paging of the list methods (department.get, crm.automatedsolution.list),
// for plain calls and batch commands alike. The portal returns 50 items a
// page with `total` and `next`; it reads the offset from lowercase `start`
// only (`START` is ignored and page 1 comes back), and an offset past the
// end returns page 1 again, never an empty page. So a reader stops on a
// missing `next`, on a `next` that does not advance, and on a `next` at or
// past `total`.

import (
	"context"
	"encoding/json"
	"fmt"
)

// pageSize is the page size of Bitrix24 list methods.
const pageSize = 50

// maxPages bounds paging so that a portal that keeps answering `next` cannot
// loop a caller forever (50 * 10000 items is far above any real structure).
const maxPages = 10000

// startParam is the parameter that carries the offset of a page.
const startParam = "start"

// morePages reports whether a page read at start, answered with next and
// total (0 when the answer had none), has a following page at next.
func morePages(start, next, total int) bool {
	return next > start && (total <= 0 || next < total)
}

// listAll reads every page of a list method: params(start) are the
// parameters of the page at start, decode turns a page's result into its
// items. Each page is one request (and one Pacer.Wait). A page that does not
// decode is an ambiguous *TransportError (retry the lookup); after limit
// pages it fails rather than loop on a portal that keeps answering `next`.
func listAll[T any](ctx context.Context, c *Client, method string, limit int, params func(start int) map[string]any, decode func(json.RawMessage) ([]T, error)) ([]T, error) {
	var out []T
	start := 0
	for range limit {
		var raw json.RawMessage
		meta, err := c.Call(ctx, method, params(start), &raw)
		if err != nil {
			return nil, err
		}
		items, err := decode(raw)
		if err != nil {
			return nil, &TransportError{Method: method, Err: err, Ambiguous: true}
		}
		out = append(out, items...)
		if len(items) == 0 || !morePages(start, meta.Next, meta.Total) {
			return out, nil
		}
		start = meta.Next
	}
	return nil, fmt.Errorf("b24: %s: stopped after %d pages of %d items: the portal keeps answering next", method, limit, pageSize)
}

// NextStart returns the start of the page that follows the answer of the
// list command key (a DepartmentGetCommand or AutomatedSolutionListCommand),
// from its result_next and result_total; more is false when the command
// answered no next, or a next at or past its total (the portal would answer
// page 1 again), or did not run. A caller continuing a lookup sends the
// command again with this start, and also stops when it is not above the
// start it sent.
func (r BatchResult) NextStart(key string) (start int, more bool) {
	next := r.Nexts[key]
	if !morePages(0, next, r.Totals[key]) {
		return 0, false
	}
	return next, true
}
