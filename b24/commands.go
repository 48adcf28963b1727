package b24

// The wire format of the methods b24queue uses, in one place: the
// parameters each method is sent with and how its result is decoded, for a
// plain call (AddDepartment, GetDepartments, ...) and for a command of a
// batch (DepartmentAddCommand, ...) alike. Callers that build batches use
// these instead of spelling parameters or result shapes themselves.

import (
	"encoding/json"
	"fmt"
	"maps"
)

// Method names of the calls this package wraps.
const (
	MethodBatch                   = "batch"
	MethodDepartmentAdd           = "department.add"
	MethodDepartmentGet           = "department.get"
	MethodAutomatedSolutionAdd    = "crm.automatedsolution.add"
	MethodAutomatedSolutionList   = "crm.automatedsolution.list"
	MethodDepartmentUpdate        = "department.update"
	MethodAutomatedSolutionUpdate = "crm.automatedsolution.update"
)

// params returns f as department.add parameters; zero Parent, Sort and Head
// are left out.
func (f DepartmentFields) params() map[string]any {
	p := map[string]any{"NAME": f.Name}
	if f.Parent != 0 {
		p["PARENT"] = f.Parent
	}
	if f.Sort != 0 {
		p["SORT"] = f.Sort
	}
	if f.Head != 0 {
		p["UF_HEAD"] = f.Head
	}
	return p
}

// DepartmentAddCommand is the batch command that creates f. A name for which
// HasBatchReference is true would be rewritten by the portal: create it by
// a single call (AddDepartment).
func DepartmentAddCommand(key string, f DepartmentFields) BatchCommand {
	return BatchCommand{Key: key, Method: MethodDepartmentAdd, Params: f.params()}
}

// DecodeDepartmentAdd decodes a department.add result: the new ID, an
// integer (or a string or JSON number with an integral value). Anything
// else, and an ID that is not positive, is an error: a 200 without a usable
// ID is not a success, and the department may exist all the same.
func DecodeDepartmentAdd(raw json.RawMessage) (int64, error) {
	var id strictInt
	if err := json.Unmarshal(raw, &id); err != nil {
		return 0, fmt.Errorf("decode %s result: %w", MethodDepartmentAdd, err)
	}
	if id <= 0 {
		return 0, fmt.Errorf("decode %s result: ID %d is not a department ID", MethodDepartmentAdd, id)
	}
	return int64(id), nil
}

// params returns f as crm.automatedsolution.add parameters; empty TypeIDs
// are left out.
func (f AutomatedSolutionFields) params() map[string]any {
	fields := map[string]any{"title": f.Title}
	if len(f.TypeIDs) > 0 {
		fields["typeIds"] = f.TypeIDs
	}
	return map[string]any{"fields": fields}
}

// AutomatedSolutionAddCommand is the batch command that creates f. A title
// for which HasBatchReference is true would be rewritten by the portal:
// create it by a single call (AddAutomatedSolution).
func AutomatedSolutionAddCommand(key string, f AutomatedSolutionFields) BatchCommand {
	return BatchCommand{Key: key, Method: MethodAutomatedSolutionAdd, Params: f.params()}
}

