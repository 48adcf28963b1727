package b24

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// MaxBatch is the most commands one batch may carry.
const MaxBatch = 50

// BatchCommand is one command of a batch. Key names its result; Params
// values may be "$result[key]" or "$result[key][field]" references to earlier
// commands of the same batch, which the portal substitutes.
type BatchCommand struct {
	Key, Method string
	Params      map[string]any
}

// BatchResult holds what a batch answered, by command key. A command that
// did not run (halt after an error) has no entry in any map. Errors' values
// have HTTPStatus 0 and the command's Method. Totals and Nexts are the
// paging of list commands (result_total, result_next): a command has an
// entry only when the portal sent one; NextStart reads them.
type BatchResult struct {
	Results map[string]json.RawMessage
	Errors  map[string]*Error
	Times   map[string]Time
	Totals  map[string]int
	Nexts   map[string]int
}

// newBatchResult returns a BatchResult with empty, non-nil maps.
func newBatchResult() BatchResult {
	return BatchResult{Results: map[string]json.RawMessage{}, Errors: map[string]*Error{}, Times: map[string]Time{},
		Totals: map[string]int{}, Nexts: map[string]int{}}
}

// Batch sends up to MaxBatch commands as one request (one Pacer.Wait for
// "batch"; the portal counts it as one request against the query limit).
// With halt the portal stops at the first failing command. A whole-call
// failure (503, 429, network) is returned as the error with an empty result;
// per-command failures are in BatchResult.Errors and leave err nil. Keys must
// be unique and non-empty. An empty cmds sends nothing.
func (c *Client) Batch(ctx context.Context, halt bool, cmds []BatchCommand) (BatchResult, Meta, error) {
	if len(cmds) > MaxBatch {
		return BatchResult{}, Meta{}, fmt.Errorf("b24: batch: %d commands, at most %d allowed", len(cmds), MaxBatch)
	}
	res := newBatchResult()
	if len(cmds) == 0 {
		return res, Meta{}, nil
	}
	cmd := make(map[string]string, len(cmds))
	for i, bc := range cmds {
		if bc.Key == "" {
			return BatchResult{}, Meta{}, fmt.Errorf("b24: batch: command %d has no key", i)
		}
		if _, dup := cmd[bc.Key]; dup {
			return BatchResult{}, Meta{}, fmt.Errorf("b24: batch: duplicate key %q", bc.Key)
		}
		if !methodName.MatchString(bc.Method) {
			return BatchResult{}, Meta{}, fmt.Errorf("b24: batch: command %q: invalid method name %q", bc.Key, bc.Method)
		}
		s := bc.Method
		if q := EncodeQuery(bc.Params); q != "" {
			s += "?" + q
		}
		cmd[bc.Key] = s
	}
	haltN := 0
	if halt {
		haltN = 1
	}
	describe := func(env *envelope) []CommandInfo {
		var r BatchResult
		if env != nil {
			r, _ = decodeBatch(env.Result, cmds, c.secrets())
		}
		infos := make([]CommandInfo, len(cmds))
		for i, bc := range cmds {
			infos[i] = CommandInfo{Key: bc.Key, Method: bc.Method, Time: r.Times[bc.Key]}
			if e, ok := r.Errors[bc.Key]; ok {
				infos[i].Err = e
			}
		}
		return infos
	}
	env, err := c.call(ctx, "batch", map[string]any{"halt": haltN, "cmd": cmd}, describe)
	if err != nil {
		return BatchResult{}, Meta{}, err
	}
	r, err := decodeBatch(env.Result, cmds, c.secrets())
	if err != nil {
		return BatchResult{}, env.meta(), &TransportError{Method: "batch", Err: fmt.Errorf("decode result: %w", err), Ambiguous: true}
	}
	return r, env.meta(), nil
}

