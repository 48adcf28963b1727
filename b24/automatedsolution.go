package b24

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
)

// AutomatedSolutionFields are the fields of crm.automatedsolution.add (a
// digital workplace). Empty TypeIDs are omitted.
type AutomatedSolutionFields struct {
	Title   string
	TypeIDs []int64
}

// AutomatedSolution is a digital workplace as the portal returns it.
type AutomatedSolution struct {
	ID      int64
	Title   string
	TypeIDs []int64
}

type rawAutomatedSolution struct {
	ID      strictInt `json:"id"`
	Title   string    `json:"title"`
	TypeIDs []flexInt `json:"typeIds"`
}

func (r rawAutomatedSolution) solution() AutomatedSolution {
	s := AutomatedSolution{ID: int64(r.ID), Title: r.Title}
	for _, t := range r.TypeIDs {
		s.TypeIDs = append(s.TypeIDs, int64(t))
	}
	return s
}

// AddAutomatedSolution calls crm.automatedsolution.add and returns the
// created workplace. LIMIT_EXCEEDED (the plan's cap) is a Permanent *Error.
func (c *Client) AddAutomatedSolution(ctx context.Context, f AutomatedSolutionFields) (AutomatedSolution, Meta, error) {
	fields := map[string]any{"title": f.Title}
	if len(f.TypeIDs) > 0 {
		fields["typeIds"] = f.TypeIDs
	}
	var res struct {
		AutomatedSolution *rawAutomatedSolution `json:"automatedSolution"`
	}
	meta, err := c.Call(ctx, "crm.automatedsolution.add", map[string]any{"fields": fields}, &res)
	if err != nil {
		return AutomatedSolution{}, meta, err
	}
	if res.AutomatedSolution == nil || res.AutomatedSolution.ID <= 0 {
		return AutomatedSolution{}, meta, &TransportError{Method: "crm.automatedsolution.add",
			Err: fmt.Errorf("decode result: no automatedSolution with an ID"), Ambiguous: true}
	}
	return res.AutomatedSolution.solution(), meta, nil
}

// ListAutomatedSolutions calls crm.automatedsolution.list with filter (e.g.
// {"title": "HR"}, exact match on the portal; nil for all), ordered by id,
// following `next` through every page with `start`.
func (c *Client) ListAutomatedSolutions(ctx context.Context, filter map[string]any) ([]AutomatedSolution, error) {
	const method = "crm.automatedsolution.list"
	params := map[string]any{"order": map[string]any{"id": "ASC"}}
	if len(filter) > 0 {
		params["filter"] = maps.Clone(filter)
	}
	var out []AutomatedSolution
	start := 0
	for range maxPages {
		if start > 0 {
			params["start"] = start
		}
		var res struct {
			List json.RawMessage `json:"automatedSolutions"`
		}
		meta, err := c.Call(ctx, method, params, &res)
		if err != nil {
			return nil, err
		}
		items, err := decodeList[rawAutomatedSolution](res.List)
		if err != nil {
			return nil, &TransportError{Method: method, Err: fmt.Errorf("decode result: %w", err), Ambiguous: true}
		}
		for _, r := range items {
			out = append(out, r.solution())
		}
		if meta.Next <= start || len(items) == 0 {
			return out, nil
		}
		start = meta.Next
	}
	return nil, fmt.Errorf("b24: %s: more than %d pages", method, maxPages)
}

// FindAutomatedSolution looks up the workplace titled exactly title
// (case-sensitive). With several matches the lowest ID wins.
func (c *Client) FindAutomatedSolution(ctx context.Context, title string) (AutomatedSolution, bool, error) {
	all, err := c.ListAutomatedSolutions(ctx, map[string]any{"title": title})
	if err != nil {
		return AutomatedSolution{}, false, err
	}
	var best AutomatedSolution
	found := false
	for _, s := range all {
		if s.Title == title && (!found || s.ID < best.ID) {
			best, found = s, true
		}
	}
	return best, found, nil
}