// DecodeAutomatedSolutionAdd decodes a crm.automatedsolution.add result:
// {"automatedSolution": {"id": N, ...}} with a positive integer ID.
func DecodeAutomatedSolutionAdd(raw json.RawMessage) (AutomatedSolution, error) {
	var res struct {
		AutomatedSolution *rawAutomatedSolution `json:"automatedSolution"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return AutomatedSolution{}, fmt.Errorf("decode %s result: %w", MethodAutomatedSolutionAdd, err)
	}
	if res.AutomatedSolution == nil || res.AutomatedSolution.ID <= 0 {
		return AutomatedSolution{}, fmt.Errorf("decode %s result: no automatedSolution with an ID", MethodAutomatedSolutionAdd)
	}
	return res.AutomatedSolution.solution(), nil
}

// departmentGetParams returns the department.get parameters of filter
// (top-level fields such as NAME, PARENT) for the page at start.
func departmentGetParams(filter map[string]any, start int) map[string]any {
	params := maps.Clone(filter)
	if params == nil {
		params = map[string]any{}
	}
	if start > 0 {
		params[startParam] = start
	}
	return params
}

// DepartmentGetCommand is the batch command that reads the page at start
// of the departments matching filter.
func DepartmentGetCommand(key string, filter map[string]any, start int) BatchCommand {
	return BatchCommand{Key: key, Method: MethodDepartmentGet, Params: departmentGetParams(filter, start)}
}

// DecodeDepartments decodes a department.get result (one page). A null or
// missing result is an error (retry the lookup), `[]` an empty page.
func DecodeDepartments(raw json.RawMessage) ([]Department, error) {
	items, err := decodeList[rawDepartment](raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s result: %w", MethodDepartmentGet, err)
	}
	out := make([]Department, 0, len(items))
	for _, d := range items {
		out = append(out, Department{ID: int64(d.ID), Parent: int64(d.Parent), Head: int64(d.Head), Name: d.Name, Sort: int(d.Sort)})
	}
	return out, nil
}

// automatedSolutionListParams returns the crm.automatedsolution.list
// parameters of filter (e.g. {"title": "HR"}; nil for all), ordered by id,
// for the page at start.
func automatedSolutionListParams(filter map[string]any, start int) map[string]any {
	params := map[string]any{"order": map[string]any{"id": "ASC"}}
	if len(filter) > 0 {
		params["filter"] = maps.Clone(filter)
	}
	if start > 0 {
		params[startParam] = start
	}
	return params
}

// AutomatedSolutionListCommand is the batch command that reads the page at
// start of the workplaces matching filter.
func AutomatedSolutionListCommand(key string, filter map[string]any, start int) BatchCommand {
	return BatchCommand{Key: key, Method: MethodAutomatedSolutionList, Params: automatedSolutionListParams(filter, start)}
}

// DecodeAutomatedSolutions decodes a crm.automatedsolution.list result (one
// page): {"automatedSolutions": [...]}. A result without automatedSolutions,
// or with null, is an error (retry the lookup), `[]` an empty page.
func DecodeAutomatedSolutions(raw json.RawMessage) ([]AutomatedSolution, error) {
	var res struct {
		List json.RawMessage `json:"automatedSolutions"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("decode %s result: %w", MethodAutomatedSolutionList, err)
	}
	items, err := decodeList[rawAutomatedSolution](res.List)
	if err != nil {
		return nil, fmt.Errorf("decode %s result: %w", MethodAutomatedSolutionList, err)
	}
	out := make([]AutomatedSolution, 0, len(items))
	for _, r := range items {
		out = append(out, r.solution())
	}
	return out, nil
}

// DepartmentUpdate is what department.update changes; zero fields are left
// as they are.
type DepartmentUpdate struct {
	ID   int64
	Sort int
	Head int64
}

// DepartmentUpdateCommand is the batch command that applies u.
func DepartmentUpdateCommand(key string, u DepartmentUpdate) BatchCommand {
	p := map[string]any{"ID": u.ID}
	if u.Sort != 0 {
		p["SORT"] = u.Sort
	}
	if u.Head != 0 {
		p["UF_HEAD"] = u.Head
	}
	return BatchCommand{Key: key, Method: MethodDepartmentUpdate, Params: p}
}

// AutomatedSolutionUpdateCommand is the batch command that sets the
// smart-process types of workplace id.
func AutomatedSolutionUpdateCommand(key string, id int64, typeIDs []int64) BatchCommand {
	return BatchCommand{Key: key, Method: MethodAutomatedSolutionUpdate,
		Params: map[string]any{"id": id, "fields": map[string]any{"typeIds": typeIDs}}}
}
