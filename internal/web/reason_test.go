package web

import (
	"testing"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/tasks"
)

func TestParseReason(t *testing.T) {
	t.Parallel()
	// The shapes the tasks package writes, built from the real error types
	// where they exist, so that a change of their wording fails here.
	addErr := &b24.Error{Method: "department.add", Code: "ERROR_CORE", Description: "Parent department not found", HTTPStatus: 400}
	perm := (&tasks.PermanentError{Err: addErr}).Error()
	cmdErr := (&tasks.PermanentError{Err: &b24.Error{Method: "crm.automatedsolution.add", Code: "LIMIT_EXCEEDED", Description: "Plan limit: 5"}}).Error()
	for _, tt := range []struct {
		in   string
		want Reason
	}{
		{"permanent failure: b24: department.add: ERROR_CORE: Parent department not found (HTTP 400)",
			Reason{Context: "permanent failure", Method: "department.add", Code: "ERROR_CORE", Description: "Parent department not found", HTTPStatus: 400}},
		{perm, Reason{Context: "permanent failure", Method: "department.add", Code: "ERROR_CORE", Description: "Parent department not found", HTTPStatus: 400}},
		{cmdErr, Reason{Context: "permanent failure", Method: "crm.automatedsolution.add", Code: "LIMIT_EXCEEDED", Description: "Plan limit: 5"}},
		{"parent sales failed: " + perm,
			Reason{Parent: "sales", Context: "permanent failure", Method: "department.add", Code: "ERROR_CORE", Description: "Parent department not found", HTTPStatus: 400}},
		{"batch failed: b24: batch: INVALID_REQUEST: Too many commands (HTTP 400)",
			Reason{Context: "batch failed", Method: "batch", Code: "INVALID_REQUEST", Description: "Too many commands", HTTPStatus: 400}},
		{"gave up after 25 transient failures, the last: b24: department.add: INTERNAL_SERVER_ERROR: Internal error",
			Reason{Context: "gave up after 25 transient failures", Method: "department.add", Code: "INTERNAL_SERVER_ERROR", Description: "Internal error"}},
		{"batch failed: lost answer", Reason{Context: "batch failed", Description: "lost answer"}},
		{"permanent failure: ACCESS_DENIED", Reason{Context: "permanent failure", Code: "ACCESS_DENIED"}},
		{"b24: expired_token: The access token provided has expired (HTTP 401)",
			Reason{Code: "expired_token", Description: "The access token provided has expired", HTTPStatus: 401}},
		{"permanent failure: invalid payload: name is empty", Reason{Context: "permanent failure", Description: "invalid payload: name is empty"}},
		{"permanent failure: department.add: b24: department.add: BX_EMPTY_REQUIRED",
			Reason{Context: "permanent failure; department.add", Method: "department.add", Code: "BX_EMPTY_REQUIRED"}},
		{"something odd", Reason{Description: "something odd"}},
		{"", Reason{}},
		{"parent  failed: x", Reason{Description: "parent  failed: x"}},
	} {
		got := ParseReason(tt.in)
		tt.want.Text = tt.in
		if got != tt.want {
			t.Errorf("ParseReason(%q) =\n  %+v\nwant\n  %+v", tt.in, got, tt.want)
		}
	}
}
