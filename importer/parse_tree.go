package importer

// This file turns a YAML/JSON syntax tree into a File: rows, fields, value
// types, nested children and derived keys.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "a YAML alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return strconv.Quote(n.Value)
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// peekKey is the explicit key of a row mapping, to name the row in problems
// found before its key is read.
func peekKey(m *yaml.Node) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k, v := m.Content[i], m.Content[i+1]; k.Value == "key" && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null" {
			return strings.TrimSpace(v.Value)
		}
	}
	return ""
}

// fields splits a mapping into the values of the allowed fields, recording
// unknown and repeated fields. It returns nil values for absent fields.
func (c *converter) fields(m *yaml.Node, r row, allowed []string) []*yaml.Node {
	vals := make([]*yaml.Node, len(allowed))
	keys := make([]*yaml.Node, len(allowed))
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			c.add(k.Line, r, "a field name must be text, not %s", kindName(k))
			continue
		}
		j := 0
		for j < len(allowed) && allowed[j] != k.Value {
			j++
		}
		switch {
		case j == len(allowed):
			c.add(k.Line, r, "unknown field %q (allowed: %s)", k.Value, strings.Join(allowed, ", "))
		case keys[j] != nil:
			c.add(k.Line, r, "field %q given twice (first at line %d)", k.Value, keys[j].Line)
		default:
			keys[j], vals[j] = k, v
		}
	}
	return vals
}

// text reads a string field. ok is false (and a problem recorded) for a value
// of the wrong type; present is false for an absent, null or empty value.
func (c *converter) text(v *yaml.Node, r row, field string) (s string, present, ok bool) {
	if isNull(v) {
		return "", false, true
	}
	if v.Kind != yaml.ScalarNode {
		c.add(v.Line, r, "%s must be text, not %s", field, kindName(v))
		return "", false, false
	}
	if c.json {
		switch v.ShortTag() {
		case "!!str", "!!int", "!!float":
		default:
			c.add(v.Line, r, "%s must be text, not %s", field, v.Value)
			return "", false, false
		}
	}
	s = strings.TrimSpace(v.Value)
	return s, s != "", true
}

// key reads a key field: absent or null leaves it to be derived, an explicit
// "" stays empty for Validate to report.
func (c *converter) key(v *yaml.Node, r row) (string, bool) {
	s, _, ok := c.text(v, r, "key")
	return s, ok
}

// integer reads an integer field: a number without fraction, or a string
// holding a decimal integer.
func (c *converter) integer(v *yaml.Node, r row, field string) (n int64, present, ok bool) {
	if isNull(v) {
		return 0, false, true
	}
	if v.Kind != yaml.ScalarNode {
		c.add(v.Line, r, "%s must be an integer, not %s", field, kindName(v))
		return 0, false, false
	}
	s := strings.TrimSpace(v.Value)
	switch v.ShortTag() {
	case "!!str":
		if s == "" {
			return 0, false, true
		}
	case "!!int", "!!float":
	default:
		c.add(v.Line, r, "%s must be an integer, not %s", field, v.Value)
		return 0, false, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			c.add(v.Line, r, "%s: %q is out of range", field, v.Value)
		} else {
			c.add(v.Line, r, "%s: %q is not an integer", field, v.Value)
		}
		return 0, false, false
	}
	return n, true, true
}

func (c *converter) file(root *yaml.Node) {
	if root == nil {
		return
	}
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		c.add(root.Line, row{}, "the file must be a mapping with \"departments\" and \"workplaces\", not %s", kindName(root))
		return
	}
	v := c.fields(root, row{}, []string{"departments", "workplaces"})
	if s := c.list(v[0], row{}, "departments"); s != nil {
		c.departments(s.Content)
	}
	if s := c.list(v[1], row{}, "workplaces"); s != nil && !c.fatal {
		for _, n := range s.Content {
			if !c.workplace(n) {
				return
			}
		}
	}
}

// list returns v when it is a list, nil when absent or (with a problem) not a list.
func (c *converter) list(v *yaml.Node, r row, field string) *yaml.Node {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		c.add(v.Line, r, "%s must be a list, not %s", field, kindName(v))
		return nil
	}
	return v
}

var (
	departmentFields = []string{"key", "name", "parent", "parent_id", "sort", "head", "children"}
	workplaceFields  = []string{"key", "title", "type_ids"}
)

// pending is a department node waiting to be converted, with the department
// it is nested in (if any).
type pending struct {
	n         *yaml.Node
	nested    bool
	parent    string
	parentBad bool
}

// departments converts a list of departments and, depth first, their nested
// children, keeping pre-order (a parent before its children). The explicit
// stack makes a 10,000-deep nesting cost heap, not Go stack.
func (c *converter) departments(items []*yaml.Node) {
	stack := make([]pending, 0, len(items))
	for i := len(items) - 1; i >= 0; i-- {
		stack = append(stack, pending{n: items[i]})
	}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !c.count(p.n.Line) {
			return
		}
		d, children := c.department(p)
		if d == nil {
			continue
		}
		c.f.Departments = append(c.f.Departments, *d)
		if children != nil {
			bad := d.bad&fKey != 0 || d.Key == ""
			for i := len(children.Content) - 1; i >= 0; i-- {
				stack = append(stack, pending{n: children.Content[i], nested: true, parent: d.Key, parentBad: bad})
			}
		}
	}
}

