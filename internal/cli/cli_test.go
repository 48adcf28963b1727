package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/tasks"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage: enqueue COMMAND", "department", "workplace", "import", "status", "Exit codes", "REDIS_URL", "B24_PORTAL"}},
		{[]string{"help"}, []string{"Usage: enqueue COMMAND"}},
		{[]string{"-h"}, []string{"Usage: enqueue COMMAND"}},
		{[]string{"department", "--help"}, []string{"Usage: enqueue department --name NAME --parent-id ID", "--sort", "--head", "--portal", "Examples:", "REDIS_URL", "B24_PORTAL"}},
		{[]string{"help", "department"}, []string{"Usage: enqueue department"}},
		{[]string{"workplace", "-h"}, []string{"Usage: enqueue workplace --title TITLE", "--type-ids", "Examples:", "REDIS_URL"}},
		{[]string{"import", "--help"}, []string{"Usage: enqueue import FILE", "--dry-run", "--wait", "--id", "parent_id", "Examples:", "REDIS_URL"}},
		{[]string{"import", "org.yaml", "--help"}, []string{"Usage: enqueue import FILE"}},
		{[]string{"status", "--help"}, []string{"Usage: enqueue status IMPORT_ID [--json]", `"counts"`, "Examples:", "REDIS_URL"}},
		{[]string{"task", "--help"}, []string{"Usage: enqueue task TASK_ID [--json]", `"created_id"`, "Examples:", "REDIS_URL"}},
		{[]string{"help", "task"}, []string{"Usage: enqueue task TASK_ID"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			f := setup(t, false)
			code, out, errOut := f.run(tt.args...)
			if code != cli.ExitOK {
				t.Errorf("exit code %d, want 0; stderr: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// Usage errors exit 2, say what is wrong on stderr, and never touch Redis
// (REDIS_URL points nowhere, so trying would exit 1).
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "Usage: enqueue COMMAND"},
		{[]string{"frobnicate"}, "enqueue: unknown command \"frobnicate\"\nRun 'enqueue --help' for usage.\n"},
		{[]string{"statsu", "x"}, `unknown command "statsu"; did you mean status?`},
		{[]string{"departmnet"}, `unknown command "departmnet"; did you mean department?`},
		{[]string{"department", "--name", "Sales"}, "--parent-id is required"},
		{[]string{"department", "--name", "Sales", "--parent-id", "x"}, `invalid value "x" for --parent-id`},
		{[]string{"department", "--nme", "Sales", "--parent-id", "1"}, "enqueue department: unknown flag --nme; did you mean --name?\nRun 'enqueue department --help' for usage.\n"},
		{[]string{"department", "-nme", "Sales", "--parent-id", "1"}, "unknown flag --nme; did you mean --name?"},
		{[]string{"department", "--name", "Sales", "--parent-id", "1", "extra"}, `unexpected argument "extra"`},
		{[]string{"department", "--name", "Sales", "--parent-id", "1", "--parent", "1"}, "give --parent-id only"},
		{[]string{"department", "--name", "Sales", "--parent-id", "0"}, "parent_id 0: every Bitrix24 portal already has its root department"},
		{[]string{"department", "--name", "Sales\x07", "--parent-id", "1"}, "name contains the control character U+0007"},
		{[]string{"workplace", "--title", "Caf\xe9"}, "title is not valid UTF-8"},
		{[]string{"import", "org.yaml", "--wiat"}, "unknown flag --wiat; did you mean --wait?"},
		{[]string{"status", "x", "--jsno"}, "unknown flag --jsno; did you mean --json?"},
		{[]string{"task"}, "missing TASK_ID"},
		{[]string{"task", "a", "b"}, `unexpected argument "b" after TASK_ID`},
		{[]string{"workplace", "--title", "HR", "--type-ids", "1,x"}, `--type-ids: "x" is not a positive integer ID`},
		{[]string{"workplace", "--title", "HR", "--type-ids", "1,-2"}, `"-2" is not a positive integer ID`},
		{[]string{"import"}, "missing FILE"},
		{[]string{"import", "a.yaml", "b.yaml"}, `unexpected argument "b.yaml"`},
		{[]string{"import", "a.yaml", "--id", "bad:id"}, `--id "bad:id"`},
		{[]string{"import", "a.yaml", "--dry-run", "--wait"}, "exclude each other"},
		{[]string{"import", "org.txt"}, "unknown file type"},
		{[]string{"import", "/nonexistent/org.yaml"}, "no such file"},
		{[]string{"import", "org.yaml", "--portal", "Bad Portal"}, `portal "Bad Portal"`},
		{[]string{"status"}, "missing IMPORT_ID"},
		{[]string{"status", "{x}"}, "is not an import ID"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			f := setup(t, false)
			code, out, errOut := f.run(tt.args...)
			if code != cli.ExitUsage {
				t.Errorf("exit code %d, want 2; stderr: %s", code, errOut)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, errOut)
			}
		})
	}
}

