package importer

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Parse reads an import file of the given format with [DefaultLimits].
// See [Limits.Parse].
func Parse(format Format, r io.Reader) (*File, error) {
	return DefaultLimits.Parse(format, r)
}

// ParseFile reads the file at path with [DefaultLimits], choosing the format
// by its extension ([FormatOf]). It also returns the file's raw bytes, for
// [ID]. See [Limits.Parse] for the errors.
func ParseFile(path string) (*File, []byte, error) {
	return DefaultLimits.ParseFile(path)
}

// ParseFile is [ParseFile] with these limits. A file larger than MaxBytes is
// refused without reading it all.
func (l Limits) ParseFile(path string) (*File, []byte, error) {
	format, err := FormatOf(path)
	if err != nil {
		return nil, nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("importer: %w", err)
	}
	defer fh.Close()
	raw, err := l.read(fh)
	if err != nil {
		return nil, nil, fmt.Errorf("importer: read %s: %w", path, err)
	}
	f, err := l.ParseBytes(format, raw)
	return f, raw, err
}

// Parse reads all of r (at most MaxBytes) and parses it as format.
//
// The error is a *[ValidationError] when the input cannot be turned into a
// model at all: it is larger than MaxBytes, is not valid UTF-8, has a syntax
// error (with its line), has more than MaxRows rows, or a CSV header lacks a
// required column. Any other error is an I/O error of r.
//
// Problems of single values (a string where a number belongs, an unknown
// field, a list where a name belongs, ...) do not fail Parse: they are kept in
// the File and reported by [File.Validate] together with the problems of the
// whole file. Always call Validate before using the File.
//
// Accepted input (YAML and JSON share the rules; "absent" and null are the same):
//   - the top level is a mapping with "departments" and/or "workplaces", both lists;
//   - a department has key, name, parent, parent_id, sort, head and, in
//     YAML/JSON only, children: a list of departments whose parent is the
//     enclosing department (they must not set parent or parent_id);
//   - a workplace has key, title, type_ids (a list of integers);
//   - a missing key is derived: slug(name) ([Slug]) for a top-level row,
//     PARENTKEY + "/" + slug(name) for a nested child ("sales" → "sales/eu";
//     beyond 255 characters a hash shortens it, see nestedKey),
//     slug(title) for a workplace. An explicit key is used as given;
//   - string fields accept numbers as text (key: 2024); integer fields accept
//     decimal integers and strings holding one ("12"); an empty string is absent;
//   - names, titles and keys are trimmed of surrounding white space;
//   - a leading UTF-8 byte order mark is ignored; YAML aliases are refused;
//     a YAML stream must hold a single document.
//
// CSV: the header row is required; columns key and name are required; parent,
// parent_id, sort, head are optional and may come in any order (names are
// case-insensitive); an unknown column is a problem. Rows whose cells are all
// empty are skipped. The separator is a comma, or a semicolon when the header
// contains semicolons and no comma (spreadsheets in many locales). Line
// numbers of CSV problems are rows: the header is row 1.
func (l Limits) Parse(format Format, r io.Reader) (*File, error) {
	raw, err := l.read(r)
	if err != nil {
		return nil, fmt.Errorf("importer: read: %w", err)
	}
	return l.ParseBytes(format, raw)
}

