package store

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/testutil"
)

// The scripts see the Go constants under their Lua names, with the Go
// values: run the generated prelude in Redis and read every name back.
func TestLuaPreludeDeclaresTheGoConstants(t *testing.T) {
	t.Parallel()
	rdb := testutil.Redis(t, storeTestDB)
	want := map[string]any{
		"NO_IMPORT": int64(codeNoImport),
		"NO_ITEM":   int64(codeNoItem),
		"WAITING":   string(stateWaiting),
		"QUEUED":    string(stateQueued),
		"CREATED":   string(stateCreated),
		"FAILED":    string(stateFailed),
		"COUNTER":   counterPrefix,
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	src := luaPrelude + "return {" + strings.Join(names, ", ") + "}"
	got, err := redis.NewScript(src).Run(context.Background(), rdb, nil).Slice()
	if err != nil {
		t.Fatalf("prelude does not run: %v\n%s", err, luaPrelude)
	}
	if len(got) != len(names) {
		t.Fatalf("got %d values for %d names (a nil ends a Lua list: an undeclared name?): %v\n%s", len(got), len(names), got, luaPrelude)
	}
	for i, name := range names {
		if got[i] != want[name] {
			t.Errorf("Lua %s = %#v, Go has %#v", name, got[i], want[name])
		}
	}
}

// The scripts name the shared answers and states and never spell them, so
// a change of a Go constant cannot leave a script behind.
func TestScriptsNameTheSharedConstants(t *testing.T) {
	t.Parallel()
	literals := regexp.MustCompile(`'[wqcf]'|"[wqcf]"|'n_|"n_|return\s*\{?\s*-\s*\d`)
	for name, body := range map[string]string{
		"luaCommon":   luaCommon,
		"finish":      finishLua,
		"complete":    completeLua,
		"markQueued":  markQueuedLua,
		"fail":        failLua,
		"releasable":  releasableLua,
		"resetFailed": resetFailedLua,
	} {
		for _, m := range literals.FindAllString(body, -1) {
			t.Errorf("%s spells %q; use the name luaPrelude declares", name, m)
		}
	}
}

// A negative answer of a script is an error of the Store, by its name.
func TestScriptErrMapsTheNamedCodes(t *testing.T) {
	t.Parallel()
	for code, want := range map[int64]error{codeNoImport: ErrNotFound, codeNoItem: ErrUnknownItem} {
		if err := scriptErr("imp", "k", code); !errors.Is(err, want) {
			t.Errorf("scriptErr(%d) = %v, want %v", code, err, want)
		}
	}
}
