package b24

import (
	"context"
	"encoding/json"
	"strings"
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
	var raw json.RawMessage
	meta, err := c.Call(ctx, MethodAutomatedSolutionAdd, f.params(), &raw)
	if err != nil {
		return AutomatedSolution{}, meta, err
	}
	s, err := DecodeAutomatedSolutionAdd(raw)
	if err != nil {
		return AutomatedSolution{}, meta, &TransportError{Method: MethodAutomatedSolutionAdd, Err: err, Ambiguous: true}
	}
	return s, meta, nil
}

// ListAutomatedSolutions calls crm.automatedsolution.list with filter (e.g.
// {"title": "HR"}, exact match on the portal; nil for all), ordered by id,
// and reads every page (see paging.go).
func (c *Client) ListAutomatedSolutions(ctx context.Context, filter map[string]any) ([]AutomatedSolution, error) {
	params := func(start int) map[string]any { return automatedSolutionListParams(filter, start) }
	return listAll(ctx, c, MethodAutomatedSolutionList, maxPages, params, DecodeAutomatedSolutions)
}

// FindAutomatedSolution looks up the workplace titled exactly title
// (case-sensitive, spaces around it ignored). With several matches the
// lowest ID wins.
func (c *Client) FindAutomatedSolution(ctx context.Context, title string) (AutomatedSolution, bool, error) {
	all, err := c.ListAutomatedSolutions(ctx, map[string]any{"title": title})
	if err != nil {
		return AutomatedSolution{}, false, err
	}
	var best AutomatedSolution
	found := false
	for _, s := range all {
		if strings.TrimSpace(s.Title) == strings.TrimSpace(title) && (!found || s.ID < best.ID) {
			best, found = s, true
		}
	}
	return best, found, nil
}