// ParseBytes is [Limits.Parse] of raw bytes already in memory.
func (l Limits) ParseBytes(format Format, raw []byte) (_ *File, err error) {
	if l.MaxBytes > 0 && int64(len(raw)) > l.MaxBytes {
		return nil, tooLarge(l.MaxBytes)
	}
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(raw) {
		return nil, &ValidationError{Problems: invalidUTF8Lines(raw)}
	}
	defer func() {
		// yaml.v3 and our converters must not panic on any input (fuzzed);
		// this is the last line of defence that keeps a bad file a bad file
		// rather than a crashed worker.
		if v := recover(); v != nil {
			err = &ValidationError{Problems: []Problem{{Message: fmt.Sprintf("cannot parse %s file: internal error: %v", format, v)}}}
		}
	}()
	c := &converter{lim: l, f: &File{}, json: format == JSON}
	switch format {
	case JSON:
		root, probs := l.jsonTree(raw)
		if probs != nil {
			return nil, &ValidationError{Problems: probs}
		}
		c.file(root)
	case YAML:
		root, probs := yamlTree(raw)
		if probs != nil {
			return nil, &ValidationError{Problems: probs}
		}
		c.file(root)
	case CSV:
		c.csv(raw)
	default:
		return nil, fmt.Errorf("importer: unknown format %v", format)
	}
	if c.fatal {
		sortProblems(c.f.problems)
		return nil, &ValidationError{Problems: c.f.problems}
	}
	return c.f, nil
}

func (l Limits) read(r io.Reader) ([]byte, error) {
	if l.MaxBytes <= 0 {
		return io.ReadAll(r)
	}
	raw, err := io.ReadAll(io.LimitReader(r, l.MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > l.MaxBytes {
		return nil, tooLarge(l.MaxBytes)
	}
	return raw, nil
}

func tooLarge(max int64) error {
	return &ValidationError{Problems: []Problem{{Message: fmt.Sprintf("the file is larger than the limit of %s", sizeString(max))}}}
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// maxEncodingProblems caps the per-line invalid UTF-8 report: a binary file
// would otherwise produce one problem per line.
const maxEncodingProblems = 20

func invalidUTF8Lines(raw []byte) []Problem {
	var probs []Problem
	line, last := 1, 0
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size <= 1 && line != last {
			if len(probs) == maxEncodingProblems {
				probs = append(probs, Problem{Line: line, Message: "more lines with invalid UTF-8 not shown; is this a text file in UTF-8?"})
				return probs
			}
			probs = append(probs, Problem{Line: line, Message: "invalid UTF-8; save the file as UTF-8"})
			last = line
		}
		if raw[i] == '\n' {
			line++
		}
		i += size
	}
	return probs
}

// lineCounter maps byte offsets to 1-based lines; cheap for increasing offsets.
type lineCounter struct {
	raw  []byte
	pos  int
	line int
}

// at returns the line of the byte at offset off.
func (lc *lineCounter) at(off int64) int {
	o := int(max(0, min(off, int64(len(lc.raw)))))
	if o < lc.pos || lc.line == 0 {
		lc.pos, lc.line = 0, 1
	}
	lc.line += bytes.Count(lc.raw[lc.pos:o], []byte{'\n'})
	lc.pos = o
	return lc.line
}

// jsonTree builds a yaml.Node tree from JSON with encoding/json's tokenizer,
// so that JSON and YAML share one converter and every value keeps its line.
// It uses an explicit stack: nesting depth costs no Go stack.
func (l Limits) jsonTree(raw []byte) (*yaml.Node, []Problem) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	lc := lineCounter{raw: raw}
	var root *yaml.Node
	var stack []*yaml.Node
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				return nil, []Problem{{Line: lc.at(int64(len(raw))), Message: "JSON syntax: unexpected end of input (unclosed " + openName(stack[len(stack)-1]) + ")"}}
			}
			return root, nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, []Problem{{Line: lc.at(se.Offset - 1), Message: "JSON syntax: " + se.Error()}}
			}
			return nil, []Problem{{Line: lc.at(dec.InputOffset()), Message: "JSON syntax: " + err.Error()}}
		}
		// InputOffset is just past the token; a token never spans lines.
		line := lc.at(dec.InputOffset() - 1)
		var n *yaml.Node
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
			case '[':
				n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line}
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: t, Line: line}
		case json.Number:
			tag := "!!int"
			if strings.ContainsAny(string(t), ".eE") {
				tag = "!!float"
			}
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t), Line: line}
		case bool:
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t), Line: line}
		case nil:
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: line}
		}
		if len(stack) == 0 {
			if root != nil {
				return nil, []Problem{{Line: line, Message: "JSON syntax: unexpected data after the end of the top-level value"}}
			}
			root = n
		} else {
			top := stack[len(stack)-1]
			top.Content = append(top.Content, n)
		}
		if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			if l.MaxDepth > 0 && len(stack) >= l.MaxDepth {
				return nil, []Problem{{Line: line, Message: fmt.Sprintf("nesting deeper than the limit of %d levels", l.MaxDepth)}}
			}
			stack = append(stack, n)
		}
	}
}

