package importer

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validate checks the whole file and returns nil or a *[ValidationError]
// holding every problem found, ordered by line, including the value problems
// [Parse] recorded. It never stops at the first problem.
//
// Rules: the file has at least one department or workplace; every key is
// non-empty, unique across departments and workplaces, valid UTF-8 without
// control characters and at most [MaxNameLen] characters; names and titles
// likewise, and not blank ([TextProblem], the rule single tasks share); a
// department has exactly one of parent (the key of a department of this file)
// or parent_id (an existing department: a positive integer, see
// [ParentIDProblem]); no two departments under the same parent (the same
// parent key or the same parent_id) have the same name, and no two workplaces
// the same title, compared case-insensitively as the portal does
// ([SameName]); parents form no cycle (reported as "cycle: a → b → a", each
// arrow pointing to the parent); sort is 0 or more; head and type_ids are
// positive integers.
//
// Validate is iterative (no recursion over the tree) and O(rows): 10,000
// departments take a few milliseconds. It does not modify f.
func (f *File) Validate() error {
	v := validator{
		probs: append([]Problem(nil), f.problems...),
		seen:  make(map[string]firstUse, len(f.Departments)+len(f.Workplaces)),
		index: make(map[string]int, len(f.Departments)),
	}
	if len(f.Departments)+len(f.Workplaces) == 0 && len(f.problems) == 0 {
		v.probs = append(v.probs, Problem{Message: "the file has no departments and no workplaces"})
	}
	for i := range f.Departments {
		v.department(i, &f.Departments[i])
	}
	for i := range f.Workplaces {
		v.workplace(&f.Workplaces[i])
	}
	v.cycles(f, v.parents(f))
	v.siblings(f)

	if len(v.probs) == 0 {
		return nil
	}
	sortProblems(v.probs)
	return &ValidationError{Problems: v.probs}
}

// firstUse is where a key is first used.
type firstUse struct {
	kind string
	line int
}

// validator collects the problems of one File.
type validator struct {
	probs []Problem
	seen  map[string]firstUse // every usable key → its first use
	index map[string]int      // department key → first index
}

// key checks a row's key and that no other row used it before.
func (v *validator) key(r row, bad fieldSet) {
	if bad&fKey != 0 {
		return
	}
	if v.text(r, "key", r.key) {
		if s, dup := v.seen[r.key]; dup {
			v.add(r, "duplicate key (first used by the %s at line %d)", s.kind, s.line)
		} else {
			v.seen[r.key] = firstUse{r.kind, r.line}
		}
	}
}

// department checks the fields of department i.
func (v *validator) department(i int, d *Department) {
	r := row{kind: "department", key: d.Key, line: d.Line}
	v.key(r, d.bad)
	if _, ok := v.index[d.Key]; !ok && d.bad&fKey == 0 && d.Key != "" {
		v.index[d.Key] = i
	}
	if d.bad&fName == 0 {
		v.text(r, "name", d.Name)
	}
	if d.bad&(fParent|fParentID) == 0 {
		v.parentFields(r, d)
	}
	if d.bad&fSort == 0 && d.Sort < 0 {
		v.add(r, "sort must be 0 or more, not %d", d.Sort)
	}
	if d.bad&fHead == 0 && d.Head < 0 {
		v.add(r, "head must be a user ID (a positive integer), not %d", d.Head)
	}
}

// parentFields checks that a department has exactly one of parent and
// parent_id, and a usable parent_id.
func (v *validator) parentFields(r row, d *Department) {
	switch {
	case d.Parent != "" && d.ParentID != nil:
		v.add(r, "has both parent %q and parent_id %d; give only one", d.Parent, *d.ParentID)
	case d.Parent == "" && d.ParentID == nil:
		v.add(r, "has neither parent nor parent_id; give one (parent: a key in this file, parent_id: an existing department's ID)")
	case d.ParentID != nil:
		if msg := ParentIDProblem(*d.ParentID); msg != "" {
			v.add(r, "%s", msg)
		}
	}
}

