package b24

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeQuery(t *testing.T) {
	t.Parallel()
	type tagged struct {
		Title string `json:"title"`
		Skip  string `json:"-"`
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"nil", nil, ""},
		{"sorted flat", map[string]any{"PARENT": 1, "NAME": "Sales EU", "SORT": 500}, "NAME=Sales+EU&PARENT=1&SORT=500"},
		{"nested", map[string]any{"fields": map[string]any{"title": "HR", "typeIds": []int64{1, 2}}},
			"fields[title]=HR&fields[typeIds][0]=1&fields[typeIds][1]=2"},
		{"reference", map[string]any{"PARENT": "$result[dep]"}, "PARENT=%24result%5Bdep%5D"},
		{"nested reference", map[string]any{"PARENT": "$result[dep][ID]"}, "PARENT=%24result%5Bdep%5D%5BID%5D"},
		{"bools and nil", map[string]any{"a": true, "b": false, "c": nil}, "a=1&b=0"},
		{"empty containers left out", map[string]any{"a": []int{}, "b": map[string]any{}, "c": "x"}, "c=x"},
		{"big int exact", map[string]any{"ID": int64(9007199254740993)}, "ID=9007199254740993"},
		{"float", map[string]any{"f": 1.5}, "f=1.5"},
		{"unicode and specials", map[string]any{"NAME": "Отдел & Co=1"}, "NAME=%D0%9E%D1%82%D0%B4%D0%B5%D0%BB+%26+Co%3D1"},
		{"key escaping", map[string]any{"a b": map[string]any{"c]d": 1}}, "a+b[c%5Dd]=1"},
		{"struct by json tags", map[string]any{"fields": tagged{Title: "HR", Skip: "x"}}, "fields[title]=HR"},
		{"list of maps", map[string]any{"order": []map[string]string{{"ID": "ASC"}}}, "order[0][ID]=ASC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := EncodeQuery(tt.params); got != tt.want {
				t.Errorf("EncodeQuery = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEncodeQueryRoundTrip: what the portal decodes is what was encoded,
// references included.
func TestEncodeQueryRoundTrip(t *testing.T) {
	t.Parallel()
	q := EncodeQuery(map[string]any{
		"NAME":   "Sales & Marketing [EU]",
		"PARENT": "$result[dep]",
		"fields": map[string]any{"typeIds": []int{3}},
	})
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"NAME": {"Sales & Marketing [EU]"}, "PARENT": {"$result[dep]"}, "fields[typeIds][0]": {"3"}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("decoded %v, want %v", v, want)
	}
}

func TestBatchEncodesAndDecodesPartialFailure(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "batch", func(w http.ResponseWriter, body map[string]any) {
		jsonEqual(t, body, `{"halt":0,"cmd":{
			"dep":"department.add?NAME=Sales&PARENT=1",
			"child":"department.add?NAME=Sales+EU&PARENT=%24result%5Bdep%5D",
			"bad":"department.add?PARENT=1",
			"ws":"crm.automatedsolution.add?fields[title]=HR&fields[typeIds][0]=1&fields[typeIds][1]=2",
			"me":"profile"}}`)
		reply(w, 200, readTestdata(t, "batch_partial.json"))
	})
	cmds := []BatchCommand{
		{Key: "dep", Method: "department.add", Params: map[string]any{"NAME": "Sales", "PARENT": 1}},
		{Key: "child", Method: "department.add", Params: map[string]any{"NAME": "Sales EU", "PARENT": "$result[dep]"}},
		{Key: "bad", Method: "department.add", Params: map[string]any{"PARENT": 1}},
		{Key: "ws", Method: "crm.automatedsolution.add", Params: map[string]any{"fields": map[string]any{"title": "HR", "typeIds": []int{1, 2}}}},
		{Key: "me", Method: "profile"},
	}
	res, meta, err := f.client.Batch(t.Context(), false, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Results["dep"]) != "18" || string(res.Results["child"]) != "19" || len(res.Results) != 2 {
		t.Errorf("results %v", res.Results)
	}
	e := res.Errors["bad"]
	if len(res.Errors) != 1 || e == nil || e.Code != CodeErrorCore || e.Method != "department.add" ||
		e.Description != "Не введено название раздела.<br>" || Classify(e) != Permanent {
		t.Errorf("errors %+v", res.Errors)
	}
	if tm := res.Times["dep"]; tm.Start != 1736927311 || tm.Operating != 12.5 || tm.OperatingResetAt != 1736927911 {
		t.Errorf("dep time %+v", tm)
	}
	if meta.Time.Duration != 0.4 || meta.Time.OperatingResetAt != 1736927911 {
		t.Errorf("meta %+v", meta)
	}

	infos := f.observed()
	if len(infos) != 1 || infos[0].Method != "batch" || infos[0].Err != nil {
		t.Fatalf("observer got %+v", infos)
	}
	got := infos[0].Commands
	if len(got) != len(cmds) {
		t.Fatalf("observer commands %+v", got)
	}
	for i, ci := range got {
		if ci.Key != cmds[i].Key || ci.Method != cmds[i].Method {
			t.Errorf("command %d = %+v, want key %s", i, ci, cmds[i].Key)
		}
	}
	if got[0].Time.Operating != 12.5 || got[1].Time.Operating != 12.7 || got[0].Err != nil {
		t.Errorf("command times %+v %+v", got[0], got[1])
	}
	var cmdErr *Error
	if !errors.As(got[2].Err, &cmdErr) || cmdErr.Code != CodeErrorCore || got[3].Err != nil || got[3].Time != (Time{}) {
		t.Errorf("command errors %+v %+v", got[2], got[3])
	}
}

func TestBatchPHPQuirks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		file        string
		keys        []string
		wantResults map[string]string
		wantErrors  map[string]string
		wantOpTimes map[string]float64
	}{
		{"empty maps as []", "batch_no_errors.json", []string{"a", "b"},
			map[string]string{"a": "18", "b": "[]"}, map[string]string{}, map[string]float64{"a": 1.5, "b": 0}},
		{"lists instead of maps", "batch_list.json", []string{"0", "1", "2"},
			map[string]string{"0": "18", "1": "19"}, map[string]string{"2": CodeAccessDenied}, map[string]float64{"0": 0.25, "1": 0.5, "2": 0.75}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			f.handle(t, "batch", func(w http.ResponseWriter, body map[string]any) {
				if body["halt"] != float64(1) {
					t.Errorf("halt = %v, want 1", body["halt"])
				}
				reply(w, 200, readTestdata(t, tt.file))
			})
			var cmds []BatchCommand
			for _, k := range tt.keys {
				cmds = append(cmds, BatchCommand{Key: k, Method: "department.get", Params: map[string]any{"ID": 1}})
			}
			res, _, err := f.client.Batch(t.Context(), true, cmds)
			if err != nil {
				t.Fatal(err)
			}
			gotResults := map[string]string{}
			for k, v := range res.Results {
				gotResults[k] = string(v)
			}
			if !reflect.DeepEqual(gotResults, tt.wantResults) {
				t.Errorf("results %v, want %v", gotResults, tt.wantResults)
			}
			gotErrors := map[string]string{}
			for k, e := range res.Errors {
				gotErrors[k] = e.Code
				if e.Method != "department.get" {
					t.Errorf("error %s method %q", k, e.Method)
				}
			}
			if !reflect.DeepEqual(gotErrors, tt.wantErrors) {
				t.Errorf("errors %v, want %v", gotErrors, tt.wantErrors)
			}
			gotOp := map[string]float64{}
			for k, tm := range res.Times {
				gotOp[k] = tm.Operating
			}
			if !reflect.DeepEqual(gotOp, tt.wantOpTimes) {
				t.Errorf("operating %v, want %v", gotOp, tt.wantOpTimes)
			}
		})
	}
}

func TestBatchRejectsBadCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "batch", func(http.ResponseWriter, map[string]any) { t.Error("batch sent") })
	many := make([]BatchCommand, MaxBatch+1)
	for i := range many {
		many[i] = BatchCommand{Key: fmt.Sprint("k", i), Method: "profile"}
	}
	tests := map[string][]BatchCommand{
		"51 commands":  many,
		"empty key":    {{Key: "", Method: "profile"}},
		"duplicate":    {{Key: "a", Method: "profile"}, {Key: "a", Method: "profile"}},
		"bad method":   {{Key: "a", Method: "profile?x=1"}},
		"empty method": {{Key: "a"}},
	}
	for name, cmds := range tests {
		if _, _, err := f.client.Batch(t.Context(), false, cmds); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	res, _, err := f.client.Batch(t.Context(), false, nil)
	if err != nil || len(res.Results) != 0 {
		t.Errorf("empty batch: %v %v", res, err)
	}
	if n := len(f.observed()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestBatchExactly50IsSent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "batch", func(w http.ResponseWriter, body map[string]any) {
		cmd, _ := body["cmd"].(map[string]any)
		if len(cmd) != MaxBatch {
			t.Errorf("%d commands sent", len(cmd))
		}
		reply(w, 200, `{"result":{"result":[],"result_error":[],"result_total":[],"result_next":[],"result_time":[]}}`)
	})
	cmds := make([]BatchCommand, MaxBatch)
	for i := range cmds {
		cmds[i] = BatchCommand{Key: fmt.Sprint("k", i), Method: "profile"}
	}
	if _, _, err := f.client.Batch(t.Context(), false, cmds); err != nil {
		t.Fatal(err)
	}
}

