package b24test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// params is a decoded request: nested map[string]any / []any with string,
// json.Number, bool or nil leaves.
type params map[string]any

// decodeJSON decodes a JSON object body, keeping numbers as json.Number.
// It also returns the key order of the "cmd" object, if any, because a
// batch runs its commands in the order the client wrote them.
func decodeJSON(body []byte) (params, []string, error) {
	p := params{}
	if len(bytes.TrimSpace(body)) == 0 {
		return p, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("decode JSON body: %w", err)
	}
	for k, v := range m {
		p[k] = v
	}
	var raw struct {
		Cmd json.RawMessage `json:"cmd"`
	}
	_ = json.Unmarshal(body, &raw) // already decoded once; cannot fail differently
	return p, objectKeyOrder(raw.Cmd), nil
}

// objectKeyOrder lists the keys of a JSON object in document order; nil for
// anything else.
func objectKeyOrder(raw json.RawMessage) []string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
	}
	return keys
}

// decodeForm parses a PHP-style query (fields[title]=HR&fields[typeIds][0]=1,
// a[]=x appends). Maps whose keys are exactly 0..n-1 become lists, as PHP
// arrays do. It also returns the order of the first-level keys under "cmd".
func decodeForm(q string) (params, []string, error) {
	root := map[string]any{}
	var cmdOrder []string
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(q, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, nil, fmt.Errorf("decode form key: %w", err)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, nil, fmt.Errorf("decode form value of %q: %w", key, err)
		}
		path := splitPHPKey(key)
		if len(path) == 0 || path[0] == "" {
			continue
		}
		if path[0] == "cmd" && len(path) > 1 && path[1] != "" && !seen[path[1]] {
			seen[path[1]] = true
			cmdOrder = append(cmdOrder, path[1])
		}
		insertPath(root, path, val)
	}
	return params(listify(root).(map[string]any)), cmdOrder, nil
}

// splitPHPKey turns "a[b][0][]" into ["a","b","0",""].
func splitPHPKey(k string) []string {
	i := strings.IndexByte(k, '[')
	if i <= 0 || !strings.HasSuffix(k, "]") {
		return []string{k}
	}
	out := []string{k[:i]}
	rest := k[i:]
	for len(rest) > 0 && rest[0] == '[' {
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			break
		}
		out = append(out, rest[1:j])
		rest = rest[j+1:]
	}
	return out
}

func insertPath(m map[string]any, path []string, val string) {
	for i, seg := range path {
		if seg == "" {
			seg = strconv.Itoa(len(m))
		}
		if i == len(path)-1 {
			m[seg] = val
			return
		}
		next, ok := m[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[seg] = next
		}
		m = next
	}
}

// listify converts maps with keys "0".."n-1" into lists, recursively.
func listify(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, x := range m {
		m[k] = listify(x)
	}
	if len(m) == 0 {
		return m
	}
	list := make([]any, len(m))
	for i := range list {
		x, ok := m[strconv.Itoa(i)]
		if !ok {
			return m
		}
		list[i] = x
	}
	return list
}

// asString renders a leaf the way PHP would see it in a query.
func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		if x {
			return "1"
		}
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// asInt parses an integer leaf ("18", 18, 18.0). ok is false for anything
// else, including an empty string.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) {
			return int64(x), true
		}
		return 0, false
	case int:
		return int64(x), true
	case int64:
		return x, true
	}
	s := strings.TrimSpace(asString(v))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) {
		return int64(f), true
	}
	return 0, false
}

// lookup finds a filter or field key case-sensitively, then
// case-insensitively (NAME, name and Name all filter department.get).
func (p params) lookup(keys ...string) (any, bool) {
	for _, k := range keys {
		if v, ok := p[k]; ok {
			return v, true
		}
	}
	for _, k := range keys {
		for pk, v := range p {
			if strings.EqualFold(pk, k) {
				return v, true
			}
		}
	}
	return nil, false
}

// start returns the paging offset, never negative. The real portal reads
// lowercase "start" only: "START" or "Start" is no offset (page 1 comes
// back).
func (p params) start() int {
	n, ok := asInt(p["start"])
	if !ok || n < 0 {
		return 0
	}
	return int(n)
}

// asMap returns v as a map: objects as they are, lists keyed by index.
func asMap(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return x
	case []any:
		m := make(map[string]any, len(x))
		for i, e := range x {
			m[strconv.Itoa(i)] = e
		}
		return m
	}
	return nil
}

// asIntList reads typeIds: a list or an index-keyed map of integers.
func asIntList(v any) ([]int64, bool) {
	var items []any
	switch x := v.(type) {
	case nil:
		return nil, true
	case []any:
		items = x
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, _ := strconv.Atoi(keys[i])
			b, _ := strconv.Atoi(keys[j])
			return a < b
		})
		for _, k := range keys {
			items = append(items, x[k])
		}
	case string:
		if x == "" {
			return nil, true
		}
		items = []any{x}
	default:
		items = []any{x}
	}
	out := make([]int64, 0, len(items))
	for _, it := range items {
		n, ok := asInt(it)
		if !ok {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}