func openName(n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		return "{ from line " + strconv.Itoa(n.Line)
	}
	return "[ from line " + strconv.Itoa(n.Line)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlTree(raw []byte) (*yaml.Node, []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, nil // no document at all: an empty file
		}
		return nil, []Problem{yamlProblem(err, raw)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, []Problem{yamlProblem(err, raw)}
	default:
		return nil, []Problem{{Line: next.Line, Message: "more than one YAML document (---); put everything in one"}}
	}
	return &doc, nil
}

// yamlBisectLimit bounds the files whose syntax-error line yamlProblem
// refines by re-parsing prefixes (about log2(lines) parses, ~2 s for 1 MiB);
// larger files get yaml.v3's own line.
const yamlBisectLimit = 1 << 20

func yamlProblem(err error, raw []byte) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	// yaml.v3 reports the line where the enclosing construct starts, 0-based
	// for parser errors, and no line at all for some scanner errors. The
	// first line at which a prefix of the file stops parsing is where the
	// person has to look; find it by bisection.
	if len(raw) <= yamlBisectLimit {
		if l := firstBadYAMLLine(raw); l > 0 {
			line = l
		}
	}
	return Problem{Line: line, Message: "YAML syntax: " + msg}
}

// firstBadYAMLLine returns the smallest n such that the first n lines of raw
// do not parse as YAML, or 0 if raw parses. Syntax errors persist once a
// prefix contains them, which makes bisection valid; if one does not, the
// answer is still a line at which a prefix fails.
func firstBadYAMLLine(raw []byte) int {
	ends := []int{} // ends[i]: offset just past line i+1
	for i, b := range raw {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(raw) {
		ends = append(ends, len(raw))
	}
	fails := func(n int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(raw[:ends[n-1]]))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); err != nil {
				return err != io.EOF
			}
		}
	}
	if !fails(len(ends)) {
		return 0
	}
	lo, hi := 1, len(ends) // fails(hi)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi
}

// converter turns a syntax tree (or CSV records) into a File, collecting the
// problems of single values into File.problems.
type converter struct {
	lim   Limits
	f     *File
	json  bool // stricter about YAML's implicit typing not applying
	rows  int
	fatal bool // stop: the problems so far make the rest meaningless (row limit)
}

// row identifies the row a problem belongs to.
type row struct {
	kind, key string
	line      int
}

func (c *converter) add(line int, r row, format string, args ...any) {
	c.f.problems = append(c.f.problems, Problem{Line: line, Kind: r.kind, Key: r.key, Message: fmt.Sprintf(format, args...)})
}

// count admits one more row, or records the row-limit problem and stops.
func (c *converter) count(line int) bool {
	c.rows++
	if c.lim.MaxRows > 0 && c.rows > c.lim.MaxRows {
		c.add(line, row{}, "too many rows: the limit is %d departments and workplaces per file; split the file", c.lim.MaxRows)
		c.fatal = true
		return false
	}
	return true
}

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

	key, keyOK := c.key(v[0], r)
	if !keyOK {
		d.bad |= fKey
	}
	d.Key = key
	name, _, ok := c.text(v[1], r, "name")
	if !ok {
		d.bad |= fName
	}
	d.Name = name
	if isNull(v[0]) && keyOK {
		c.deriveKey(&d.Key, &d.bad, d.Name, p, r, "name")
	}
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
	key, keyOK := c.key(v[0], r)
	if !keyOK {
		w.bad |= fKey
	}
	w.Key = key
	title, _, ok := c.text(v[1], r, "title")
	if !ok {
		w.bad |= fName
	}
	w.Title = title
	if isNull(v[0]) && keyOK {
		c.deriveKey(&w.Key, &w.bad, w.Title, pending{}, r, "title")
	}
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

