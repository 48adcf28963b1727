package worker

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/tasks"
)

// A batch task shows in the dashboard as one line: what, for which portal
// and import, the first keys; never the items' names or anything secret.
func TestBatchPayloadIsOneLine(t *testing.T) {
	t.Parallel()
	var items []*asynq.Task
	for i := range 12 {
		task, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{
			Portal: "acme", Name: fmt.Sprintf("Secret team %d", i), Parent: 1, ImportID: "imp-3f2a", Key: fmt.Sprintf("k%d", i),
		})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, task)
	}
	batch := tasks.NewBatchAggregator().Aggregate(tasks.BatchGroup("acme", "department.add"), items)
	got := PayloadFormatter.FormatPayload(tasks.TypeBatchCreate, batch.Payload())
	want := "12 departments (department.add) for portal acme, import imp-3f2a: k0, k1, k2, k3, k4, k5, k6, k7, … (+4 more); import page: /imports/imp-3f2a"
	if got != want {
		t.Errorf("summary\n %q\nwant\n %q", got, want)
	}
	if strings.Contains(got, "Secret team") || strings.Contains(got, "\n") {
		t.Errorf("summary shows names or spans lines: %q", got)
	}

	// A verify batch of workplaces from two imports, with a URL in a key.
	p := tasks.BatchPayload{Portal: "acme", Group: "acme/crm.automatedsolution.add/verify", Verify: true}
	for i, ref := range []string{`{"import_id":"a","key":"hr"}`, `{"import_id":"b","key":"https://x.bitrix24.ru/rest/1/hooksecret123/"}`} {
		p.Items = append(p.Items, tasks.BatchItem{Type: tasks.TypeWorkplaceCreate, Payload: json.RawMessage(ref), TaskID: fmt.Sprint(i)})
	}
	data, _ := json.Marshal(p)
	got = PayloadFormatter.FormatPayload(tasks.TypeBatchCreate, data)
	for _, w := range []string{"2 workplaces (crm.automatedsolution.add) for portal acme, imports a, b: hr, ", "looked up before it is created"} {
		if !strings.Contains(got, w) {
			t.Errorf("summary %q lacks %q", got, w)
		}
	}
	if strings.Contains(got, "hooksecret123") {
		t.Errorf("summary shows a webhook secret: %q", got)
	}
	if got := PayloadFormatter.FormatPayload(tasks.TypeBatchCreate, []byte("not json")); !strings.Contains(got, "hidden") {
		t.Errorf("undecodable batch: %q", got)
	}
}
