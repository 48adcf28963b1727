package b24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// DepartmentFields are the fields of department.add. Zero Parent, Sort and
// Head are omitted (the portal then applies its own default; a department
// without PARENT is only accepted as the single root).
type DepartmentFields struct {
	Name   string
	Parent int64
	Sort   int
	Head   int64
}

// Department is a department as department.get returns it (the portal sends
// every value as a string; they are parsed here). Parent is 0 for the root.
type Department struct {
	ID, Parent, Head int64
	Name             string
	Sort             int
}

// AddDepartment calls department.add and returns the new department's ID.
// A 200 without a usable ID is an ambiguous *TransportError: the department
// may exist all the same, so the caller must look before creating again.
func (c *Client) AddDepartment(ctx context.Context, f DepartmentFields) (int64, Meta, error) {
	var raw json.RawMessage
	meta, err := c.Call(ctx, MethodDepartmentAdd, f.params(), &raw)
	if err != nil {
		return 0, meta, err
	}
	id, err := DecodeDepartmentAdd(raw)
	if err != nil {
		return 0, meta, &TransportError{Method: MethodDepartmentAdd, Err: err, Ambiguous: true}
	}
	return id, meta, nil
}

// rawDepartment is a department.get item; values arrive as strings.
type rawDepartment struct {
	ID     flexInt `json:"ID"`
	Name   string  `json:"NAME"`
	Sort   flexInt `json:"SORT"`
	Parent flexInt `json:"PARENT"`
	Head   flexInt `json:"UF_HEAD"`
}

// GetDepartments calls department.get with filter (top-level fields such as
// ID, NAME, PARENT, UF_HEAD; nil for all) and reads every page (see
// paging.go). Note that the portal filters NAME with SQL LIKE on the whole
// value: case-insensitive, % and _ are wildcards. Each page is one request
// (and one Pacer.Wait).
func (c *Client) GetDepartments(ctx context.Context, filter map[string]any) ([]Department, error) {
	params := func(start int) map[string]any { return departmentGetParams(filter, start) }
	return listAll(ctx, c, MethodDepartmentGet, maxPages, params, DecodeDepartments)
}

// FindDepartment looks up the department named exactly name (case-sensitive,
// whole name, spaces around it ignored: the portal trims names) under parent (0: a top-level department). It asks the portal
// with NAME and PARENT, reads every page and compares the names itself,
// because the portal matches NAME with LIKE (a name holding % or _ matches
// others too, and case is ignored). With several exact matches the lowest ID
// wins.
func (c *Client) FindDepartment(ctx context.Context, name string, parent int64) (Department, bool, error) {
	filter := map[string]any{"NAME": name}
	if parent != 0 {
		filter["PARENT"] = parent
	}
	all, err := c.GetDepartments(ctx, filter)
	if err != nil {
		return Department{}, false, err
	}
	var best Department
	found := false
	for _, d := range all {
		if strings.TrimSpace(d.Name) != strings.TrimSpace(name) || d.Parent != parent {
			continue
		}
		if !found || d.ID < best.ID {
			best, found = d, true
		}
	}
	return best, found, nil
}

// decodeList decodes a list result that PHP may send as a list or, when its
// keys are not 0..n-1, as an object (then ordered by key). A missing or null
// list is an error, not an empty list: it says nothing about what exists.
func decodeList[T any](raw json.RawMessage) ([]T, error) {
	if b := bytes.TrimSpace(raw); len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil, errors.New("no list (missing or null)")
	}
	m, err := decodeKeyed(raw)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) { // numeric keys: shorter is smaller
			return len(keys[i]) < len(keys[j])
		}
		return keys[i] < keys[j]
	})
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		var v T
		if err := json.Unmarshal(m[k], &v); err != nil {
			return nil, fmt.Errorf("item %s: %w", k, err)
		}
		out = append(out, v)
	}
	return out, nil
}
