package cli_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/internal/cli"
)

const goodYAML = `departments:
  - key: sales
    name: Sales
    parent_id: 1
    children:
      - {key: sales-eu, name: Sales EU}
      - {key: sales-us, name: Sales US}
  - {key: support, name: Support, parent_id: 1}
  - {key: support-l2, name: Support L2, parent: support}
workplaces:
  - {key: hr, title: HR, type_ids: [1, 2]}
`

func TestImportDryRunPrintsThePlanWithoutRedis(t *testing.T) {
	t.Parallel()
	f := setup(t, false) // REDIS_URL points nowhere
	path := writeFile(t, "org.yaml", goodYAML)
	code, out, errOut := f.run("import", path, "--dry-run")
	if code != cli.ExitOK {
		t.Fatalf("exit code %d; stderr: %s", code, errOut)
	}
	for _, want := range []string{
		"dry run, nothing enqueued",
		"5 departments, 1 workplaces",
		"roots (with parent_id): 2",
		"depth 0: 2\ndepth 1: 3\n",
		"max depth: 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	// The ID printed is the one a real run uses: derived from the content,
	// with the (non-default) portal appended.
	if !regexp.MustCompile(`import imp-[0-9a-f]{16}-` + regexp.QuoteMeta(f.portal) + ` for portal `).MatchString(out) {
		t.Errorf("dry run does not print the derived import ID:\n%s", out)
	}
	code, out, _ = f.run("import", path, "--dry-run", "--id", "org-2024")
	if code != cli.ExitOK || !strings.HasPrefix(out, "import org-2024 ") {
		t.Errorf("--id not used by the dry run: %d %q", code, out)
	}
}

func TestImportValidationListsEveryProblemAndEnqueuesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	// Line numbers:    1             2
	path := writeFile(t, "org.yaml", `departments:
  - {key: a, name: A, parent_id: 1}
  - {key: b, name: "", parent: a}
  - {key: c, name: C, parent: nope}
  - {key: a, name: A again, parent_id: 1}
  - {key: d, name: D, parent: a, parent_id: 3}
workplaces:
  - {key: w, title: ""}
`)
	code, out, errOut := f.run("import", path)
	if code != cli.ExitUsage {
		t.Fatalf("exit code %d, want 2; stderr: %s", code, errOut)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing", out)
	}
	for _, line := range []int{3, 4, 5, 6, 8} {
		if want := fmt.Sprintf("%s:%d: ", path, line); !strings.Contains(errOut, want) {
			t.Errorf("no problem reported at line %d:\n%s", line, errOut)
		}
	}
	if !strings.Contains(errOut, "nothing was enqueued") {
		t.Errorf("stderr does not say nothing was enqueued:\n%s", errOut)
	}
	if n := f.queued(); n != 0 {
		t.Errorf("%d tasks enqueued, want 0", n)
	}
}

func TestImportSubmitsAndStatusShowsIt(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	path := writeFile(t, "org.yaml", goodYAML)
	code, out, errOut := f.run("import", path, "--id", "org-1")
	if code != cli.ExitOK {
		t.Fatalf("exit code %d; stderr: %s", code, errOut)
	}
	// One task goes to the queue: the import's reconcile step, which reads
	// the portal and then releases the roots and the workplace.
	if !strings.Contains(out, "import org-1: 6 items, 1 enqueued now, 0 already created") {
		t.Errorf("submit output:\n%s", out)
	}
	if !strings.Contains(out, "enqueue status org-1") {
		t.Errorf("submit output does not say how to follow the import:\n%s", out)
	}
	if n := f.queued(); n != 1 {
		t.Errorf("%d tasks in the queue, want 1", n)
	}

	// Running the same file again enqueues nothing new.
	code, out, errOut = f.run("import", path, "--id", "org-1")
	if code != cli.ExitOK || !strings.Contains(out, "0 enqueued now") || !strings.Contains(out, "submitted before") {
		t.Errorf("second run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if n := f.queued(); n != 1 {
		t.Errorf("%d tasks in the queue after the second run, want 1", n)
	}

	code, out, errOut = f.run("status", "org-1", "--json")
	if code != cli.ExitOK {
		t.Fatalf("status --json: exit code %d; stderr: %s", code, errOut)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("status --json is not a JSON object: %v\n%s", err, out)
	}
	if got, want := slices.Sorted(maps.Keys(raw)), []string{"counts", "created", "done", "failed", "id", "portal"}; !slices.Equal(got, want) {
		t.Errorf("status --json fields = %v, want %v", got, want)
	}
	var st struct {
		ID     string         `json:"id"`
		Portal string         `json:"portal"`
		Done   bool           `json:"done"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	wantCounts := map[string]int{"total": 6, "created": 0, "pending": 3, "waiting": 3, "failed": 0, "adopted": 0, "updated": 0}
	if st.ID != "org-1" || st.Portal != f.portal || st.Done || !maps.Equal(st.Counts, wantCounts) {
		t.Errorf("status = %+v, want id org-1, portal %s, not done, counts %v", st, f.portal, wantCounts)
	}

	code, out, _ = f.run("status", "org-1")
	if code != cli.ExitOK {
		t.Fatalf("status: exit code %d", code)
	}
	for _, want := range []string{"import org-1 (portal " + f.portal + "): in progress", "total 6", "pending 3", "waiting 3"} {
		if !strings.Contains(squeeze(out), want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

func TestImportSameIDOtherContentIsAUsageError(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	if code, _, errOut := f.run("import", writeFile(t, "a.yaml", goodYAML), "--id", "clash"); code != cli.ExitOK {
		t.Fatalf("first import: %d %s", code, errOut)
	}
	other := writeFile(t, "b.yaml", "departments:\n  - {key: x, name: X, parent_id: 1}\n")
	code, _, errOut := f.run("import", other, "--id", "clash")
	if code != cli.ExitUsage || !strings.Contains(errOut, "exists with other content") {
		t.Errorf("exit %d, stderr %q; want 2 and a conflict message", code, errOut)
	}
}

func TestStatusOfUnknownImportExits1(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	code, out, errOut := f.run("status", "imp-doesnotexist")
	if code != cli.ExitFailure || out != "" || !strings.Contains(errOut, `no import "imp-doesnotexist"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// squeeze collapses runs of spaces, so that assertions do not depend on
// the column alignment.
func squeeze(s string) string {
	return regexp.MustCompile(` +`).ReplaceAllString(s, " ")
}