// ParentIDProblem checks the portal ID of a department's parent (parent_id
// of an import row, of a single task, of the API and --parent-id of the
// command) and returns "" when it is usable, else why not. It must be a
// positive integer: 0 is refused because every Bitrix24 portal already has
// its root department and department.add without a parent always fails.
func ParentIDProblem(id int64) string {
	switch {
	case id == 0:
		return "parent_id 0: every Bitrix24 portal already has its root department " +
			"and department.add without a parent always fails; give the ID of an existing department (the root is usually 1)"
	case id < 0:
		return fmt.Sprintf("parent_id must be a positive integer (an existing department's ID), not %d", id)
	}
	return ""
}

// workplace checks the fields of a workplace.
func (v *validator) workplace(w *Workplace) {
	r := row{kind: "workplace", key: w.Key, line: w.Line}
	v.key(r, w.bad)
	if w.bad&fName == 0 {
		v.text(r, "title", w.Title)
	}
	if w.bad&fTypeIDs == 0 {
		for _, id := range w.TypeIDs {
			if id <= 0 {
				v.add(r, "type_ids: %d is not a positive integer", id)
			}
		}
	}
}

// parents resolves every department's parent key to its index; -1: no
// parent in the file (or an unusable one, reported here or before).
func (v *validator) parents(f *File) []int32 {
	parent := make([]int32, len(f.Departments))
	for i := range f.Departments {
		d := &f.Departments[i]
		parent[i] = -1
		if d.Parent == "" || d.bad&fParent != 0 {
			continue
		}
		j, ok := v.index[d.Parent]
		if !ok {
			r := row{kind: "department", key: d.Key, line: d.Line}
			if s, isWP := v.seen[d.Parent]; isWP && s.kind == "workplace" {
				v.add(r, "parent %q is a workplace (line %d), not a department", d.Parent, s.line)
			} else {
				v.add(r, "unknown parent %q", d.Parent)
			}
			continue
		}
		parent[i] = int32(j)
	}
	return parent
}

func (v *validator) add(r row, format string, args ...any) {
	v.probs = append(v.probs, Problem{Line: r.line, Kind: r.kind, Key: r.key, Message: fmt.Sprintf(format, args...)})
}

// text checks a key, name or title; it reports whether the value is usable.
func (v *validator) text(r row, field, s string) bool {
	if msg := TextProblem(field, s); msg != "" {
		v.add(r, "%s", msg)
		return false
	}
	return true
}

// TrimName is how a name or title is cleaned before it is checked and
// sent: surrounding white space removed. Import files are read this way,
// and the producers of single tasks (tasks.NewDepartmentTask, the enqueue
// command, the HTTP API) do the same.
func TrimName(s string) string { return strings.TrimSpace(s) }

// TextProblem checks a name, title or key (field names it in the message)
// by the one rule of import rows and single tasks, and returns "" when it is
// acceptable, else the problem: blank, not valid UTF-8 (e.g. Latin-1
// bytes), a control character (Unicode category Cc: C0, DEL, C1), or more
// than [MaxNameLen] characters (counted in characters, not bytes). Names
// are trimmed with [TrimName] first; TextProblem does not trim.
func TextProblem(field, s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return field + " is empty"
	case !utf8.ValidString(s):
		return field + " is not valid UTF-8"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		ch, _ := utf8.DecodeRuneInString(s[strings.IndexFunc(s, unicode.IsControl):])
		return fmt.Sprintf("%s contains the control character %U; remove it", field, ch)
	case utf8.RuneCountInString(s) > MaxNameLen:
		return fmt.Sprintf("%s is %d characters long; the limit is %d", field, utf8.RuneCountInString(s), MaxNameLen)
	}
	return ""
}

// SameName reports whether two department names (or workplace titles)
// name the same object for the portal: equal after trimming, ignoring case,
// as the portal's lookup (SQL LIKE, case-insensitive) compares them.
func SameName(a, b string) bool { return nameKey(a) == nameKey(b) }

func nameKey(s string) string { return strings.ToLower(TrimName(s)) }

