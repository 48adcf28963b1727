package cli_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/tasks"
)

// --plan asks a worker to compare the file with the portal and prints what
// an import would do, creating nothing; a conflict exits 1.
func TestImportPlanPrintsWhatWouldHappen(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	sim := startWorker(t, f, b24test.Config{Rate: 50, Burst: 50})
	sales := sim.SeedDepartment("Sales", 1, 100, 7)
	sim.SeedDepartment("Ops", 1, 0, 0)
	sim.SeedDepartment("Ops", 1, 0, 0)
	path := writeFile(t, "org.yaml", `departments:
  - {key: sales, name: Sales, parent_id: 1, sort: 200, head: 7}
  - {key: eu, name: Sales EU, parent: sales}
  - {key: ops, name: Ops, parent_id: 1}
workplaces:
  - {key: hr, title: HR}
`)
	code, out, errOut := f.run("import", path, "--portal", f.portal, "--plan")
	if code != cli.ExitFailure {
		t.Fatalf("exit %d, want 1 (a conflict); stderr %s", code, errOut)
	}
	for _, want := range []string{
		`differs   sales "Sales" (ID ` + strconv.FormatInt(sales, 10) + `: sort 100 -> 200)`,
		`create    eu "Sales EU"`,
		`conflict  ops "Ops": 2 departments under 1 hold this name`,
		`create    hr "HR"`,
		"2 to create, 0 exist, 1 differ, 1 in conflict (read in 1 request)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if s := sim.Stats(); s.DepartmentsCreated+s.WorkplacesCreated+s.DepartmentsUpdated != 0 {
		t.Errorf("the plan changed the portal: %+v", s)
	}

	code, out, _ = f.run("import", path, "--portal", f.portal, "--plan", "--json", "--on-conflict", "first")
	var plan tasks.Plan
	if err := json.Unmarshal([]byte(out), &plan); err != nil || code != cli.ExitOK {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	if ops, _ := plan.Item("ops"); plan.Totals[importer.ActionConflict] != 1 || ops.ID == 0 || plan.Portal != f.portal {
		t.Errorf("plan with --on-conflict first: totals %v, ops %+v", plan.Totals, ops)
	}
}
