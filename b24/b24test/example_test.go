package b24test_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/b24queue/b24queue/b24/b24test"
)

// A simulator for a main or a benchmark: Start on a free port, call it like
// a portal, then assert on its counters.
func ExampleStart() {
	srv, err := b24test.Start(b24test.Config{Burst: 2}, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	for range 3 {
		resp, err := http.Post(srv.WebhookURL()+"department.add.json", "application/json",
			strings.NewReader(`{"NAME":"Sales","PARENT":1}`))
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.SplitN(string(body), ",", 2)[0])
	}
	st := srv.Stats()
	fmt.Println("created", st.DepartmentsCreated, "duplicates", st.DuplicateDepartments, "rejected", st.Rejected503)
	// Output:
	// 200 {"result":2
	// 200 {"result":3
	// 503 {"error":"QUERY_LIMIT_EXCEEDED"
	// created 2 duplicates 1 rejected 1
}
