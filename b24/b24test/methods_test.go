package b24test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestDepartmentAddValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		params map[string]any
		desc   string
	}{
		{"empty name", map[string]any{"NAME": "", "PARENT": 1}, DescNoName},
		{"blank name", map[string]any{"NAME": "  ", "PARENT": 1}, DescNoName},
		{"no name", map[string]any{"PARENT": 1}, DescNoName},
		{"no parent", map[string]any{"NAME": "Sales"}, DescTwoRoots},
		{"parent 0", map[string]any{"NAME": "Sales", "PARENT": 0}, DescTwoRoots},
		{"empty parent", map[string]any{"NAME": "Sales", "PARENT": ""}, DescTwoRoots},
		{"unknown parent", map[string]any{"NAME": "Sales", "PARENT": 999}, DescNoParent},
		{"non-numeric parent", map[string]any{"NAME": "Sales", "PARENT": "abc"}, DescNoParent},
	}
	if DescNoName != "Не введено название раздела.<br>" || DescTwoRoots != "В структуре компании должен быть только один раздел верхнего уровня" {
		t.Fatal("the validation messages must stay worded as the portal words them")
	}
	s, _ := setup(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := call(t, s, "department.add", tt.params)
			wantError(t, a, http.StatusBadRequest, "ERROR_CORE")
			if a.desc() != tt.desc {
				t.Errorf("description %q, want %q", a.desc(), tt.desc)
			}
		})
	}
	t.Run("nothing created", func(t *testing.T) {
		t.Parallel()
		// Parallel subtests run after the loop's; Cleanup checks at the end.
		t.Cleanup(func() {
			if d := s.Departments(); len(d) != 1 || d[0].ID != 1 || d[0].Name != "Company" || d[0].Parent != 0 {
				t.Errorf("departments %+v, want only the root", d)
			}
		})
	})
}

func TestDepartmentAddAndGet(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	a := call(t, s, "department.add.json", map[string]any{"NAME": "Sales", "PARENT": 1, "SORT": 450, "UF_HEAD": 7})
	wantOK(t, a)
	if a.body["result"] != float64(2) {
		t.Fatalf("result %v, want 2", a.body["result"])
	}
	for i := range 59 {
		wantOK(t, call(t, s, "department.add", map[string]any{"NAME": fmt.Sprintf("sales team %02d", i), "PARENT": "2"}))
	}
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "Marketing", "PARENT": 1}))

	// IDs as strings, SORT a number, UF_HEAD only with a head, no PARENT
	// for the root.
	a = call(t, s, "department.get", map[string]any{"ID": 2})
	wantOK(t, a)
	want := []any{map[string]any{"ID": "2", "NAME": "Sales", "SORT": float64(450), "PARENT": "1", "UF_HEAD": "7"}}
	if !reflect.DeepEqual(a.body["result"], want) || a.body["total"] != float64(1) || a.body["next"] != nil {
		t.Errorf("get ID=2: %s", a.raw)
	}
	a = call(t, s, "department.get", map[string]any{"ID": 1})
	want = []any{map[string]any{"ID": "1", "NAME": "Company", "SORT": float64(500)}}
	if !reflect.DeepEqual(a.body["result"], want) {
		t.Errorf("root: %s", a.raw)
	}
	a = call(t, s, "department.get", map[string]any{"ID": 3})
	if row := a.body["result"].([]any)[0].(map[string]any); row["UF_HEAD"] != nil || row["PARENT"] != "2" {
		t.Errorf("no head: want no UF_HEAD key: %s", a.raw)
	}

	tests := []struct {
		name      string
		params    map[string]any
		total     int
		page      int
		next      any
		firstName string
	}{
		{"LIKE is the whole value", map[string]any{"NAME": "SALES"}, 1, 1, nil, "Sales"},
		{"no implied %", map[string]any{"NAME": "team%9"}, 0, 0, nil, ""},
		{"% is a wildcard", map[string]any{"NAME": "%team%9"}, 5, 5, nil, "sales team 09"},
		{"_ is exactly one character", map[string]any{"NAME": "SALES TEAM 0_"}, 10, 10, nil, "sales team 00"},
		{"_ is not zero characters", map[string]any{"NAME": "Sale_s"}, 0, 0, nil, ""},
		{"first page, tree order", map[string]any{"NAME": "sales%"}, 60, 50, float64(50), "Sales"},
		{"second page start", map[string]any{"NAME": "sales%", "start": "50"}, 60, 10, nil, "sales team 49"},
		{"START is ignored", map[string]any{"NAME": "sales%", "START": 50}, 60, 50, float64(50), "Sales"},
		{"Start is ignored", map[string]any{"NAME": "sales%", "Start": 50}, 60, 50, float64(50), "Sales"},
		{"offset at the end: page 1", map[string]any{"NAME": "sales%", "start": 60}, 60, 50, float64(50), "Sales"},
		{"offset past the end: page 1", map[string]any{"NAME": "sales%", "start": 5000}, 60, 50, float64(50), "Sales"},
		{"parent filter, siblings by SORT", map[string]any{"PARENT": 1}, 2, 2, nil, "Sales"},
		{"name and parent", map[string]any{"NAME": "market%", "PARENT": 1}, 1, 1, nil, "Marketing"},
		{"no match", map[string]any{"NAME": "nothing"}, 0, 0, nil, ""},
		{"sort desc", map[string]any{"PARENT": 1, "sort": "ID", "order": "DESC"}, 2, 2, nil, "Marketing"},
		{"sort by name", map[string]any{"PARENT": 1, "sort": "NAME"}, 2, 2, nil, "Marketing"},
		{"head filter", map[string]any{"UF_HEAD": 7}, 1, 1, nil, "Sales"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := call(t, s, "department.get", tt.params)
			wantOK(t, a)
			list := a.body["result"].([]any)
			if len(list) != tt.page || a.body["total"] != float64(tt.total) || a.body["next"] != tt.next {
				t.Fatalf("page %d total %v next %v, want %d %d %v", len(list), a.body["total"], a.body["next"], tt.page, tt.total, tt.next)
			}
			if tt.page > 0 && list[0].(map[string]any)["NAME"] != tt.firstName {
				t.Errorf("first %v, want %q", list[0], tt.firstName)
			}
		})
	}
}