// decodeBatch decodes
// result.{result,result_error,result_time,result_total,result_next}, each of
// which may be an object, a list (PHP array with keys 0..n-1, `[]` when
// empty) or absent. A command's error is redacted of secrets exactly like
// the error of a single call (see newError).
func decodeBatch(raw json.RawMessage, cmds []BatchCommand, secrets []string) (BatchResult, error) {
	res := newBatchResult()
	top, err := decodeKeyed(raw)
	if err != nil {
		return res, err
	}
	methods := make(map[string]string, len(cmds))
	for _, bc := range cmds {
		methods[bc.Key] = bc.Method
	}
	results, err := decodeKeyed(top["result"])
	if err != nil {
		return res, fmt.Errorf("result: %w", err)
	}
	res.Results = results
	errs, err := decodeKeyed(top["result_error"])
	if err != nil {
		return res, fmt.Errorf("result_error: %w", err)
	}
	for k, v := range errs {
		var e struct {
			Code json.RawMessage `json:"error"`
			Desc json.RawMessage `json:"error_description"`
		}
		_ = json.Unmarshal(v, &e) // an entry that is not an object: no code
		code := errorCode(e.Code)
		if code == "" {
			code = CodeErrorUnexpectedAnswer // listed in result_error: an error all the same
		}
		apiErr := newError(code, e.Desc, secrets)
		apiErr.Method, apiErr.Command = methods[k], k
		res.Errors[k] = apiErr
	}
	times, err := decodeKeyed(top["result_time"])
	if err != nil {
		return res, fmt.Errorf("result_time: %w", err)
	}
	for k, v := range times {
		var t Time
		_ = json.Unmarshal(v, &t) // tolerant
		res.Times[k] = t
	}
	if err := decodeCounts(top["result_total"], res.Totals); err != nil {
		return res, fmt.Errorf("result_total: %w", err)
	}
	if err := decodeCounts(top["result_next"], res.Nexts); err != nil {
		return res, fmt.Errorf("result_next: %w", err)
	}
	return res, nil
}

// decodeCounts decodes a keyed map of numbers (PHP: ints or strings) into
// into; values that are not numbers count as 0.
func decodeCounts(raw json.RawMessage, into map[string]int) error {
	m, err := decodeKeyed(raw)
	if err != nil {
		return err
	}
	for k, v := range m {
		var n flexInt
		_ = n.UnmarshalJSON(v) // tolerant
		into[k] = int(n)
	}
	return nil
}

// batchReference matches what the portal's batch substitutes in a command's
// parameter values: its regular expression is \$(result|next|total|time|error)([^\s]*)
// (case-insensitive; the names are its internal maps of results, next
// offsets, totals, times and errors), and it substitutes when the run after
// the name holds a [key] (rest module, CRestUtil::processBatchElement).
var batchReference = regexp.MustCompile(`(?i)\$(?:result|next|total|time|error)\S*\[[^\]\s]+\]`)

// HasBatchReference reports whether s holds a pattern the portal's batch
// substitutes with an earlier command's result: "$result[key]" and its
// relatives ($result_total[, $result_next[, $result_error[, $result_time[,
// also $next[, $total[, $time[, $error[), in any case. The portal applies
// it to every parameter value of every command, so a department named
// "Team $result[c0]" sent in a batch would be created as "Team 2" (c0's
// result). Send such an item by a single call, where nothing is
// substituted. References the caller means (PARENT: "$result[dep]") are
// built by the caller, not taken from user data.
func HasBatchReference(s string) bool {
	return strings.Contains(s, "$") && batchReference.MatchString(s)
}

// EncodeQuery encodes params the way PHP's http_build_query does and
// parse_str decodes: nested maps and lists become bracketed keys
// (fields[title]=HR&fields[typeIds][0]=1), keys are sorted at every level so
// the output is deterministic, booleans are 1/0, nil values and empty maps or
// lists are left out. Values are query-escaped, so "$result[k]" arrives at
// the portal as that literal text. Params go through encoding/json first, so
// any value json.Marshal accepts works (structs by their json tags); a value
// it rejects is left out.
func EncodeQuery(params map[string]any) string {
	if len(params) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(params) {
		v, err := normalize(params[k])
		if err != nil {
			continue
		}
		parts = appendQuery(parts, url.QueryEscape(k), v)
	}
	return strings.Join(parts, "&")
}

// normalize turns v into nil, bool, string, json.Number, []any or map[string]any.
func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	err = d.Decode(&out)
	return out, err
}

func appendQuery(parts []string, key string, v any) []string {
	switch v := v.(type) {
	case nil:
		return parts
	case bool:
		if v {
			return append(parts, key+"=1")
		}
		return append(parts, key+"=0")
	case json.Number:
		return append(parts, key+"="+url.QueryEscape(v.String()))
	case string:
		return append(parts, key+"="+url.QueryEscape(v))
	case []any:
		for i, e := range v {
			parts = appendQuery(parts, fmt.Sprintf("%s[%d]", key, i), e)
		}
	case map[string]any:
		for _, k := range sortedKeys(v) {
			parts = appendQuery(parts, key+"["+url.QueryEscape(k)+"]", v[k])
		}
	}
	return parts
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