func TestBatchWholeCallError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		class  Class
	}{
		{"query limit", 503, readTestdata(t, "errors/QUERY_LIMIT_EXCEEDED.json"), RateLimited},
		{"operation limit", 429, readTestdata(t, "errors/OPERATION_TIME_LIMIT.json"), MethodBlocked},
		{"length", 400, readTestdata(t, "errors/ERROR_BATCH_LENGTH_EXCEEDED.json"), Permanent},
		{"html", 502, "<html>bad gateway</html>", Transient},
		{"no result", 200, `{"result":{"result":"oops"}}`, Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			f.handle(t, "batch", func(w http.ResponseWriter, _ map[string]any) { reply(w, tt.status, tt.body) })
			res, _, err := f.client.Batch(t.Context(), false, []BatchCommand{{Key: "a", Method: "profile"}})
			if Classify(err) != tt.class {
				t.Errorf("err = %v: class %v, want %v", err, Classify(err), tt.class)
			}
			if len(res.Results)+len(res.Errors) != 0 {
				t.Errorf("result %+v alongside a whole-call error", res)
			}
			if infos := f.observed(); len(infos) != 1 || infos[0].Method != "batch" || (tt.status != 200 && infos[0].Err == nil) {
				t.Errorf("observer %+v", infos)
			}
		})
	}
}

func TestDecodeKeyed(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		`{"a":1}`: `{"a":1}`,
		`[]`:      `{}`,
		`null`:    `{}`,
		``:        `{}`,
		`[5,6]`:   `{"0":5,"1":6}`,
	}
	for in, want := range tests {
		m, err := decodeKeyed(json.RawMessage(in))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		b, _ := json.Marshal(m)
		if string(b) != want {
			t.Errorf("%q: %s, want %s", in, b, want)
		}
	}
	if _, err := decodeKeyed(json.RawMessage(`"x"`)); err == nil || !strings.Contains(err.Error(), "object or a list") {
		t.Errorf("string: err %v", err)
	}
}

