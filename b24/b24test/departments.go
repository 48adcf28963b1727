package b24test

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// deptKey identifies a department by what a duplicate shares with it.
type deptKey struct {
	parent int64
	name   string
}

// departmentAdd saves a department, then sets its head, as the real portal
// does in two steps: when the second fails (HeadErrorRate) the department
// exists without a head and the answer is ERROR_CORE DescHeadFailed.
func (p *Portal) departmentAdd(in params) (any, *page, *apiError) {
	nameV, _ := in.lookup("NAME")
	name := strings.TrimSpace(asString(nameV))
	if name == "" {
		return nil, nil, coreError(DescNoName)
	}
	parentV, has := in.lookup("PARENT")
	parent, numeric := asInt(parentV)
	switch {
	case !has || asString(parentV) == "" || (numeric && parent == 0):
		// Every portal has its root department already.
		return nil, nil, coreError(DescTwoRoots)
	case !numeric || p.deptIndex(parent) < 0:
		return nil, nil, coreError(DescNoParent)
	}
	d := Department{ID: p.nextDept, Name: name, Sort: 500, Parent: parent}
	if v, ok := in.lookup("SORT"); ok {
		if n, ok := asInt(v); ok {
			d.Sort = int(n)
		}
	}
	var head int64
	if v, ok := in.lookup("UF_HEAD"); ok {
		head, _ = asInt(v)
	}
	p.saveDeptLocked(d)
	if head == 0 {
		return d.ID, nil, nil
	}
	if p.rollLocked(p.faults.HeadErrorRate, "head_error") {
		return nil, nil, errHeadFailed
	}
	p.depts[len(p.depts)-1].Head = head
	return d.ID, nil, nil
}

// saveDeptLocked stores a new department, counting it and any duplicate.
func (p *Portal) saveDeptLocked(d Department) {
	if k := (deptKey{parent: d.Parent, name: d.Name}); p.deptNames[k] {
		p.stats.DuplicateDepartments++
	} else {
		p.deptNames[k] = true
	}
	p.nextDept++
	p.depts = append(p.depts, d)
	p.stats.DepartmentsCreated++
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

// departmentGet lists the departments that match the filters (ID, NAME
// with SQL LIKE, PARENT, UF_HEAD), in tree order unless sort/order say
// otherwise, a page of 50 from the offset start.
func (p *Portal) departmentGet(in params) (any, *page, *apiError) {
	f := newDeptFilter(in)
	var match []Department
	for _, d := range p.depts {
		if f.match(d) {
			match = append(match, d)
		}
	}
	if field := strings.ToUpper(asString(in["sort"])); field != "" {
		sortDepts(match, field, strings.EqualFold(asString(in["order"]), "desc"))
	} else if len(match) > 1 {
		rank := p.treeRank()
		slices.SortStableFunc(match, func(a, b Department) int { return cmp.Compare(rank[a.ID], rank[b.ID]) })
	}
	lo, hi, pg := paginate(len(match), in.start())
	out := make([]any, 0, hi-lo)
	for _, d := range match[lo:hi] {
		out = append(out, deptRow(d))
	}
	return out, pg, nil
}

// deptRow is a department as department.get answers it: IDs as strings,
// SORT as a number, no PARENT for the root, no UF_HEAD without a head.
func deptRow(d Department) map[string]any {
	m := map[string]any{
		"ID":   strconv.FormatInt(d.ID, 10),
		"NAME": d.Name,
		"SORT": d.Sort,
	}
	if d.Parent != 0 {
		m["PARENT"] = strconv.FormatInt(d.Parent, 10)
	}
	if d.Head != 0 {
		m["UF_HEAD"] = strconv.FormatInt(d.Head, 10)
	}
	return m
}

// deptFilter is department.get's filter: NAME with LIKE, the others exact.
type deptFilter struct {
	ids                            []int64
	name                           string
	parent, head                   int64
	byID, byName, byParent, byHead bool
}

func newDeptFilter(in params) deptFilter {
	var f deptFilter
	if v, ok := in.lookup("ID"); ok {
		f.ids, _ = asIntList(v)
		f.byID = true
	}
	if v, ok := in.lookup("NAME"); ok {
		f.name, f.byName = asString(v), true
	}
	if v, ok := in.lookup("PARENT"); ok {
		f.parent, _ = asInt(v)
		f.byParent = true
	}
	if v, ok := in.lookup("UF_HEAD"); ok {
		f.head, _ = asInt(v)
		f.byHead = true
	}
	return f
}

func (f deptFilter) match(d Department) bool {
	return (!f.byID || slices.Contains(f.ids, d.ID)) &&
		(!f.byName || likeMatch(f.name, d.Name)) &&
		(!f.byParent || f.parent == d.Parent) &&
		(!f.byHead || f.head == d.Head)
}

// sortDepts orders by an explicit department.get sort field, then by ID.
func sortDepts(ds []Department, field string, desc bool) {
	slices.SortStableFunc(ds, func(a, b Department) int {
		var c int
		switch field {
		case "NAME":
			c = strings.Compare(a.Name, b.Name)
		case "SORT":
			c = cmp.Compare(a.Sort, b.Sort)
		case "PARENT":
			c = cmp.Compare(a.Parent, b.Parent)
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if desc {
			return -c
		}
		return c
	})
}

// treeRank numbers every department by its position in the tree, pre-order:
// a parent before its children, siblings by SORT, then ID.
func (p *Portal) treeRank() map[int64]int {
	kids := map[int64][]Department{}
	for _, d := range p.depts {
		kids[d.Parent] = append(kids[d.Parent], d)
	}
	for _, ks := range kids {
		slices.SortFunc(ks, func(a, b Department) int {
			return cmp.Or(cmp.Compare(a.Sort, b.Sort), cmp.Compare(a.ID, b.ID))
		})
	}
	rank := make(map[int64]int, len(p.depts))
	stack := []int64{0}
	for len(stack) > 0 {
		parent := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if parent != 0 {
			rank[parent] = len(rank)
		}
		ks := kids[parent]
		for i := len(ks) - 1; i >= 0; i-- {
			stack = append(stack, ks[i].ID)
		}
	}
	return rank
}

// likeMatch is SQL LIKE on the whole value, case-insensitive: no implied %,
// but % in the pattern matches any run of characters and _ exactly one.
// A backslash is an ordinary character (the portal escapes it).
func likeMatch(pattern, s string) bool {
	pat := []rune(strings.ToLower(pattern))
	str := []rune(strings.ToLower(s))
	pi, si := 0, 0
	star, mark := -1, 0 // the last % seen and where its run started in str
	for si < len(str) {
		switch {
		case pi < len(pat) && pat[pi] == '%':
			star, mark = pi, si
			pi++
		case pi < len(pat) && (pat[pi] == '_' || pat[pi] == str[si]):
			pi++
			si++
		case star >= 0:
			mark++
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == '%' {
		pi++
	}
	return pi == len(pat)
}
