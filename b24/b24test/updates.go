package b24test

import "net/http"

// Descriptions of the update methods' errors.
const (
	DescNoDepartment = "Department not found"
	DescNoWorkplace  = "Digital workplace not found"
)

// departmentUpdate is department.update: ID and the fields to change (NAME,
// SORT, PARENT, UF_HEAD). It answers true.
func (p *Portal) departmentUpdate(in params) (any, *page, *apiError) {
	idV, _ := in.lookup("ID")
	id, ok := asInt(idV)
	i := p.deptIndex(id)
	if !ok || i < 0 {
		return nil, nil, coreError(DescNoDepartment)
	}
	d := &p.depts[i]
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
	p.stats.DepartmentsUpdated++
	return true, nil, nil
}

// automatedSolutionUpdate is crm.automatedsolution.update: id and
// fields[typeIds]. It answers the workplace.
func (p *Portal) automatedSolutionUpdate(in params) (any, *page, *apiError) {
	id, ok := asInt(in["id"])
	for i := range p.wps {
		if !ok || p.wps[i].ID != id {
			continue
		}
		fields := asMap(in["fields"])
		if v, has := fields["typeIds"]; has {
			ids, ok := asIntList(v)
			if !ok {
				return nil, nil, &apiError{http.StatusBadRequest, "BX_INVALID_VALUE", "Invalid value of field «typeIds»"}
			}
			p.wps[i].TypeIDs = append([]int64{}, ids...)
		}
		p.stats.WorkplacesUpdated++
		return map[string]any{"automatedSolution": workplaceMap(p.wps[i])}, nil, nil
	}
	return nil, nil, &apiError{http.StatusBadRequest, "NOT_FOUND", DescNoWorkplace}
}