func TestDepartmentGetTreeOrder(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	for _, d := range []map[string]any{
		{"NAME": "A", "PARENT": 1},              // 2
		{"NAME": "B", "PARENT": 1, "SORT": 100}, // 3: before A by SORT
		{"NAME": "A1", "PARENT": 2},             // 4
		{"NAME": "B1", "PARENT": 3},             // 5
		{"NAME": "C", "PARENT": 1},              // 6: after A by ID
		{"NAME": "A0", "PARENT": 2, "SORT": 1},  // 7: before A1 by SORT
	} {
		wantOK(t, call(t, s, "department.add", d))
	}
	names := func(a answer) []string {
		var out []string
		for _, row := range a.body["result"].([]any) {
			out = append(out, row.(map[string]any)["NAME"].(string))
		}
		return out
	}
	if got, want := names(call(t, s, "department.get", nil)), []string{"Company", "B", "B1", "A", "A0", "A1", "C"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pre-order %v, want %v", got, want)
	}
	if got, want := names(call(t, s, "department.get", map[string]any{"sort": "ID"})), []string{"Company", "A", "B", "A1", "B1", "C", "A0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sort=ID %v, want %v", got, want)
	}
	a := call(t, s, "batch", map[string]any{"cmd": map[string]string{"g": "department.get?NAME=a%25"}})
	if got := a.body["result"].(map[string]any)["result"].(map[string]any)["g"]; len(got.([]any)) != 3 ||
		got.([]any)[1].(map[string]any)["NAME"] != "A0" {
		t.Errorf("in a batch: %v", got)
	}
}