// siblings reports departments with the same name under the same parent
// and workplaces with the same title: the portal would hold one object for
// both (a lookup cannot tell them apart), so an import could never create
// both exactly once. Each later row names the first one.
func (v *validator) siblings(f *File) {
	type first struct {
		key  string
		line int
	}
	seen := make(map[string]first, len(f.Departments)+len(f.Workplaces))
	// check records a row's name within scope ("" for workplaces, which
	// have no parent; else the parent in words).
	check := func(r row, scope, field, name string) {
		if TextProblem(field, name) != "" {
			return // reported as a bad name already
		}
		k := r.kind + "\x00" + scope + "\x00" + nameKey(name)
		s, dup := seen[k]
		if !dup {
			seen[k] = first{r.key, r.line}
			return
		}
		where := ""
		if scope != "" {
			where = " under the same parent (" + scope + ")"
		}
		v.add(r, "same %s as %s %s at line %d%s: the portal compares %ss case-insensitively, so both rows would be one %s; rename one",
			field, r.kind, show(s.key), s.line, where, field, r.kind)
	}
	for i := range f.Departments {
		d := &f.Departments[i]
		if d.bad&(fName|fParent|fParentID|fKey) != 0 || v.index[d.Key] != i || d.Key == "" {
			continue // a bad or duplicate key is reported already
		}
		var scope string
		switch {
		case d.Parent != "" && d.ParentID == nil:
			scope = "parent " + show(d.Parent)
		case d.Parent == "" && d.ParentID != nil && *d.ParentID > 0:
			scope = "parent_id " + strconv.FormatInt(*d.ParentID, 10)
		default:
			continue // no usable parent: reported as such
		}
		check(row{kind: "department", key: d.Key, line: d.Line}, scope, "name", d.Name)
	}
	for i := range f.Workplaces {
		w := &f.Workplaces[i]
		if s := v.seen[w.Key]; w.bad&(fName|fKey) == 0 && s.kind == "workplace" && s.line == w.Line {
			check(row{kind: "workplace", key: w.Key, line: w.Line}, "", "title", w.Title)
		}
	}
}

// cycles reports every cycle of parent references once, starting at its
// member that comes first in the file. Each department is walked once
// (colouring), so this is O(rows) and uses no recursion.
func (v *validator) cycles(f *File, parent []int32) {
	const (
		unseen uint8 = iota
		onPath
		done
	)
	state := make([]uint8, len(parent))
	pos := make(map[int32]int) // index → position in path, for the current walk
	var path []int32
	for start := range parent {
		if state[start] != unseen {
			continue
		}
		path = path[:0]
		clear(pos)
		j := int32(start)
		for j >= 0 && state[j] == unseen {
			state[j] = onPath
			pos[j] = len(path)
			path = append(path, j)
			j = parent[j]
		}
		if j >= 0 && state[j] == onPath {
			cyc := path[pos[j]:]
			// Start at the member first in the file, for a stable message.
			m := 0
			for k := range cyc {
				if cyc[k] < cyc[m] {
					m = k
				}
			}
			var b strings.Builder
			b.WriteString("cycle: ")
			for k := 0; k <= len(cyc); k++ {
				if k > 0 {
					b.WriteString(" → ")
				}
				b.WriteString(show(f.Departments[cyc[(m+k)%len(cyc)]].Key))
			}
			b.WriteString(" (each arrow points to the parent)")
			d := &f.Departments[cyc[m]]
			v.add(row{kind: "department", key: d.Key, line: d.Line}, "%s", b.String())
		}
		for _, k := range path {
			state[k] = done
		}
	}
}

// show prints a key bare when that is unambiguous, quoted otherwise.
func show(key string) string {
	if key == "" || strings.IndexFunc(key, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) || r == '"' }) >= 0 || !utf8.ValidString(key) {
		return strconv.Quote(key)
	}
	return key
}

func sortProblems(p []Problem) {
	sort.SliceStable(p, func(i, j int) bool { return p[i].Line < p[j].Line })
}
