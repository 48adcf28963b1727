package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/api"
	"github.com/b24queue/b24queue/internal/cli"
)

// The HTTP API and `enqueue import` accept and reject the same files with
// the same problems: both parse with package importer and submit through
// tasks.Producer, whose rules have their own tests (importer's testdata
// table, tasks/producer_test.go). What is left to check here is the edges:
// that each renders the same verdict, on a few bad files (one per format
// and a whole-file problem) and on every file of importer/testdata/good,
// which both accept under the same import ID.

var contentTypes = map[importer.Format]string{
	importer.JSON: "application/json",
	importer.YAML: "application/yaml",
	importer.CSV:  "text/csv",
}

// runCLI runs the enqueue command against the fixture's Redis, prefix and
// portal.
func (f *fixture) runCLI(args ...string) (code int, stdout, stderr string) {
	f.t.Helper()
	env := map[string]string{"REDIS_URL": testRedisURL, "B24_PORTAL": f.portal}
	// Other packages' tests run workers for their own portals on this
	// Redis DB: the API under test knows no served portals either.
	app := &cli.App{Prefix: f.prefix, AnyPortal: true}
	var out, errOut bytes.Buffer
	code = app.Run(context.Background(), args, func(k string) string { return env[k] }, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

// cliProblems turns the command's "FILE:LINE: message" / "FILE: message"
// lines into the API's "line LINE: message" / "message" form.
func cliProblems(path, stderr string) []string {
	var out []string
	lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:(\d+): (.*)$`)
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if m := lineRE.FindStringSubmatch(l); m != nil {
			out = append(out, "line "+m[1]+": "+m[2])
		} else if rest, ok := strings.CutPrefix(l, path+": "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// testdata returns the named files of importer/testdata/dir, or all of
// them when none is named.
func testdata(t *testing.T, dir string, names ...string) []string {
	t.Helper()
	base := filepath.Join("..", "..", "importer", "testdata", dir)
	if len(names) == 0 {
		names = []string{"*"}
	}
	var files []string
	for _, n := range names {
		m, err := filepath.Glob(filepath.Join(base, n))
		if err != nil || len(m) == 0 {
			t.Fatalf("no file %s in importer/testdata/%s: %v", n, dir, err)
		}
		files = append(files, m...)
	}
	return files
}

func TestAPIAndCLIRejectTheSameFilesWithTheSameProblems(t *testing.T) {
	t.Parallel()
	for _, path := range testdata(t, "bad", "syntax.json", "cycle.yaml", "short_row.csv", "empty.yaml") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			format, err := importer.FormatOf(path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			code, out, errOut := f.runCLI("import", path)
			if code != cli.ExitUsage {
				t.Fatalf("CLI exit code %d, want 2; stdout %q stderr %q", code, out, errOut)
			}
			fromCLI := cliProblems(path, errOut)
			if len(fromCLI) == 0 {
				t.Fatalf("CLI printed no FILE:LINE problem:\n%s", errOut)
			}

			w := f.do("POST", "/v1/imports?portal="+f.portal, contentTypes[format], body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("API status %d, want 400; body %s", w.Code, w.Body)
			}
			var e api.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if strings.Join(e.Problems, "\n") != strings.Join(fromCLI, "\n") {
				t.Errorf("problems differ\nCLI:\n  %s\nAPI:\n  %s", strings.Join(fromCLI, "\n  "), strings.Join(e.Problems, "\n  "))
			}
			if n := f.queued(); n != 0 {
				t.Errorf("%d tasks enqueued for an invalid file", n)
			}
		})
	}
}

func TestAPIAndCLIAcceptTheSameFilesUnderTheSameID(t *testing.T) {
	t.Parallel()
	for _, path := range testdata(t, "good") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			format, err := importer.FormatOf(path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			code, out, errOut := f.runCLI("import", path, "--dry-run")
			if code != cli.ExitOK {
				t.Fatalf("CLI dry run: %d %s", code, errOut)
			}
			w := f.do("POST", "/v1/imports?portal="+f.portal, contentTypes[format], body)
			if w.Code != http.StatusAccepted {
				t.Fatalf("API status %d, want 202; body %s", w.Code, w.Body)
			}
			var ok api.ImportAccepted
			if err := json.Unmarshal(w.Body.Bytes(), &ok); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out, "import "+ok.ID+" ") {
				t.Errorf("CLI dry run names another import than the API's %s:\n%s", ok.ID, out)
			}
			// The CLI, run for real, finds the import the API submitted.
			code, out, errOut = f.runCLI("import", path)
			if code != cli.ExitOK || !strings.Contains(out, "import "+ok.ID+":") || !strings.Contains(out, "submitted before") {
				t.Errorf("CLI after API: %d %q %q", code, out, errOut)
			}
		})
	}
}