func (c *converter) department(p pending) (*Department, *yaml.Node) {
	r := row{kind: "department", line: p.n.Line}
	if p.n.Kind != yaml.MappingNode {
		c.add(p.n.Line, r, "must be a mapping with %s, not %s", strings.Join(departmentFields[:6], ", "), kindName(p.n))
		return nil, nil
	}
	r.key = peekKey(p.n)
	v := c.fields(p.n, r, departmentFields)
	d := &Department{Line: p.n.Line}
	d.Key, d.Name, d.bad = c.keyAndName(v[0], v[1], r, p, "name")
	r.key = d.Key

	if p.nested {
		d.Parent = p.parent
		if p.parentBad {
			d.bad |= fParent
		}
		sameParent := isNull(v[2]) || (v[2].Kind == yaml.ScalarNode && strings.TrimSpace(v[2].Value) == p.parent)
		if !sameParent || !isNull(v[3]) {
			c.add(p.n.Line, r, "is nested under %q and must not set parent or parent_id", p.parent)
			d.bad |= fParent | fParentID
		}
	} else {
		s, _, ok := c.text(v[2], r, "parent")
		if !ok {
			d.bad |= fParent
		}
		d.Parent = s
		id, present, ok := c.integer(v[3], r, "parent_id")
		if !ok {
			d.bad |= fParentID
		}
		if present {
			d.ParentID = &id
		}
	}
	if n, _, ok := c.integer(v[4], r, "sort"); !ok {
		d.bad |= fSort
	} else if n < 0 || n > 1<<31-1 {
		c.add(v[4].Line, r, "sort: %d is out of range 0..2147483647", n)
		d.bad |= fSort
	} else {
		d.Sort = int(n)
	}
	if n, _, ok := c.integer(v[5], r, "head"); !ok {
		d.bad |= fHead
	} else {
		d.Head = n
	}
	return d, c.list(v[6], r, "children")
}

// keyAndName reads a row's key and its name field (a department's name, a
// workplace's title), and derives the key from the name when the row has
// none. bad marks the fields that were unusable.
func (c *converter) keyAndName(keyNode, nameNode *yaml.Node, r row, p pending, field string) (key, name string, bad fieldSet) {
	key, keyOK := c.key(keyNode, r)
	if !keyOK {
		bad |= fKey
	}
	name, _, ok := c.text(nameNode, r, field)
	if !ok {
		bad |= fName
	}
	if isNull(keyNode) && keyOK {
		c.deriveKey(&key, &bad, name, p, r, field)
	}
	return key, name, bad
}

// deriveKey fills in the key of a row that has none.
func (c *converter) deriveKey(key *string, bad *fieldSet, name string, p pending, r row, from string) {
	slug := Slug(name)
	switch {
	case slug == "" && name != "":
		c.add(r.line, r, "has no key, and none can be derived from %s %q; add a key", from, name)
		*bad |= fKey
	case slug == "":
		*bad |= fKey // the empty name is reported by Validate
	case p.nested && p.parentBad:
		*bad |= fKey // the enclosing department's key problem is reported
	case p.nested:
		*key = nestedKey(p.parent, slug)
	default:
		*key = slug
	}
}

func (c *converter) workplace(n *yaml.Node) bool {
	if !c.count(n.Line) {
		return false
	}
	r := row{kind: "workplace", line: n.Line}
	if n.Kind != yaml.MappingNode {
		c.add(n.Line, r, "must be a mapping with %s, not %s", strings.Join(workplaceFields, ", "), kindName(n))
		return true
	}
	r.key = peekKey(n)
	v := c.fields(n, r, workplaceFields)
	w := Workplace{Line: n.Line}
	w.Key, w.Title, w.bad = c.keyAndName(v[0], v[1], r, pending{}, "title")
	r.key = w.Key
	if l := c.list(v[2], r, "type_ids"); l != nil {
		for _, item := range l.Content {
			id, present, ok := c.integer(item, r, "type_ids")
			switch {
			case !ok:
				w.bad |= fTypeIDs
			case !present:
				c.add(item.Line, r, "type_ids: empty entry")
				w.bad |= fTypeIDs
			default:
				w.TypeIDs = append(w.TypeIDs, id)
			}
		}
	} else if !isNull(v[2]) {
		w.bad |= fTypeIDs
	}
	c.f.Workplaces = append(c.f.Workplaces, w)
	return true
}

// nestedKey derives a nested child's key: parent + "/" + slug, shortened
// when that would exceed MaxNameLen characters (deep nesting), so keys stay
// bounded: "~" + 16 hex digits of the SHA-256 of the long form + "/" + the
// slug cut to fit. Deterministic, and distinct for distinct long forms.
func nestedKey(parent, slug string) string {
	k := parent + "/" + slug
	if utf8.RuneCountInString(k) <= MaxNameLen {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	prefix := "~" + hex.EncodeToString(sum[:8]) + "/"
	r := []rune(slug)
	if room := MaxNameLen - len(prefix); len(r) > room {
		r = r[:room]
	}
	return prefix + string(r)
}

// Slug is the key derived from a name when a YAML/JSON row has none: the name
// lowercased, letters and digits of any script kept, every other run of
// characters turned into one "-", none at either end. "Sales EU" → "sales-eu",
// "R&D / Lab #2" → "r-d-lab-2", "Отдел продаж" → "отдел-продаж". A nested
// child's derived key is its parent's key + "/" + Slug(name).
func Slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		} else {
			dash = true
		}
	}
	return b.String()
}
