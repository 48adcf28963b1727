package b24

// Reading a portal's whole structure (every department, every workplace) in
// as few requests as its size allows: department.get and
// crm.automatedsolution.list pages as the commands of batch requests, 50
// pages of 50 items each, so 2,500 departments cost one request (after a
// first request that learns the totals).

import (
	"context"
	"fmt"
	"strconv"
)

// Structure is what a portal holds: every department and workplace.
type Structure struct {
	Departments []Department
	Workplaces  []AutomatedSolution
	// Requests is how many requests reading it took.
	Requests int
}

// maxStructureRequests bounds ReadStructure (50 × 2,500 = 125,000
// departments is far above any real portal).
const maxStructureRequests = 50

// listPage is one page a structure read still needs.
type listPage struct {
	method string
	start  int
}

// ReadStructure reads every department of the portal and, with workplaces,
// every digital workplace. The first request asks for the first page of
// each (a portal with at most 50 departments costs that one request); once
// the totals are known, the missing pages follow, 50 a request. A page
// past the end (the portal answers page 1 again) is not used. A page whose
// command fails is asked again, at most maxPageTries times; then the read
// fails: nothing incomplete is returned.
func (c *Client) ReadStructure(ctx context.Context, workplaces bool) (Structure, error) {
	var s Structure
	queue := []listPage{{MethodDepartmentGet, 0}}
	if workplaces {
		queue = append(queue, listPage{MethodAutomatedSolutionList, 0})
	}
	totals := map[string]int{}
	asked := map[listPage]bool{}
	tries := map[listPage]int{}
	seenDept, seenWP := map[int64]bool{}, map[int64]bool{}
	for len(queue) > 0 {
		if s.Requests == maxStructureRequests {
			return Structure{}, fmt.Errorf("b24: reading the portal's structure: more than %d requests", maxStructureRequests)
		}
		n := min(len(queue), MaxBatch)
		round := queue[:n]
		queue = queue[n:]
		got, failed, err := c.readPages(ctx, round, totals)
		s.Requests++
		if err != nil {
			return Structure{}, err
		}
		// A department created while the pages are read shifts the pages:
		// one may then come twice.
		for _, d := range got.Departments {
			if !seenDept[d.ID] {
				seenDept[d.ID] = true
				s.Departments = append(s.Departments, d)
			}
		}
		for _, w := range got.Workplaces {
			if !seenWP[w.ID] {
				seenWP[w.ID] = true
				s.Workplaces = append(s.Workplaces, w)
			}
		}
		for _, p := range round {
			asked[p] = true
		}
		for _, f := range failed {
			if tries[f.page]++; tries[f.page] >= maxPageTries {
				return Structure{}, f.err
			}
			queue = append(queue, f.page)
		}
		queue = append(queue, missingPages(totals, asked)...)
	}
	return s, nil
}

// maxPageTries bounds how often ReadStructure asks for one page whose
// command failed.
const maxPageTries = 3

// failedPage is a page whose command failed, to be asked again.
type failedPage struct {
	page listPage
	err  error
}

// readPages sends one batch of page commands, records each method's total,
// and returns the items of the pages inside their totals, and the pages
// whose command failed.
func (c *Client) readPages(ctx context.Context, pages []listPage, totals map[string]int) (Structure, []failedPage, error) {
	cmds := make([]BatchCommand, len(pages))
	for i, p := range pages {
		key := "p" + strconv.Itoa(i)
		if p.method == MethodAutomatedSolutionList {
			cmds[i] = AutomatedSolutionListCommand(key, nil, p.start)
		} else {
			cmds[i] = DepartmentGetCommand(key, nil, p.start)
		}
	}
	res, _, err := c.Batch(ctx, false, cmds)
	if err != nil {
		return Structure{}, nil, err
	}
	var s Structure
	var failed []failedPage
	for i, p := range pages {
		if err := readPage(res, cmds[i].Key, p, totals, &s); err != nil {
			failed = append(failed, failedPage{p, err})
		}
	}
	return s, failed, nil
}

// readPage reads the answer of one page command into s.
func readPage(res BatchResult, key string, p listPage, totals map[string]int, s *Structure) error {
	raw, ok := res.Results[key]
	if !ok {
		if e := res.Errors[key]; e != nil {
			return e
		}
		return &TransportError{Method: p.method, Err: fmt.Errorf("no answer for page %d", p.start), Ambiguous: true}
	}
	total, ok := res.Totals[key]
	if !ok {
		return &TransportError{Method: p.method, Err: fmt.Errorf("page %d: no total", p.start), Ambiguous: true}
	}
	if p.start > 0 && p.start >= total {
		totals[p.method] = total
		return nil // past the end: the portal answered page 1 again
	}
	if p.method == MethodAutomatedSolutionList {
		items, err := DecodeAutomatedSolutions(raw)
		if err != nil {
			return &TransportError{Method: p.method, Err: err, Ambiguous: true}
		}
		s.Workplaces = append(s.Workplaces, items...)
	} else {
		items, err := DecodeDepartments(raw)
		if err != nil {
			return &TransportError{Method: p.method, Err: err, Ambiguous: true}
		}
		s.Departments = append(s.Departments, items...)
	}
	totals[p.method] = total
	return nil
}

// missingPages lists the pages inside the known totals not asked yet.
func missingPages(totals map[string]int, asked map[listPage]bool) []listPage {
	var out []listPage
	for _, method := range []string{MethodDepartmentGet, MethodAutomatedSolutionList} {
		total, ok := totals[method]
		if !ok {
			continue
		}
		for start := 0; start < total; start += pageSize {
			if p := (listPage{method, start}); !asked[p] {
				out = append(out, p)
				asked[p] = true
			}
		}
	}
	return out
}
