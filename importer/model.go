// Package importer turns an org-structure file (JSON, YAML or CSV) into a
// validated model of departments and workplaces, and plans the order in which
// they can be created: parents before children.
//
// The package is pure: no I/O beyond reading the file, no Redis, no queue
// (the Redis state of an import is package importer/store). Parsing is
// split by format: parse.go (shared), parse_json.go, parse_yaml.go,
// parse_tree.go (JSON and YAML rows) and parse_csv.go. A typical caller does
//
//	f, raw, err := importer.ParseFile(path) // syntax errors: *ValidationError
//	if err == nil {
//		err = f.Validate() // every problem of the whole file: *ValidationError
//	}
//	var verr *importer.ValidationError
//	if errors.As(err, &verr) { /* print verr.Problems, exit 2 */ }
//	id := f.ID() // or importer.ID(raw)
//	for _, d := range f.Order() { ... }
//
// Parse collects type problems (a string where a number belongs, an unknown
// field, ...) into the File instead of failing, so that Validate can report
// them together with the semantic problems (duplicate keys, cycles, ...): the
// user sees every problem of the file at once. A nil error from Parse
// therefore does not mean the file is valid; always call Validate.
package importer

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Department is one department row of an import file.
//
// Exactly one of Parent and ParentID must be set in a valid file: Parent names
// the key of another department of the same file, ParentID an existing
// department of the portal (a positive ID: every portal already has its root
// department, so 0 is refused).
type Department struct {
	// Key identifies the row inside the file and in the import's status (key →
	// created ID). In YAML/JSON it may be omitted; it is then derived from the
	// name, see [Slug] and the package documentation of nested files.
	Key string
	// Name is the department's NAME, trimmed of surrounding white space.
	Name string
	// Parent is the key of the parent department in the same file ("" if none).
	Parent string
	// ParentID is the ID of an existing parent department in the portal, nil
	// when the file does not give one.
	ParentID *int64
	// Sort is the SORT field; 0 means "not given" (the portal's default).
	Sort int
	// Head is the user ID of the department head; 0 means none.
	Head int64
	// Line is where the row starts: the 1-based line of its first field in
	// YAML, of its "{" in JSON, the 1-based row in CSV (the header is row 1;
	// a quoted cell spanning text lines still counts as one row).
	Line int

	bad fieldSet // fields whose problem Parse already recorded; Validate skips them
}

// Workplace is one digital workplace (crm.automatedsolution) of an import file.
type Workplace struct {
	// Key identifies the row inside the file; derived from the title when
	// omitted in YAML/JSON.
	Key string
	// Title is the workplace title, trimmed of surrounding white space.
	Title string
	// TypeIDs are the smart-process type IDs bound to the workplace (may be empty).
	TypeIDs []int64
	// Line is the 1-based line where the row starts (as for Department).
	Line int

	bad fieldSet
}

// File is the parsed content of an import file: departments and workplaces in
// file order. Nested departments (YAML/JSON "children") are flattened in
// pre-order: a department comes before its children, which keep their order.
//
// A File is not safe for concurrent mutation; its methods only read it, so a
// File that nobody modifies may be shared between goroutines.
type File struct {
	Departments []Department
	Workplaces  []Workplace

	// problems are the type problems Parse found; Validate reports them with
	// its own so that the user sees everything at once.
	problems []Problem
}

// fieldSet marks fields of a row whose value was unusable; Validate does not
// report derived problems about them (for example "neither parent nor
// parent_id" after "parent_id: \"abc\" is not an integer").
type fieldSet uint16

const (
	fKey fieldSet = 1 << iota
	fName
	fParent
	fParentID
	fSort
	fHead
	fTypeIDs
)

// Format is the syntax of an import file. The zero value is not a format.
type Format int

// The import file formats.
const (
	JSON Format = iota + 1
	YAML
	CSV
)

// String returns "json", "yaml" or "csv" (or "Format(N)" for an invalid value).
func (f Format) String() string {
	switch f {
	case JSON:
		return "json"
	case YAML:
		return "yaml"
	case CSV:
		return "csv"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// FormatOf chooses the format by the file name's extension, case-insensitive:
// .json, .yaml or .yml, .csv. Any other extension is an error.
func FormatOf(filename string) (Format, error) {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".json":
		return JSON, nil
	case ".yaml", ".yml":
		return YAML, nil
	case ".csv":
		return CSV, nil
	}
	return 0, fmt.Errorf("importer: %q: unknown file type, want .json, .yaml, .yml or .csv", filepath.Base(filename))
}

// Problem is one thing wrong with an import file.
type Problem struct {
	// Line is the 1-based line (YAML/JSON) or row (CSV); 0 for a problem of
	// the whole file (too large, empty).
	Line int
	// Kind is "department" or "workplace" for a problem of one row, "" otherwise.
	Kind string
	// Key is the row's key ("" when the row has none or the problem is not
	// about a row).
	Key string
	// Message says what is wrong, in words for the person who wrote the file.
	Message string
}

// String formats the problem for people:
//
//	line 12: department "sales-eu": unknown parent "salez"
//
// User-supplied text is quoted with Go syntax, so control characters and
// invalid UTF-8 cannot reach the terminal unescaped.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Kind != "" {
		b.WriteString(p.Kind)
		if p.Key != "" {
			b.WriteByte(' ')
			b.WriteString(strconv.Quote(p.Key))
		}
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError is every problem found in an import file, ordered by line
// (whole-file problems first). Callers branch on it with errors.As: it means
// "the input is wrong" (exit code 2, HTTP 400), never a runtime failure.
type ValidationError struct {
	Problems []Problem
}

// Error lists all problems, one per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("invalid import file: ")
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "invalid import file: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Limits bound what an import file may contain, so that a wrong or hostile
// file is refused with a clear problem instead of exhausting memory.
type Limits struct {
	// MaxBytes is the largest accepted file size in bytes.
	MaxBytes int64
	// MaxRows is the largest accepted number of departments plus workplaces.
	MaxRows int
	// MaxDepth is the deepest accepted nesting of JSON/YAML values (each
	// nested "children" level costs two: the list and the object).
	MaxDepth int
}

// DefaultLimits are the limits of [Parse] and [ParseFile]: 64 MiB, 200,000
// rows, nesting 10,000 (the limit yaml.v3 also enforces). Parsing a file at
// the size limit holds a syntax tree of a few hundred MiB for YAML/JSON;
// realistic files (200,000 rows of ~100 bytes) are around 20 MiB.
var DefaultLimits = Limits{MaxBytes: 64 << 20, MaxRows: 200_000, MaxDepth: 10_000}

// Field length limits.
const (
	// MaxNameLen is the longest accepted name, title or key, in characters
	// (Unicode code points), not bytes.
	MaxNameLen = 255
)
