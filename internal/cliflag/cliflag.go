// Package cliflag is the one flag style of the b24queue commands (enqueue,
// worker, demo): GNU-style "--name value" and "--name=value" (a single dash
// is still accepted), flags and positional arguments in any order ("--"
// ends the flags), help on stdout with exit status 0, usage errors on stderr
// with exit status 2, and a suggestion for a misspelled flag or command
// ("unknown flag --nmae; did you mean --name?").
//
// It works on a standard *flag.FlagSet, so flags are declared as usual;
// only parsing, error wording and the help listing are done here:
//
//	fs := cliflag.NewFlagSet("demo")
//	file := fs.String("file", "examples/org.yaml", "org chart to import")
//	pos, err := cliflag.Parse(fs, args)
//	switch {
//	case errors.Is(err, cliflag.ErrHelp): // print help on stdout, exit 0
//	case err != nil:                      // print err on stderr, exit 2
//	}
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit statuses of the style: help is a success, a usage error is 2.
const (
	ExitHelp  = 0
	ExitUsage = 2
)

// ErrHelp is returned by Parse for -h, -help, --h and --help when the flag
// set defines no flag of that name. It is flag.ErrHelp, so callers that
// already test for that keep working.
var ErrHelp = flag.ErrHelp

// Error is a usage error of the command line: an unknown flag (with a
// suggestion when one is close), a missing or invalid value.
type Error struct {
	// Flag is the flag's name as given, without dashes ("" when the error
	// is not about one flag).
	Flag string
	// Suggestion is the closest defined flag name, "" if none is close.
	Suggestion string
	msg        string
}

func (e *Error) Error() string { return e.msg }

// NewFlagSet returns a silent flag set for Parse: it prints nothing itself
// (the caller prints help and errors) and never exits.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse sets the flags of fs from args and returns the positional
// arguments in order. Flags may come before, between or after positional
// arguments; "--" ends the flags (everything after it is positional) and a
// lone "-" is positional. A flag is "--name", "-name", "--name=value" or
// "--name value"; a boolean flag takes no separate value ("--wait",
// "--wait=false"). Errors are ErrHelp or an *Error whose message names the
// flag with two dashes.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		if name == "" || strings.HasPrefix(name, "-") {
			return pos, &Error{Flag: name, msg: fmt.Sprintf("bad flag syntax: %s", a)}
		}
		f := fs.Lookup(name)
		switch {
		case f == nil && (name == "h" || name == "help"):
			return pos, ErrHelp
		case f == nil:
			return pos, unknownFlag(fs, name)
		}
		if !hasValue {
			if isBool(f) {
				value = "true"
			} else if i+1 < len(args) {
				i++
				value = args[i]
			} else {
				return pos, &Error{Flag: name, msg: fmt.Sprintf("flag --%s needs a value", name)}
			}
		}
		if err := fs.Set(name, value); err != nil {
			return pos, &Error{Flag: name, msg: fmt.Sprintf("invalid value %q for --%s: %v", value, name, valueErr(err))}
		}
	}
	return pos, nil
}

// Command parses args with fs for the command called name in messages
// ("demo", "enqueue import") and does what the style asks: on --help it
// writes help to stdout and returns ExitHelp; on a usage error (a bad flag,
// or more than maxArgs positional arguments when maxArgs >= 0) it writes
// "NAME: problem" and "Run 'NAME --help' for usage." to stderr and returns
// ExitUsage. ok is true when the command goes on with pos.
func Command(name string, fs *flag.FlagSet, args []string, maxArgs int, help func(io.Writer), stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	pos, err := Parse(fs, args)
	switch {
	case errors.Is(err, ErrHelp):
		help(stdout)
		return nil, ExitHelp, false
	case err == nil && maxArgs >= 0 && len(pos) > maxArgs:
		err = fmt.Errorf("unexpected argument %q", pos[maxArgs])
	}
	if err != nil {
		UsageError(stderr, name, err.Error())
		return nil, ExitUsage, false
	}
	return pos, 0, true
}

// UsageError writes a usage problem of the command name to w in the
// style's words and returns ExitUsage.
func UsageError(w io.Writer, name, problem string) int {
	fmt.Fprintf(w, "%s: %s\nRun '%s --help' for usage.\n", name, problem, name)
	return ExitUsage
}

// valueErr strips the strconv wrapping of a standard flag's error
// ("strconv.ParseInt: parsing \"x\": invalid syntax" → "invalid syntax").
func valueErr(err error) error {
	var ne interface{ Unwrap() error }
	if errors.As(err, &ne) && ne.Unwrap() != nil {
		return ne.Unwrap()
	}
	return err
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func unknownFlag(fs *flag.FlagSet, name string) *Error {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	e := &Error{Flag: name, Suggestion: Suggest(name, names)}
	e.msg = "unknown flag --" + name
	if e.Suggestion != "" {
		e.msg += "; did you mean --" + e.Suggestion + "?"
	}
	return e
}

// UnknownCommand returns the message for a command (or subcommand) word
// that is not one of commands: `unknown command "statsu"; did you mean
// status?`, without the suggestion when none is close.
func UnknownCommand(word string, commands []string) string {
	msg := fmt.Sprintf("unknown command %q", word)
	if s := Suggest(word, commands); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return msg
}

// Suggest returns the candidate closest to word when it is close enough to
// be a likely misspelling, else "". Close means an edit distance (insert,
// delete, substitute, or swap two adjacent letters; case-insensitive) of at
// most 1 for words of up to 4 letters, 2 up to 8 and 3 beyond, or word
// being a prefix of exactly one candidate (an abbreviation). Ties go to the
// candidate first in sorted order.
func Suggest(word string, candidates []string) string {
	w := strings.ToLower(word)
	if w == "" {
		return ""
	}
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	best, bestD := "", maxDistance(w)+1
	var prefixed []string
	for _, c := range sorted {
		lc := strings.ToLower(c)
		if lc == w {
			return c
		}
		if strings.HasPrefix(lc, w) {
			prefixed = append(prefixed, c)
		}
		if d := Distance(w, lc); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

func maxDistance(w string) int {
	switch n := len([]rune(w)); {
	case n <= 4:
		return 1
	case n <= 8:
		return 2
	}
	return 3
}

// Distance is the optimal string alignment distance of a and b, in runes:
// the fewest insertions, deletions, substitutions and transpositions of
// two adjacent runes that turn a into b ("nmae" → "name" is 1).
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows of the dynamic programme: i-2, i-1 and i.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// PrintDefaults writes the flags of fs in the GNU style, one per entry,
// sorted by name:
//
//	--file PATH
//	    org chart to import (default "examples/org.yaml")
//
// A back-quoted word in the usage names the value (as with
// flag.UnquoteUsage); boolean flags show no value.
func PrintDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if name != "" && !isBool(f) {
			head += " " + strings.ToUpper(name)
		}
		if !isZeroDefault(f) {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s\n", head, usage)
	})
}

// isZeroDefault reports whether f's default is its type's zero value ("",
// 0, false, 0s), which the help does not print.
func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return true
	}
	return false
}
