package importer

// This file is the entry of parsing, shared by every format: limits,
// encoding, the converter that collects problems. parse_json.go and
// parse_yaml.go build a syntax tree that parse_tree.go turns into a File;
// parse_csv.go reads CSV records.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode/utf8"
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