// TestBatchPaging: each command's total and next come back in
// result_total/result_next (PHP: strings or numbers, [] when empty);
// NextStart says where a lookup continues.
func TestBatchPaging(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "batch", func(w http.ResponseWriter, body map[string]any) {
		cmd, _ := body["cmd"].(map[string]any)
		if cmd["c0"] != "department.get?PARENT=1" || cmd["c3"] != "department.get?PARENT=9&start=50" {
			t.Errorf("commands %v", cmd)
		}
		reply(w, 200, readTestdata(t, "batch_paging.json"))
	})
	cmds := []BatchCommand{
		DepartmentGetCommand("c0", map[string]any{"PARENT": 1}, 0),
		DepartmentGetCommand("c1", map[string]any{"PARENT": 7}, 0),
		DepartmentGetCommand("c2", map[string]any{"PARENT": 8}, 0),
		DepartmentGetCommand("c3", map[string]any{"PARENT": 9}, 50),
	}
	res, _, err := f.client.Batch(t.Context(), false, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"c0": 120, "c1": 1, "c2": 0, "c3": 120}; !reflect.DeepEqual(res.Totals, want) {
		t.Errorf("Totals %v, want %v", res.Totals, want)
	}
	if want := map[string]int{"c0": 50, "c3": 120}; !reflect.DeepEqual(res.Nexts, want) {
		t.Errorf("Nexts %v, want %v", res.Nexts, want)
	}
	for key, want := range map[string]struct {
		start int
		more  bool
	}{"c0": {50, true}, "c1": {0, false}, "c2": {0, false}, "c3": {0, false}, "missing": {0, false}} {
		if start, more := res.NextStart(key); start != want.start || more != want.more {
			t.Errorf("NextStart(%s) = %d, %v; want %d, %v", key, start, more, want.start, want.more)
		}
	}

	// No paging in the answer at all: empty maps, never nil.
	empty, err := decodeBatch(json.RawMessage(`{"result":{"a":1}}`), nil, nil)
	if err != nil || empty.Totals == nil || empty.Nexts == nil || len(empty.Totals)+len(empty.Nexts) != 0 {
		t.Errorf("batch without paging: %+v, %v", empty, err)
	}
}

// TestBatchCommandErrorsAreRedacted: a command's error code and description
// may echo the request URL, webhook code included; they are redacted like a
// single call's, in the result and for the observer.
func TestBatchCommandErrorsAreRedacted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.handle(t, "batch", func(w http.ResponseWriter, _ map[string]any) {
		reply(w, 200, `{"result":{"result":[],"result_error":{`+
			`"a":{"error":"ERROR_CORE","error_description":"bad call to /rest/1/`+testSecret+`/department.add"},`+
			`"b":{"error":"`+testSecret+`","error_description":{"url":"/rest/1/`+testSecret+`/"}}}}}`)
	})
	res, _, err := f.client.Batch(t.Context(), false, []BatchCommand{
		{Key: "a", Method: MethodDepartmentAdd, Params: map[string]any{"NAME": "A", "PARENT": 1}},
		{Key: "b", Method: MethodDepartmentAdd, Params: map[string]any{"NAME": "B", "PARENT": 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := res.Errors["a"], res.Errors["b"]
	if a == nil || a.Code != CodeErrorCore || a.Description != "bad call to /rest/1/***/department.add" {
		t.Errorf("command a: %+v", a)
	}
	if b == nil || b.Code != "***" || b.Description != `{"url":"/rest/1/***/"}` {
		t.Errorf("command b: %+v", b)
	}
	infos := f.observed()
	if len(infos) != 1 {
		t.Fatalf("observer %+v", infos)
	}
	for _, ci := range infos[0].Commands {
		if ci.Err == nil || strings.Contains(ci.Err.Error(), testSecret) {
			t.Errorf("observer command %s: error %v", ci.Key, ci.Err)
		}
	}
}

// TestHasBatchReference: the portal substitutes, in every parameter value of
// a batch command, $ followed by result, next, total, time or error (any
// case) and a run without space that holds [key]; such a name would be
// created with another command's result in it.
func TestHasBatchReference(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"Team $result[c0]":    true,
		"$result[c0][ID]":     true,
		"x $RESULT[c0] y":     true,
		"$Result_Total[c0]":   true,
		"$result_next[c0]":    true,
		"$result_error[c0]":   true,
		"$result_time[c0]":    true,
		"$next[c0]":           true,
		"$total[a]":           true,
		"$time[a]":            true,
		"$error[a]":           true,
		"$resultx[1]":         true,
		"a$result.x[1]":       true,
		"":                    false,
		"Team $result":        false,
		"$result[]":           false,
		"$result [c0]":        false,
		"Price $5 [net]":      false,
		"result[c0]":          false,
		"$other[c0]":          false,
		"$result_x":           false,
		"R&D [EU] $ result[]": false,
	}
	for s, want := range tests {
		if got := HasBatchReference(s); got != want {
			t.Errorf("HasBatchReference(%q) = %v, want %v", s, got, want)
		}
	}
}
