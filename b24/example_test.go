package b24_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/b24queue/b24queue/b24"
)

// A webhook client creating a department. The httptest server stands in for
// the portal; with a real portal the URL is https://PORTAL/rest/USER_ID/SECRET/.
func ExampleNewWebhook() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("portal got %s %s\n", r.URL.Path[len("/rest/1/s3cr3tc0de/"):], body)
		_, _ = io.WriteString(w, `{"result":18,"time":{"start":1736927311.779587,"operating":0.17,"operating_reset_at":1736927911}}`)
	}))
	defer srv.Close()

	c, err := b24.NewWebhook(srv.URL + "/rest/1/s3cr3tc0de/")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Replace(c.String(), srv.URL, "http://PORTAL", 1)) // the secret is never printed

	id, meta, err := c.AddDepartment(context.Background(), b24.DepartmentFields{Name: "Sales", Parent: 1, Sort: 100})
	if err != nil {
		fmt.Println("error:", err, "class:", b24.Classify(err), "ambiguous:", b24.IsAmbiguous(err))
		return
	}
	fmt.Println("created department", id, "operating", meta.Time.OperatingDuration())
	// Output:
	// b24.Client(webhook http://PORTAL/rest/1/***/)
	// portal got department.add {"NAME":"Sales","PARENT":1,"SORT":100}
	// created department 18 operating 170ms
}

// Branching on an error: the class says what to do, never the HTTP status.
func ExampleClassify() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"error":             "OPERATION_TIME_LIMIT",
			"error_description": "Method is blocked due to operation time limit",
		})
	}))
	defer srv.Close()

	c, _ := b24.NewWebhook(srv.URL + "/rest/1/s3cr3tc0de/")
	_, _, err := c.AddDepartment(context.Background(), b24.DepartmentFields{Name: "Sales", Parent: 1})
	var apiErr *b24.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Code, b24.Classify(err), b24.IsAmbiguous(err))
	}
	// Output: OPERATION_TIME_LIMIT method_blocked false
}