func TestPagingInBatch(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	for i := range 60 {
		wantOK(t, call(t, s, "crm.automatedsolution.add", map[string]any{"fields": map[string]any{"title": fmt.Sprintf("W%02d", i)}}))
	}
	a := call(t, s, "batch", map[string]any{"cmd": map[string]string{
		"p1":    "crm.automatedsolution.list",
		"p2":    "crm.automatedsolution.list?start=50",
		"upper": "crm.automatedsolution.list?START=50",
		"past":  "crm.automatedsolution.list?start=60",
		"dp":    "department.get?start=50",
	}})
	wantOK(t, a)
	res := a.body["result"].(map[string]any)
	results := res["result"].(map[string]any)
	count := func(k string) int {
		return len(results[k].(map[string]any)["automatedSolutions"].([]any))
	}
	if count("p1") != 50 || count("p2") != 10 || count("upper") != 50 || count("past") != 50 {
		t.Errorf("page sizes p1 %d p2 %d upper %d past %d", count("p1"), count("p2"), count("upper"), count("past"))
	}
	if d := results["dp"].([]any); len(d) != 1 || d[0].(map[string]any)["NAME"] != "Company" {
		t.Errorf("department.get past the end: %v, want page 1", d)
	}
	wantNext := map[string]any{"p1": float64(50), "upper": float64(50), "past": float64(50)}
	if !reflect.DeepEqual(res["result_next"], wantNext) {
		t.Errorf("result_next %v, want %v (no next on the last page)", res["result_next"], wantNext)
	}
	wantTotal := map[string]any{"p1": float64(60), "p2": float64(60), "upper": float64(60), "past": float64(60), "dp": float64(1)}
	if !reflect.DeepEqual(res["result_total"], wantTotal) {
		t.Errorf("result_total %v, want %v", res["result_total"], wantTotal)
	}
}

func TestUndecodableJSONBodyRunsWithoutParameters(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	post := func(method, body string) answer {
		req, _ := http.NewRequest(http.MethodPost, s.WebhookURL()+method, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return do(t, req)
	}
	// The method runs, without NAME: the portal's own validation answers.
	a := post("department.add", `{"NAME":"Sales","PARENT":1`)
	wantError(t, a, http.StatusBadRequest, "ERROR_CORE")
	if a.desc() != DescNoName {
		t.Errorf("description %q, want %q", a.desc(), DescNoName)
	}
	// Without its filter, department.get answers every department.
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "Sales", "PARENT": 1}))
	a = post("department.get", `{"ID":2,}`)
	wantOK(t, a)
	if a.body["total"] != float64(2) {
		t.Errorf("want both departments: %s", a.raw)
	}
	if n := s.Stats().Calls["department.add"]["ERROR_CORE"]; n != 1 {
		t.Errorf("department.add ran %d times with no parameters, want 1", n)
	}
}

