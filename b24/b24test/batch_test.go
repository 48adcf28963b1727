package b24test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestBatchReferencesAndPartialFailure(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	// Written in an order that sorting would change: the portal must keep it.
	body := `{"halt":0,"cmd":{
		"z":"department.add?NAME=Sales&PARENT=1",
		"b":"department.add?NAME=EU&PARENT=$result[z]",
		"bad":"department.add?NAME=&PARENT=1",
		"w":"crm.automatedsolution.add?fields[title]=HR&fields[typeIds][0]=7",
		"g":"department.get?ID=$result[w][automatedSolution][id]",
		"n":"batch?cmd[x]=department.get",
		"u":"department.delete?ID=1"}}`
	req, _ := http.NewRequest(http.MethodPost, s.WebhookURL()+"batch", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	a := do(t, req)
	wantOK(t, a)
	res := a.body["result"].(map[string]any)

	wantResult := map[string]any{
		"z": float64(2),
		"b": float64(3),
		"w": map[string]any{"automatedSolution": map[string]any{"id": float64(1), "title": "HR", "typeIds": []any{float64(7)}}},
		"g": []any{map[string]any{"ID": "1", "NAME": "Company", "SORT": float64(500)}},
	}
	if !reflect.DeepEqual(res["result"], wantResult) {
		t.Errorf("result = %v", res["result"])
	}
	errs := res["result_error"].(map[string]any)
	wantCodes := map[string]string{"bad": "ERROR_CORE", "n": "ERROR_BATCH_METHOD_NOT_ALLOWED", "u": "ERROR_METHOD_NOT_FOUND"}
	if len(errs) != len(wantCodes) {
		t.Errorf("result_error = %v", errs)
	}
	for k, code := range wantCodes {
		if e, _ := errs[k].(map[string]any); e["error"] != code {
			t.Errorf("result_error[%s] = %v, want %s", k, errs[k], code)
		}
	}
	if rt := res["result_time"].(map[string]any); len(rt) != 4 || rt["b"].(map[string]any)["operating"] == nil {
		t.Errorf("result_time = %v", rt)
	}
	if tot := res["result_total"].(map[string]any); tot["g"] != float64(1) || len(tot) != 1 {
		t.Errorf("result_total = %v", tot)
	}
	// Keys come back in the client's order.
	if i, j := bytes.Index(a.raw, []byte(`"z":2`)), bytes.Index(a.raw, []byte(`"b":3`)); i < 0 || j < i {
		t.Errorf("order not kept: %s", a.raw)
	}
	// An empty map is PHP's [].
	if !bytes.Contains(a.raw, []byte(`"result_next":[]`)) {
		t.Errorf("want result_next [] in %s", a.raw)
	}
	if d := s.Departments(); len(d) != 3 || d[2].Name != "EU" || d[2].Parent != 2 {
		t.Errorf("departments %+v", d)
	}
}

func TestBatchHalt(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	a := call(t, s, "batch", map[string]any{"halt": 1, "cmd": map[string]string{
		"a": "department.add?NAME=A&PARENT=1",
		"b": "department.add?PARENT=1",
		"c": "department.add?NAME=C&PARENT=1",
	}})
	wantOK(t, a)
	res := a.body["result"].(map[string]any)
	if r := res["result"].(map[string]any); len(r) != 1 || r["a"] != float64(2) {
		t.Errorf("result %v: want only a", r)
	}
	if _, ok := res["result_error"].(map[string]any)["b"]; !ok {
		t.Errorf("result_error %v: want b", res["result_error"])
	}
	if n := len(s.Departments()); n != 2 {
		t.Errorf("%d departments: c must not run after halt", n)
	}
}

func TestBatchPHPEncoding(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	// A list of commands answers with lists, an empty error map is [].
	a := call(t, s, "batch", map[string]any{"cmd": []string{
		"department.add?NAME=A&PARENT=1",
		"department.get?ID=$result[0]",
	}})
	wantOK(t, a)
	for _, frag := range []string{`"result":[2,[{`, `"result_error":[]`, `"result_next":[]`, `"result_time":[{`} {
		if !bytes.Contains(a.raw, []byte(frag)) {
			t.Errorf("want %s in %s", frag, a.raw)
		}
	}
	// With an error only at index 1, PHP keys are not 0..n-1: an object.
	a = call(t, s, "batch", map[string]any{"cmd": []string{"department.get", "department.add?NAME="}})
	if !bytes.Contains(a.raw, []byte(`"result_error":{"1":{"error":"ERROR_CORE"`)) {
		t.Errorf("want result_error object keyed 1 in %s", a.raw)
	}
}

func TestBatchForm(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	form := url.Values{}
	form.Set("halt", "0")
	form.Set("cmd[first]", "department.add?"+url.Values{"NAME": {"Sales & Co"}, "PARENT": {"1"}}.Encode())
	form.Set("cmd[second]", "department.add?NAME=EU&PARENT=$result[first]")
	a := callForm(t, s, "batch", form.Encode())
	wantOK(t, a)
	if r := a.body["result"].(map[string]any)["result"].(map[string]any); r["first"] != float64(2) || r["second"] != float64(3) {
		t.Errorf("result %v", r)
	}
	if d := s.Departments(); d[1].Name != "Sales & Co" || d[2].Parent != 2 {
		t.Errorf("departments %+v", d)
	}
}

func TestBatchLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		n         int
		halt      int
		wantErrs  []string // keys of result_error
		wantAdded int
	}{
		{"50 run", 50, 0, nil, 50},
		{"51st refused", 51, 0, []string{"50"}, 50},
		{"every one past the 50th refused", 55, 0, []string{"50", "51", "52", "53", "54"}, 50},
		{"halt stops at the first refused", 55, 1, []string{"50"}, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := setup(t, Config{})
			cmds := make([]string, tt.n)
			for i := range cmds {
				cmds[i] = fmt.Sprintf("department.add?NAME=D%d&PARENT=1", i)
			}
			a := call(t, s, "batch", map[string]any{"halt": tt.halt, "cmd": cmds})
			wantOK(t, a) // never a whole-request error
			res := a.body["result"].(map[string]any)
			if got := res["result"].([]any); len(got) != tt.wantAdded {
				t.Errorf("%d results, want %d", len(got), tt.wantAdded)
			}
			errs, _ := res["result_error"].(map[string]any)
			var keys []string
			for k, e := range errs {
				keys = append(keys, k)
				if e.(map[string]any)["error"] != "ERROR_BATCH_LENGTH_EXCEEDED" || e.(map[string]any)["error_description"] != "Max batch length exceeded" {
					t.Errorf("result_error[%s] = %v", k, e)
				}
			}
			sort.Strings(keys)
			if !reflect.DeepEqual(keys, tt.wantErrs) {
				t.Errorf("result_error keys %v, want %v", keys, tt.wantErrs)
			}
			if st := s.Stats(); st.DepartmentsCreated != tt.wantAdded || st.Requests != 1 {
				t.Errorf("created %d in %d requests, want %d in 1", st.DepartmentsCreated, st.Requests, tt.wantAdded)
			}
		})
	}
}

