package importer

import (
	"fmt"
	"strings"
)

// Plan summarises what an import will create, for `enqueue import --dry-run`.
type Plan struct {
	// Departments and Workplaces are the row counts of the file.
	Departments, Workplaces int
	// Roots are the departments with parent_id: they can be created at once.
	Roots int
	// ByDepth counts departments by depth: ByDepth[0] == Roots, ByDepth[1] are
	// their children, and so on. Empty when the file has no departments.
	ByDepth []int
	// MaxDepth is len(ByDepth)-1, 0 when there are no departments.
	MaxDepth int
}

// String renders the plan for people, one fact per line:
//
//	40 departments, 3 workplaces
//	roots (with parent_id): 1
//	depth 0: 1
//	depth 1: 5
//	...
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d departments, %d workplaces\n", p.Departments, p.Workplaces)
	fmt.Fprintf(&b, "roots (with parent_id): %d\n", p.Roots)
	for d, n := range p.ByDepth {
		fmt.Fprintf(&b, "depth %d: %d\n", d, n)
	}
	fmt.Fprintf(&b, "max depth: %d", p.MaxDepth)
	return b.String()
}

// Plan counts the file's rows by depth. It is meant for a file that passed
// [File.Validate]; on an invalid file, departments that cannot be placed
// (cycles, unknown parents, neither parent nor parent_id) are left out of
// Roots and ByDepth but still counted in Departments.
func (f *File) Plan() Plan {
	depth := f.depths()
	p := Plan{Departments: len(f.Departments), Workplaces: len(f.Workplaces)}
	for _, d := range depth {
		if d < 0 {
			continue
		}
		for len(p.ByDepth) <= int(d) {
			p.ByDepth = append(p.ByDepth, 0)
		}
		p.ByDepth[d]++
	}
	if len(p.ByDepth) > 0 {
		p.Roots = p.ByDepth[0]
		p.MaxDepth = len(p.ByDepth) - 1
	}
	return p
}

// Order returns the departments parents first: every department with
// parent_id (depth 0) in file order, then their children (depth 1) in file
// order, and so on. Creating them in this order, each department's parent
// exists before it. Like [File.Plan], departments that cannot be placed in an
// invalid file are left out. The result is a new slice; f is not modified.
func (f *File) Order() []Department {
	depth := f.depths()
	var count []int // counting sort by depth: stable and O(rows)
	for _, d := range depth {
		if d >= 0 {
			for len(count) <= int(d) {
				count = append(count, 0)
			}
			count[d]++
		}
	}
	start := make([]int, len(count))
	total := 0
	for d, n := range count {
		start[d] = total
		total += n
	}
	out := make([]Department, total)
	for i, d := range depth {
		if d >= 0 {
			out[start[d]] = f.Departments[i]
			start[d]++
		}
	}
	return out
}

// Roots returns the departments with parent_id (and no parent), in file
// order: those an import can create at once.
func (f *File) Roots() []Department {
	var out []Department
	for _, d := range f.Departments {
		if d.Parent == "" && d.ParentID != nil {
			out = append(out, d)
		}
	}
	return out
}

// Children indexes the departments by their parent key: Children()[k] are the
// departments whose Parent is k, in file order. Roots are not in it. The
// engine uses it to release a department's children once its ID is known. In
// a file with duplicate keys the children of both rows share one entry, as
// [File.Validate] reports the duplicate anyway.
func (f *File) Children() map[string][]Department {
	out := make(map[string][]Department)
	for _, d := range f.Departments {
		if d.Parent != "" {
			out[d.Parent] = append(out[d.Parent], d)
		}
	}
	return out
}

// depths returns each department's depth (0 for a department with parent_id
// and no parent), or -1 where it cannot be placed. Iterative: each
// department is walked once, so a 1,000,000-deep chain costs heap, not stack.
func (f *File) depths() []int32 {
	const (
		unknown int32 = -2
		onPath  int32 = -3
	)
	index := make(map[string]int, len(f.Departments))
	for i, d := range f.Departments {
		if _, dup := index[d.Key]; !dup {
			index[d.Key] = i
		}
	}
	depth := make([]int32, len(f.Departments))
	for i := range depth {
		depth[i] = unknown
	}
	var path []int
	for i := range f.Departments {
		if depth[i] != unknown {
			continue
		}
		path = path[:0]
		var top int32 // depth of the node above path[len(path)-1], -1: unplaceable
		for j := i; ; {
			if depth[j] == onPath {
				top = -1 // a cycle
				break
			}
			if depth[j] != unknown {
				top = depth[j]
				break
			}
			d := &f.Departments[j]
			if d.Parent == "" {
				if d.ParentID != nil {
					depth[j] = 0
				} else {
					depth[j] = -1
				}
				top = depth[j]
				break
			}
			p, ok := index[d.Parent]
			if !ok {
				depth[j] = -1
				top = -1
				break
			}
			depth[j] = onPath
			path = append(path, j)
			j = p
		}
		for k := len(path) - 1; k >= 0; k-- {
			if top >= 0 {
				top++
			}
			depth[path[k]] = top
		}
	}
	return depth
}
