package cliflag_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/internal/cliflag"
)

type flags struct {
	name  *string
	sort  *int
	wait  *bool
	parID *int64
}

func newSet() (*flags, func([]string) ([]string, error)) {
	fs := cliflag.NewFlagSet("test")
	f := &flags{
		name:  fs.String("name", "", "department `name`"),
		sort:  fs.Int("sort", 0, "sort index"),
		wait:  fs.Bool("wait", false, "follow until done"),
		parID: fs.Int64("parent-id", 0, "parent `ID`"),
	}
	return f, func(args []string) ([]string, error) { return cliflag.Parse(fs, args) }
}

func TestParseAcceptsBothDashStylesAndInterspersedArguments(t *testing.T) {
	t.Parallel()
	f, parse := newSet()
	pos, err := parse([]string{"org.yaml", "--name", "Sales EU", "-sort=5", "--wait", "more", "-parent-id", "12", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if *f.name != "Sales EU" || *f.sort != 5 || !*f.wait || *f.parID != 12 {
		t.Errorf("flags = %q %d %t %d", *f.name, *f.sort, *f.wait, *f.parID)
	}
	if want := []string{"org.yaml", "more", "--not-a-flag"}; strings.Join(pos, "|") != strings.Join(want, "|") {
		t.Errorf("positional = %q, want %q", pos, want)
	}
	// A value that looks like a flag belongs to the flag before it.
	if _, err := parse([]string{"--sort", "-5"}); err != nil || *f.sort != -5 {
		t.Errorf("--sort -5: %v, sort %d", err, *f.sort)
	}
	if _, err := parse([]string{"--wait=false"}); err != nil || *f.wait {
		t.Errorf("--wait=false: %v, wait %t", err, *f.wait)
	}
}

func TestParseHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--h", "-help", "--help"} {
		_, parse := newSet()
		if _, err := parse([]string{"x", arg, "--nope"}); !errors.Is(err, cliflag.ErrHelp) {
			t.Errorf("%s: err = %v, want ErrHelp", arg, err)
		}
	}
}

func TestParseErrorsSayWhatIsWrongWithTwoDashes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args       []string
		want       string
		suggestion string
	}{
		{[]string{"--nmae", "x"}, "unknown flag --nmae; did you mean --name?", "name"},
		{[]string{"-nmae", "x"}, "unknown flag --nmae; did you mean --name?", "name"},
		{[]string{"--parent", "1"}, "unknown flag --parent; did you mean --parent-id?", "parent-id"},
		{[]string{"--wiat"}, "unknown flag --wiat; did you mean --wait?", "wait"},
		{[]string{"--frobnicate"}, "unknown flag --frobnicate", ""},
		{[]string{"--sort", "x"}, `invalid value "x" for --sort: parse error`, ""},
		{[]string{"--name"}, "flag --name needs a value", ""},
		{[]string{"---name", "x"}, "bad flag syntax: ---name", ""},
		{[]string{"--=x"}, "bad flag syntax: --=x", ""},
	} {
		_, parse := newSet()
		_, err := parse(tt.args)
		var e *cliflag.Error
		if !errors.As(err, &e) {
			t.Errorf("%q: err = %v, want *cliflag.Error", tt.args, err)
			continue
		}
		if e.Error() != tt.want || e.Suggestion != tt.suggestion {
			t.Errorf("%q: %q (suggestion %q), want %q (%q)", tt.args, e.Error(), e.Suggestion, tt.want, tt.suggestion)
		}
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	commands := []string{"department", "workplace", "import", "status", "task"}
	for _, tt := range []struct{ word, want string }{
		{"statsu", "status"},
		{"stauts", "status"},
		{"departmnet", "department"},
		{"Import", "import"},
		{"tsak", "task"},
		{"work", "workplace"}, // an unambiguous abbreviation
		{"xyz", ""},
		{"", ""},
		{"departmentsxyz", ""},
	} {
		if got := cliflag.Suggest(tt.word, commands); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
	if got := cliflag.UnknownCommand("statsu", commands); got != `unknown command "statsu"; did you mean status?` {
		t.Errorf("UnknownCommand = %q", got)
	}
	if got := cliflag.UnknownCommand("zzz", commands); got != `unknown command "zzz"` {
		t.Errorf("UnknownCommand = %q", got)
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"name", "name", 0},
		{"nmae", "name", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3}, {"ёлка", "елка", 1},
	} {
		if got := cliflag.Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestPrintDefaultsUsesTwoDashes(t *testing.T) {
	t.Parallel()
	fs := cliflag.NewFlagSet("demo")
	fs.String("file", "examples/org.yaml", "org chart to `path` import")
	fs.Bool("stay", true, "keep running")
	fs.Int("workers", 0, "worker processes")
	var b bytes.Buffer
	cliflag.PrintDefaults(&b, fs)
	want := "  --file PATH\n      org chart to path import (default examples/org.yaml)\n" +
		"  --stay\n      keep running (default true)\n" +
		"  --workers INT\n      worker processes\n"
	if b.String() != want {
		t.Errorf("PrintDefaults:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	help := func(w io.Writer) { fmt.Fprint(w, "Usage: demo\n") }
	for _, tt := range []struct {
		args           []string
		code           int
		ok             bool
		stdout, stderr string
	}{
		{[]string{"--wait"}, 0, true, "", ""},
		{[]string{"--help"}, cliflag.ExitHelp, false, "Usage: demo\n", ""},
		{[]string{"--wiat"}, cliflag.ExitUsage, false, "", "demo: unknown flag --wiat; did you mean --wait?\nRun 'demo --help' for usage.\n"},
		{[]string{"a", "b"}, cliflag.ExitUsage, false, "", "demo: unexpected argument \"b\"\nRun 'demo --help' for usage.\n"},
	} {
		fs := cliflag.NewFlagSet("demo")
		fs.Bool("wait", false, "")
		var out, errOut bytes.Buffer
		_, code, ok := cliflag.Command("demo", fs, tt.args, 1, help, &out, &errOut)
		if code != tt.code || ok != tt.ok || out.String() != tt.stdout || errOut.String() != tt.stderr {
			t.Errorf("%q: code %d ok %t stdout %q stderr %q", tt.args, code, ok, out.String(), errOut.String())
		}
	}
}
