package importer

// This file reads JSON into a yaml.Node tree, so that JSON and YAML share
// one converter (parse_tree.go).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

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
