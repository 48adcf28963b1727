package importer

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func ptr(n int64) *int64 { return &n }

// problems returns the problems of err, failing the test if err is not a
// *ValidationError.
func problems(t testing.TB, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Problems
}

// load parses raw as format and validates it; the error is Parse's or Validate's.
func load(format Format, raw []byte) (*File, error) {
	f, err := Parse(format, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return f, f.Validate()
}

// genTree returns n departments: the first has parent_id 1, department i>0 is
// a child of department (i-1)/fanout. fanout 1 is a chain of depth n-1.
func genTree(n, fanout int) *File {
	f := &File{Departments: make([]Department, n)}
	for i := range f.Departments {
		d := Department{Key: "d" + strconv.Itoa(i), Name: "Department " + strconv.Itoa(i), Line: i + 1}
		if i == 0 {
			d.ParentID = ptr(1)
		} else {
			d.Parent = "d" + strconv.Itoa((i-1)/fanout)
		}
		f.Departments[i] = d
	}
	return f
}

// genJSON renders n departments of genTree as flat JSON, one row a line.
func genJSON(n, fanout int) []byte {
	var b bytes.Buffer
	b.WriteString("{\"departments\": [\n")
	for i, d := range genTree(n, fanout).Departments {
		if i > 0 {
			b.WriteString(",\n")
		}
		if d.ParentID != nil {
			fmt.Fprintf(&b, `{"key": %q, "name": %q, "parent_id": %d, "sort": %d}`, d.Key, d.Name, *d.ParentID, i)
		} else {
			fmt.Fprintf(&b, `{"key": %q, "name": %q, "parent": %q, "sort": %d}`, d.Key, d.Name, d.Parent, i)
		}
	}
	b.WriteString("\n]}\n")
	return b.Bytes()
}

// genYAML renders n departments of genTree as flat YAML, one row a line.
func genYAML(n, fanout int) []byte {
	var b bytes.Buffer
	b.WriteString("departments:\n")
	for i, d := range genTree(n, fanout).Departments {
		if d.ParentID != nil {
			fmt.Fprintf(&b, "  - {key: %s, name: %s, parent_id: %d, sort: %d}\n", d.Key, d.Name, *d.ParentID, i)
		} else {
			fmt.Fprintf(&b, "  - {key: %s, name: %s, parent: %s, sort: %d}\n", d.Key, d.Name, d.Parent, i)
		}
	}
	return b.Bytes()
}

// genCSV renders n departments of genTree as CSV.
func genCSV(n, fanout int) []byte {
	var b bytes.Buffer
	b.WriteString("key,name,parent,parent_id,sort,head\n")
	for i, d := range genTree(n, fanout).Departments {
		id := ""
		if d.ParentID != nil {
			id = strconv.FormatInt(*d.ParentID, 10)
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%d,\n", d.Key, d.Name, d.Parent, id, i)
	}
	return b.Bytes()
}

// nestedJSON is a chain of depth levels in nested form, keys derived.
func nestedJSON(depth int) []byte {
	var b strings.Builder
	b.WriteString(`{"departments": [`)
	for i := range depth {
		if i == 0 {
			b.WriteString(`{"name": "L0", "parent_id": 1, "children": [`)
		} else {
			fmt.Fprintf(&b, "\n{\"name\": \"L%d\", \"children\": [", i)
		}
	}
	for range depth {
		b.WriteString("]}")
	}
	b.WriteString("]}")
	return []byte(b.String())
}