func TestAutomatedSolutions(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{WorkplaceCap: 55})

	a := call(t, s, "crm.automatedsolution.add", map[string]any{"fields": map[string]any{"title": "HR", "typeIds": []int{1, 2}}})
	wantOK(t, a)
	want := map[string]any{"automatedSolution": map[string]any{"id": float64(1), "title": "HR", "typeIds": []any{float64(1), float64(2)}}}
	if !reflect.DeepEqual(a.body["result"], want) {
		t.Errorf("add: %s", a.raw)
	}

	for _, p := range []map[string]any{{}, {"fields": map[string]any{}}, {"fields": map[string]any{"title": ""}}} {
		a := call(t, s, "crm.automatedsolution.add", p)
		wantError(t, a, http.StatusBadRequest, "BX_EMPTY_REQUIRED")
		if a.desc() != DescNoTitle {
			t.Errorf("description %q", a.desc())
		}
	}

	wantOK(t, call(t, s, "crm.automatedsolution.add", map[string]any{"fields": map[string]any{"title": "HR2"}}))
	for i := range 53 {
		wantOK(t, call(t, s, "crm.automatedsolution.add", map[string]any{"fields": map[string]any{"title": fmt.Sprintf("W%d", i)}}))
	}
	a = call(t, s, "crm.automatedsolution.add", map[string]any{"fields": map[string]any{"title": "over"}})
	wantError(t, a, http.StatusBadRequest, "LIMIT_EXCEEDED")

	a = call(t, s, "crm.automatedsolution.list", map[string]any{"filter": map[string]any{"title": "HR"}})
	wantOK(t, a)
	list := a.body["result"].(map[string]any)["automatedSolutions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["title"] != "HR" || a.body["total"] != float64(1) {
		t.Errorf("title filter is exact: %s", a.raw)
	}

	a = call(t, s, "crm.automatedsolution.list", nil)
	list = a.body["result"].(map[string]any)["automatedSolutions"].([]any)
	if len(list) != 50 || a.body["total"] != float64(55) || a.body["next"] != float64(50) {
		t.Errorf("page 1: %d items total %v next %v", len(list), a.body["total"], a.body["next"])
	}
	a = call(t, s, "crm.automatedsolution.list", map[string]any{"start": 50})
	list = a.body["result"].(map[string]any)["automatedSolutions"].([]any)
	if len(list) != 5 || a.body["next"] != nil {
		t.Errorf("page 2: %d items next %v", len(list), a.body["next"])
	}
	if st := s.Stats(); st.WorkplacesCreated != 55 || st.Calls["crm.automatedsolution.add"]["LIMIT_EXCEEDED"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestDuplicateCounting(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	for _, p := range []map[string]any{
		{"NAME": "Sales", "PARENT": 1},
		{"NAME": "Sales", "PARENT": 1}, // duplicate
		{"NAME": "Sales", "PARENT": 2}, // same name, other parent: fine
		{"NAME": "sales", "PARENT": 1}, // other case: a different name
		{"NAME": "Sales", "PARENT": 1}, // duplicate again
	} {
		wantOK(t, call(t, s, "department.add", p))
	}
	for _, title := range []string{"HR", "HR", "hr"} {
		wantOK(t, call(t, s, "crm.automatedsolution.add", map[string]any{"fields": map[string]any{"title": title}}))
	}
	st := s.Stats()
	if st.DepartmentsCreated != 5 || st.DuplicateDepartments != 2 || st.WorkplacesCreated != 3 || st.DuplicateWorkplaces != 1 {
		t.Errorf("created %d dup %d, workplaces %d dup %d", st.DepartmentsCreated, st.DuplicateDepartments, st.WorkplacesCreated, st.DuplicateWorkplaces)
	}
}

func TestFormBodies(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	a := callForm(t, s, "department.add", "NAME=%D0%9E%D1%82%D0%B4%D0%B5%D0%BB+1&PARENT=1&SORT=10")
	wantOK(t, a)
	if d := s.Departments()[1]; d.Name != "Отдел 1" || d.Parent != 1 || d.Sort != 10 {
		t.Errorf("department %+v", d)
	}
	a = callForm(t, s, "crm.automatedsolution.add.json", "fields%5Btitle%5D=HR&fields[typeIds][0]=3&fields[typeIds][1]=4")
	wantOK(t, a)
	if w := s.Workplaces()[0]; w.Title != "HR" || !reflect.DeepEqual(w.TypeIDs, []int64{3, 4}) {
		t.Errorf("workplace %+v", w)
	}
	a = callForm(t, s, "crm.automatedsolution.add", "fields[title]=Ops&fields[typeIds][]=5")
	wantOK(t, a)
	if w := s.Workplaces()[1]; !reflect.DeepEqual(w.TypeIDs, []int64{5}) {
		t.Errorf("append syntax: %+v", w)
	}
	a = callForm(t, s, "department.get", "NAME=%D0%BE%D1%82%D0%B4%D0%B5%D0%BB%25")
	if list := a.body["result"].([]any); len(list) != 1 {
		t.Errorf("LIKE on Cyrillic, lower case: %s", a.raw)
	}
}

func TestDecodeForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want params
	}{
		{"a=1&b=x+y", params{"a": "1", "b": "x y"}},
		{"f[t]=HR&f[ids][0]=1&f[ids][1]=2", params{"f": map[string]any{"t": "HR", "ids": []any{"1", "2"}}}},
		{"l[]=a&l[]=b", params{"l": []any{"a", "b"}}},
		{"m[1]=a", params{"m": map[string]any{"1": "a"}}},
		{"v=%24result%5Ba%5D", params{"v": "$result[a]"}},
		{"", params{}},
	}
	for _, tt := range tests {
		got, _, err := decodeForm(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("decodeForm(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
	if _, _, err := decodeForm("a=%zz"); err == nil {
		t.Error("bad escape: want error")
	}
}

func TestAuthAndRouting(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{WebhookSecret: "s3cret"})
	tests := []struct {
		name   string
		url    string
		status int
		code   string
	}{
		{"wrong secret", s.URL + "/rest/1/wrong/department.get", 401, "NO_AUTH_FOUND"},
		{"wrong user", s.URL + "/rest/2/s3cret/department.get", 401, "NO_AUTH_FOUND"},
		{"unknown method", s.URL + "/rest/1/s3cret/department.delete", 404, "ERROR_METHOD_NOT_FOUND"},
		{"json suffix", s.URL + "/rest/1/s3cret/department.get.json", 200, ""},
		{"oauth without auth", s.URL + "/rest/department.get", 401, "NO_AUTH_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := postJSON(t, tt.url, map[string]any{})
			if a.status != tt.status || a.code() != tt.code {
				t.Errorf("got %d %s", a.status, a.raw)
			}
			if tt.code == "NO_AUTH_FOUND" && a.desc() != "Wrong authorization data" {
				t.Errorf("description %q", a.desc())
			}
		})
	}
}

