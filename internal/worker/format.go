package worker

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hibiken/asynqmon"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/tasks"
)

// secretField matches JSON field names whose values the dashboard never
// shows. Task payloads carry no credentials by design (a task names a
// portal); this is the second line of defence against a producer that put
// one in anyway.
var secretField = regexp.MustCompile(`(?i)auth|token|secret|password|passwd|webhook|credential|api[_-]?key`)

// redactedValue replaces a dropped value.
const redactedValue = "***"

// redactJSON returns a copy of v (decoded JSON) with secret-looking fields
// replaced by "***" and every string that looks like a URL passed through
// config.RedactURL.
func redactJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if secretField.MatchString(k) {
				out[k] = redactedValue
				continue
			}
			out[k] = redactJSON(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redactJSON(val)
		}
		return out
	case string:
		return redactString(x)
	default:
		return v
	}
}

// redactString redacts every URL-looking word of s.
func redactString(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlRE.ReplaceAllStringFunc(s, config.RedactURL)
}

var urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// formatRedacted renders a task payload or result for the dashboard:
// indented JSON with secrets dropped. Bytes that are not JSON are not shown
// at all (they could be anything), only their size.
func formatRedacted(data []byte) string {
	if len(data) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Sprintf("(%d bytes, not JSON: hidden)", len(data))
	}
	out, err := json.MarshalIndent(redactJSON(v), "", "  ")
	if err != nil {
		return "(unprintable)"
	}
	return string(out)
}

// PayloadFormatter is the dashboard's payload formatter: a batch:create
// task in one line (summarizeBatch), any other payload by formatRedacted.
// A task of an import (or a batch holding import items) also names the
// import's page on the side port, so that the dashboard links back to it
// (on the batch summary's one line, after a blank line otherwise).
var PayloadFormatter = asynqmon.PayloadFormatterFunc(func(taskType string, payload []byte) string {
	out, sep := formatRedacted(payload), "\n\n"
	if taskType == tasks.TypeBatchCreate {
		out, sep = summarizeBatch(payload), "; "
	}
	for _, id := range importsOf(payload) {
		out += sep + "import page: /imports/" + id
	}
	return out
})

// batchKeysShown is how many item keys a batch summary names.
const batchKeysShown = 8

// summarizeBatch renders a batch:create payload (up to 50 items, a wall of
// JSON otherwise) as one line: what it creates, for which portal and
// import, and the first item keys:
//
//	12 departments (department.add) for portal default, import imp-3f2a: sales, sales-eu, … (+4 more)
//
// Names, titles and anything else of the items stay out: keys and import
// IDs are identifiers the producer chose, the rest is in the items' own
// tasks and the import's status. A payload that does not decode is shown
// as formatRedacted shows it.
func summarizeBatch(payload []byte) string {
	var p tasks.BatchPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return formatRedacted(payload)
	}
	_, method, _ := strings.Cut(strings.TrimSuffix(p.Group, "/verify"), "/")
	what := "items"
	switch method {
	case b24.MethodDepartmentAdd:
		what = "departments"
	case b24.MethodAutomatedSolutionAdd:
		what = "workplaces"
	}
	var imports, keys []string
	for _, it := range p.Items {
		var ref struct {
			ImportID string `json:"import_id"`
			Key      string `json:"key"`
		}
		_ = json.Unmarshal(it.Payload, &ref)
		if ref.ImportID != "" && !slices.Contains(imports, ref.ImportID) {
			imports = append(imports, ref.ImportID)
		}
		if ref.Key != "" {
			keys = append(keys, ref.Key)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", len(p.Items), what)
	if method != "" {
		fmt.Fprintf(&b, " (%s)", method)
	}
	fmt.Fprintf(&b, " for portal %s", p.Portal)
	switch len(imports) {
	case 0:
	case 1:
		fmt.Fprintf(&b, ", import %s", imports[0])
	default:
		fmt.Fprintf(&b, ", imports %s", strings.Join(imports, ", "))
	}
	if len(keys) > 0 {
		shown := keys[:min(len(keys), batchKeysShown)]
		fmt.Fprintf(&b, ": %s", strings.Join(shown, ", "))
		if rest := len(keys) - len(shown); rest > 0 {
			fmt.Fprintf(&b, ", … (+%d more)", rest)
		}
	}
	if p.Verify {
		b.WriteString("; each looked up before it is created (an earlier attempt's outcome is unknown)")
	}
	if p.Plain {
		b.WriteString("; sent as plain calls (B24_BATCH=0)")
	}
	return redactString(b.String())
}

// importsOf returns the import IDs a task payload names (its own, or its
// batch items'), at most 3, valid IDs only.
func importsOf(payload []byte) []string {
	var p struct {
		ImportID string `json:"import_id"`
		Items    []struct {
			Payload struct {
				ImportID string `json:"import_id"`
			} `json:"payload"`
		} `json:"items"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return nil
	}
	ids := []string{p.ImportID}
	for _, it := range p.Items {
		ids = append(ids, it.Payload.ImportID)
	}
	var out []string
	for _, id := range ids {
		if id != "" && importer.ValidateID(id) == nil && !slices.Contains(out, id) && len(out) < 3 {
			out = append(out, id)
		}
	}
	return out
}

// ResultFormatter is the dashboard's result formatter: see formatRedacted.
var ResultFormatter = asynqmon.ResultFormatterFunc(func(_ string, result []byte) string {
	return formatRedacted(result)
})