func TestBatchReferences(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	a := call(t, s, "batch", map[string]any{"cmd": map[string]string{
		"c0":      "department.add?NAME=Sales&PARENT=1",
		"named":   "department.add?NAME=Team $result[c0]&PARENT=$result[c0]",
		"unknown": "department.add?NAME=Team $result[nope]&PARENT=1",
		"failed":  "department.add?NAME=",
		"fromBad": "department.add?NAME=After $result[failed]&PARENT=1",
		"field":   "department.add?NAME=Deep $result[c0][ID]&PARENT=1",
		"whole":   "department.add?NAME=X&PARENT=$result[nope]",
	}})
	wantOK(t, a)
	names := map[string]int64{}
	for _, d := range s.Departments() {
		names[d.Name] = d.Parent
	}
	for name, parent := range map[string]int64{
		"Team 2":                2, // resolved: substituted
		"Team $result[nope]":    1, // unresolved: literal text
		"After $result[failed]": 1,
		"Deep $result[c0][ID]":  1,
	} {
		if got, ok := names[name]; !ok || got != parent {
			t.Errorf("department %q under %d: %v (all: %v)", name, parent, ok, names)
		}
	}
	errs := a.body["result"].(map[string]any)["result_error"].(map[string]any)
	if e, _ := errs["whole"].(map[string]any); e["error_description"] != DescNoParent {
		t.Errorf("PARENT=$result[nope] stays literal, so no such parent: %v", errs["whole"])
	}
}