// CSVColumns are the columns of a CSV import file; key and name are required.
var CSVColumns = []string{"key", "name", "parent", "parent_id", "sort", "head"}

func (c *converter) csv(raw []byte) {
	rd := csv.NewReader(bytes.NewReader(raw))
	rd.FieldsPerRecord = -1 // a short row is a problem of that row, not of the file
	rd.ReuseRecord = true
	if first, _, _ := bytes.Cut(raw, []byte{'\n'}); bytes.IndexByte(first, ',') < 0 && bytes.IndexByte(first, ';') >= 0 {
		rd.Comma = ';'
	}
	header, err := rd.Read()
	if err == io.EOF {
		return // empty: Validate reports it
	}
	if err != nil {
		c.csvSyntax(err, 1)
		return
	}
	col := make([]int, len(CSVColumns)) // column index by CSVColumns position, -1 absent
	for i := range col {
		col[i] = -1
	}
	hr := row{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		j := 0
		for j < len(CSVColumns) && CSVColumns[j] != name {
			j++
		}
		switch {
		case j == len(CSVColumns):
			c.add(1, hr, "unknown column %q (allowed: %s)", h, strings.Join(CSVColumns, ", "))
		case col[j] >= 0:
			c.add(1, hr, "column %q given twice (columns %d and %d)", name, col[j]+1, i+1)
		default:
			col[j] = i
		}
	}
	for j, req := range []string{"key", "name"} {
		if col[j] < 0 {
			c.add(1, hr, "missing column %q; the header must name the columns, e.g. %s", req, strings.Join(CSVColumns, ","))
			c.fatal = true
		}
	}
	if c.fatal {
		return
	}
	width := len(header)
	for rowNum := 2; ; rowNum++ {
		rec, err := rd.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			c.csvSyntax(err, rowNum)
			return
		}
		if blank(rec) {
			continue
		}
		if !c.count(rowNum) {
			return
		}
		cell := func(j int) string {
			if col[j] < 0 || col[j] >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[col[j]])
		}
		d := Department{Line: rowNum, Key: cell(0), Name: cell(1), Parent: cell(2)}
		r := row{kind: "department", key: d.Key, line: rowNum}
		if len(rec) != width {
			c.add(rowNum, r, "has %d cells, the header has %d", len(rec), width)
			continue
		}
		num := func(j int, bit fieldSet) (int64, bool) {
			s := cell(j)
			if s == "" {
				return 0, false
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				c.add(rowNum, r, "%s: %q is not an integer", CSVColumns[j], s)
				d.bad |= bit
				return 0, false
			}
			return n, true
		}
		if id, ok := num(3, fParentID); ok {
			d.ParentID = &id
		}
		if n, ok := num(4, fSort); ok {
			if n < 0 || n > 1<<31-1 {
				c.add(rowNum, r, "sort: %d is out of range 0..2147483647", n)
				d.bad |= fSort
			} else {
				d.Sort = int(n)
			}
		}
		d.Head, _ = num(5, fHead)
		c.f.Departments = append(c.f.Departments, d)
	}
}

func blank(rec []string) bool {
	for _, s := range rec {
		if strings.TrimSpace(s) != "" {
			return false
		}
	}
	return true
}

func (c *converter) csvSyntax(err error, rowNum int) {
	msg := err.Error()
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg = pe.Err.Error()
		if pe.StartLine != pe.Line {
			msg += fmt.Sprintf(" (a quoted cell opened on text line %d)", pe.StartLine)
		}
	}
	c.add(rowNum, row{}, "CSV syntax: %s", msg)
	c.fatal = true
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
