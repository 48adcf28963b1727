package web

import (
	"regexp"
	"strconv"
	"strings"
)

// Reason is a stored failure reason of an import item, taken apart for the
// failures table. The store keeps one line per item, written by the tasks
// package, in these shapes (nested in any order):
//
//	permanent failure: b24: department.add: ERROR_CORE: Parent department not found (HTTP 400)
//	parent sales failed: permanent failure: b24: department.add: ...
//	batch failed: b24: batch: INVALID_REQUEST: ... (HTTP 400)
//	gave up after 25 transient failures, the last: b24: department.add: INTERNAL_SERVER_ERROR: ...
//
// where "b24: [METHOD: ]CODE[: DESCRIPTION][ (HTTP N)]" is a *b24.Error.
// Anything else is kept whole as the description.
type Reason struct {
	// Text is the stored reason, unchanged.
	Text string `json:"text"`
	// Parent is the key of the failed ancestor when the item failed because
	// of it ("" when the item's own task failed).
	Parent string `json:"parent,omitempty"`
	// Context says how the task ended: "permanent failure", "batch failed",
	// "gave up after 25 transient failures" (joined with "; " if several).
	Context string `json:"context,omitempty"`
	// Method, Code, Description and HTTPStatus are the portal's answer.
	Method      string `json:"method,omitempty"`
	Code        string `json:"code,omitempty"`
	Description string `json:"description,omitempty"`
	HTTPStatus  int    `json:"http_status,omitempty"`
}

var (
	gaveUpRE   = regexp.MustCompile(`^(gave up after \d+ transient failures), the last: `)
	methodRE   = regexp.MustCompile(`^(batch|[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+): `)
	codeRE     = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_]*)(?:: |$)`)
	bareCodeRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{2,}(?:: |$)`)
	httpRE     = regexp.MustCompile(` \(HTTP (\d{3})\)$`)
)

// ParseReason takes a stored failure reason apart (see Reason). It never
// fails: what it does not recognise ends up in Description.
func ParseReason(s string) Reason {
	r := Reason{Text: s}
	rest := strings.TrimSpace(s)
	var ctx []string
	for {
		if p, tail, ok := cutParent(rest); ok {
			if r.Parent == "" {
				r.Parent = p
			}
			rest = tail
			continue
		}
		if tail, ok := strings.CutPrefix(rest, "permanent failure: "); ok {
			ctx, rest = append(ctx, "permanent failure"), tail
			continue
		}
		if tail, ok := strings.CutPrefix(rest, "batch failed: "); ok {
			ctx, rest = append(ctx, "batch failed"), tail
			continue
		}
		if m := gaveUpRE.FindStringSubmatch(rest); m != nil {
			ctx, rest = append(ctx, m[1]), rest[len(m[0]):]
			continue
		}
		break
	}
	r.Context = strings.Join(ctx, "; ")
	if i := strings.Index(rest, "b24: "); i >= 0 {
		if i > 0 {
			r.Context = joinNonEmpty(r.Context, strings.TrimSuffix(strings.TrimSpace(rest[:i]), ":"))
		}
		r.readB24(rest[i+len("b24: "):])
		return r
	}
	if bareCodeRE.MatchString(rest) {
		r.readCode(rest)
		return r
	}
	r.Description = rest
	return r
}

// cutParent cuts "parent KEY failed: " off s.
func cutParent(s string) (parent, rest string, ok bool) {
	tail, ok := strings.CutPrefix(s, "parent ")
	if !ok {
		return "", s, false
	}
	key, rest, ok := strings.Cut(tail, " failed: ")
	if !ok || key == "" || strings.ContainsAny(key, " \t") {
		return "", s, false
	}
	return key, rest, true
}

// readB24 reads "[METHOD: ]CODE[: DESCRIPTION][ (HTTP N)]".
func (r *Reason) readB24(s string) {
	if m := methodRE.FindStringSubmatch(s); m != nil {
		r.Method, s = m[1], s[len(m[0]):]
	}
	r.readCode(s)
}

// readCode reads "CODE[: DESCRIPTION][ (HTTP N)]".
func (r *Reason) readCode(s string) {
	if m := httpRE.FindStringSubmatch(s); m != nil {
		r.HTTPStatus, _ = strconv.Atoi(m[1])
		s = s[:len(s)-len(m[0])]
	}
	m := codeRE.FindStringSubmatch(s)
	if m == nil {
		r.Description = s
		return
	}
	r.Code = m[1]
	r.Description = strings.TrimSpace(s[len(m[0]):])
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
