package importer

// This file reads YAML into a yaml.Node tree and words its syntax errors.

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

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
