package importer

// This file reads CSV import files: a header, then one department a row.

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

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
	col := c.csvHeader(header)
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
		c.csvRow(rec, col, width, rowNum)
	}
}

// csvHeader maps the header's columns: the result holds the column index of
// each of CSVColumns, -1 when absent. A missing required column is fatal.
func (c *converter) csvHeader(header []string) []int {
	col := make([]int, len(CSVColumns))
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
	return col
}

// csvRow converts one record, whose columns col maps (see csvHeader), into
// a department; width is the header's number of cells.
func (c *converter) csvRow(rec []string, col []int, width, rowNum int) {
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
		return
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