func TestTaskValidationPrintsEveryProblemAndEnqueuesNothing(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"department", []string{"department", "--name", " ", "--parent-id", "-1", "--sort", "-5", "--head", "-2"},
			[]string{"name is empty", "parent_id must be a positive integer", "sort -5", "head -2"}},
		{"workplace", []string{"workplace", "--title", ""}, []string{"title is empty"}},
		{"portal", []string{"workplace", "--title", "HR", "--portal", "Not Valid"}, []string{`portal "Not Valid"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, true)
			code, out, errOut := f.run(tt.args...)
			if code != cli.ExitUsage {
				t.Fatalf("exit code %d, want 2; stderr: %s", code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("stderr has %d lines, want one per problem (%d):\n%s", len(lines), len(tt.want), errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if n := f.queued(); n != 0 {
				t.Errorf("%d tasks enqueued, want 0", n)
			}
		})
	}
}

func TestDepartmentAndWorkplacePrintTheirTaskID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args     []string
		wantType string
		check    func(t *testing.T, payload []byte, portal string)
	}{
		{
			// Flags in any order, the portal from B24_PORTAL.
			args:     []string{"department", "--parent-id", "12", "--name", " Sales EU\t", "--sort", "500", "--head", "7"},
			wantType: tasks.TypeDepartmentCreate,
			check: func(t *testing.T, payload []byte, portal string) {
				var p tasks.DepartmentPayload
				if err := json.Unmarshal(payload, &p); err != nil {
					t.Fatal(err)
				}
				want := tasks.DepartmentPayload{Portal: portal, Name: "Sales EU", Parent: 12, Sort: 500, Head: 7}
				if p != want {
					t.Errorf("payload = %+v, want %+v", p, want)
				}
			},
		},
		{
			args:     []string{"workplace", "--title", "Field service", "--type-ids", "128, 130"},
			wantType: tasks.TypeWorkplaceCreate,
			check: func(t *testing.T, payload []byte, portal string) {
				var p tasks.WorkplacePayload
				if err := json.Unmarshal(payload, &p); err != nil {
					t.Fatal(err)
				}
				if p.Portal != portal || p.Title != "Field service" || len(p.TypeIDs) != 2 || p.TypeIDs[0] != 128 || p.TypeIDs[1] != 130 {
					t.Errorf("payload = %+v", p)
				}
			},
		},
	} {
		t.Run(tt.args[0], func(t *testing.T) {
			t.Parallel()
			f := setup(t, true)
			code, out, errOut := f.run(tt.args...)
			if code != cli.ExitOK {
				t.Fatalf("exit code %d, want 0; stderr: %s", code, errOut)
			}
			id := strings.TrimSpace(out)
			if id == "" || strings.Contains(id, "\n") {
				t.Fatalf("stdout = %q, want one task ID", out)
			}
			info, err := f.insp.GetTaskInfo(f.queue, id)
			if err != nil {
				t.Fatalf("task %s not in queue %s: %v", id, f.queue, err)
			}
			if info.Type != tt.wantType {
				t.Errorf("type = %q, want %q", info.Type, tt.wantType)
			}
			tt.check(t, info.Payload, f.portal)
			if n := f.queued(); n != 1 {
				t.Errorf("%d tasks in the queue, want 1", n)
			}
		})
	}
}

func TestPortalFlagWinsOverEnvironment(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	other := f.portal + "-x"
	code, out, errOut := f.run("workplace", "--title", "HR", "--portal", other)
	if code != cli.ExitOK {
		t.Fatalf("exit code %d; stderr: %s", code, errOut)
	}
	t.Cleanup(func() { _ = f.insp.DeleteQueue(tasks.QueueName(other), true) })
	if _, err := f.insp.GetTaskInfo(tasks.QueueName(other), strings.TrimSpace(out)); err != nil {
		t.Errorf("task not in the --portal queue: %v", err)
	}
}

func TestRedisUnreachableExits1NamingTheRedactedURL(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"department", "--name", "Sales", "--parent", "1"},
		{"status", "imp-0000000000000000"},
		{"import", "../../importer/testdata/good/flat.yaml"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			checkUnreachable(t, setup(t, false), args)
		})
	}
}

func checkUnreachable(t *testing.T, f *fixture, args []string) {
	t.Helper()
	code, out, errOut := f.run(args...)
	if code != cli.ExitFailure {
		t.Errorf("%s: exit code %d, want 1; stderr: %s", args[0], code, errOut)
	}
	if out != "" {
		t.Errorf("%s: stdout = %q", args[0], out)
	}
	if !strings.Contains(errOut, "cannot reach Redis at redis://admin:") || !strings.Contains(errOut, "@127.0.0.1:1/5") {
		t.Errorf("%s: stderr does not name the Redis URL:\n%s", args[0], errOut)
	}
	if strings.Contains(errOut, "s3cr3t-pw") {
		t.Errorf("%s: stderr leaks the Redis password:\n%s", args[0], errOut)
	}
}

func TestBadEnvironmentIsAUsageError(t *testing.T) {
	t.Parallel()
	f := setup(t, false)
	f.env["REDIS_URL"] = "http://:hunter2@example.com/"
	code, _, errOut := f.run("workplace", "--title", "HR")
	if code != cli.ExitUsage {
		t.Errorf("exit code %d, want 2; stderr: %s", code, errOut)
	}
	if !strings.Contains(errOut, "REDIS_URL") || strings.Contains(errOut, "hunter2") {
		t.Errorf("stderr = %q, want REDIS_URL named and no password", errOut)
	}
}