func TestAccessDenied(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{})
	s.SetAccessDenied(true)
	wantError(t, call(t, s, "department.add", map[string]any{"NAME": "A", "PARENT": 1}), http.StatusForbidden, "ACCESS_DENIED")
	s.SetAccessDenied(false)
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "A", "PARENT": 1}))
	if n := len(s.Departments()); n != 2 {
		t.Errorf("%d departments, want 2", n)
	}
}

func TestOAuth(t *testing.T) {
	t.Parallel()
	s, clk := setup(t, Config{OAuth: OAuthConfig{ClientID: "app", ClientSecret: "cs", AccessToken: "A1", RefreshToken: "R1", AccessTTL: 3600e9}})
	rest := s.OAuthPortalURL() + "rest/"

	wantOK(t, postJSON(t, rest+"department.get", map[string]any{"auth": "A1", "ID": 1}))
	wantError(t, postJSON(t, rest+"department.get", map[string]any{"auth": "nope"}), 401, "invalid_token")
	clk.Advance(3600e9)
	a := postJSON(t, rest+"department.get", map[string]any{"auth": "A1"})
	wantError(t, a, 401, "expired_token")
	if a.desc() != "The access token provided has expired." {
		t.Errorf("description %q", a.desc())
	}

	refresh := func(client, secret, token string) answer {
		return do(t, mustGet(t, s.TokenEndpoint()+"?grant_type=refresh_token&client_id="+client+"&client_secret="+secret+"&refresh_token="+token))
	}
	wantError(t, refresh("app", "wrong", "R1"), 401, "invalid_client")
	a = refresh("app", "cs", "R1")
	wantOK(t, a)
	access, _ := a.body["access_token"].(string)
	newRefresh, _ := a.body["refresh_token"].(string)
	if access == "" || access == "A1" || newRefresh == "" || newRefresh == "R1" || a.body["expires_in"] != float64(3600) {
		t.Fatalf("refresh answer %s", a.raw)
	}
	wantError(t, refresh("app", "cs", "R1"), 400, "invalid_grant") // rotated away

	// The new access token works, in a JSON body and in a form body.
	wantOK(t, postJSON(t, rest+"department.add", map[string]any{"auth": access, "NAME": "Sales", "PARENT": 1}))
	req, _ := http.NewRequest(http.MethodPost, rest+"department.add.json", strings.NewReader("auth="+access+"&NAME=EU&PARENT=2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantOK(t, do(t, req))

	s.ExpireAccessTokens()
	wantError(t, postJSON(t, rest+"department.get", map[string]any{"auth": access}), 401, "expired_token")

	// A second rotation from the new refresh token.
	wantOK(t, refresh("app", "cs", newRefresh))
	if st := s.Stats(); st.Refreshes != 2 || st.DepartmentsCreated != 2 {
		t.Errorf("Refreshes=%d DepartmentsCreated=%d", st.Refreshes, st.DepartmentsCreated)
	}
}