func TestSubstituteRefs(t *testing.T) {
	t.Parallel()
	done := map[string]any{
		"a": int64(18),
		"w": map[string]any{"automatedSolution": map[string]any{"id": int64(4)}},
		"l": []any{map[string]any{"ID": "9"}},
		"n": nil,
	}
	tests := []struct {
		in, want any
	}{
		{"$result[a]", int64(18)},
		{"x-$result[a]-y", "x-18-y"},
		{"Team $result[a]", "Team 18"},
		{"$result[w][automatedSolution][id]", int64(4)},
		{"$result[l][0][ID]", "9"},
		{"in $result[w]", "in Array"},
		{"$result[missing]", "$result[missing]"},
		{"x $result[missing] $result[a]", "x $result[missing] 18"},
		{"$result[a][deeper]", "$result[a][deeper]"},
		{"$result[l][7][ID]", "$result[l][7][ID]"},
		{"$result[n]", "$result[n]"},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		m := map[string]any{"v": tt.in}
		substituteRefs(m, done)
		if !reflect.DeepEqual(m["v"], tt.want) {
			t.Errorf("%v → %#v, want %#v", tt.in, m["v"], tt.want)
		}
	}
}

func TestBatchCommandErrorRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		rate      float64
		wantFails bool
		wantOKs   bool
	}{
		{"never", 0, false, true},
		{"always", 1, true, false},
		{"sometimes", 0.3, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := setup(t, Config{Seed: 7, Faults: Faults{CommandErrorRate: tt.rate}})
			cmds := map[string]string{}
			for i := range 40 {
				cmds[fmt.Sprint("k", i)] = fmt.Sprintf("department.add?NAME=D%d&PARENT=1", i)
			}
			a := call(t, s, "batch", map[string]any{"halt": 0, "cmd": cmds})
			wantOK(t, a)
			res := a.body["result"].(map[string]any)
			oks, _ := res["result"].(map[string]any)
			errs, _ := res["result_error"].(map[string]any)
			if len(oks)+len(errs) != 40 {
				t.Fatalf("%d results + %d errors, want 40 in all: %s", len(oks), len(errs), a.raw)
			}
			for k, e := range errs {
				if code := e.(map[string]any)["error"]; code != "INTERNAL_SERVER_ERROR" {
					t.Errorf("result_error[%s] = %v, want INTERNAL_SERVER_ERROR", k, e)
				}
			}
			if (len(errs) > 0) != tt.wantFails || (len(oks) > 0) != tt.wantOKs {
				t.Errorf("%d ok, %d failed", len(oks), len(errs))
			}
			st := s.Stats()
			// A failed command did no work: only the others created objects.
			if st.DepartmentsCreated != len(oks) || st.Faults["command_error"] != len(errs) || st.Requests != 1 {
				t.Errorf("stats %+v; want %d created, %d command errors, 1 request", st, len(oks), len(errs))
			}
			// The fault never hits a whole request.
			wantOK(t, call(t, s, "department.get", map[string]any{"ID": 1}))
		})
	}
}
