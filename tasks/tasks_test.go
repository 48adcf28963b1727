package tasks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
)

func TestNewDepartmentTaskValidatesEveryField(t *testing.T) {
	t.Parallel()
	_, err := NewDepartmentTask(DepartmentPayload{Portal: "Bad Portal", Name: " ", Parent: -1, Sort: -5, Head: -2, Key: "k"})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	want := []string{"portal", "name is empty", "parent_id must be a positive integer", "sort -5", "head -2", "import_id and key"}
	if len(verr.Problems) != len(want) {
		t.Fatalf("problems = %q, want %d", verr.Problems, len(want))
	}
	for i, w := range want {
		if !strings.Contains(verr.Problems[i], w) {
			t.Errorf("problem %d = %q, want it to mention %q", i, verr.Problems[i], w)
		}
	}
}

func TestNewDepartmentTaskDefaults(t *testing.T) {
	t.Parallel()
	task, err := NewDepartmentTask(DepartmentPayload{Name: "Sales", Parent: 1})
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeDepartmentCreate {
		t.Errorf("type = %q", task.Type())
	}
	var p DepartmentPayload
	if err := json.Unmarshal(task.Payload(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Portal != DefaultPortal || p.Name != "Sales" || p.Parent != 1 {
		t.Errorf("payload = %+v", p)
	}
}

func TestNewWorkplaceTaskValidates(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("я", MaxNameLength+1)
	for _, tt := range []struct {
		p    WorkplacePayload
		want string
	}{
		{WorkplacePayload{Title: ""}, "title is empty"},
		{WorkplacePayload{Title: long}, "the limit is 255"},
		{WorkplacePayload{Title: "HR\x00"}, "control character U+0000"},
		{WorkplacePayload{Title: "HR", TypeIDs: []int64{1, 0}}, "type_ids[1]"},
		{WorkplacePayload{Title: "\xff"}, "UTF-8"},
	} {
		_, err := NewWorkplaceTask(tt.p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewWorkplaceTask(%+v) = %v, want error mentioning %q", tt.p, err, tt.want)
		}
	}
	if _, err := NewWorkplaceTask(WorkplacePayload{Title: "HR", TypeIDs: []int64{1, 2}}); err != nil {
		t.Errorf("valid workplace rejected: %v", err)
	}
}

func TestGarbagePayloadIsPermanent(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{"not json", `{"portal":"default","name":""}`, `{"portal":"default","title":42}`} {
		var p DepartmentPayload
		err := decodePayload(asynq.NewTask(TypeDepartmentCreate, []byte(payload)), &p)
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("decodePayload(%q) = %v, want a permanent error", payload, err)
		}
	}
}

func TestQueuePerPortal(t *testing.T) {
	t.Parallel()
	a, _ := NewDepartmentTask(DepartmentPayload{Portal: "acme", Name: "A", Parent: 1})
	b, _ := NewDepartmentTask(DepartmentPayload{Portal: "beta", Name: "B", Parent: 1})
	if a == nil || b == nil {
		t.Fatal("valid tasks rejected")
	}
	if QueueName("acme") == QueueName("beta") {
		t.Fatal("portals share a queue")
	}
}
