package limiter

import (
	"context"
	"regexp"
	"slices"
	"testing"
)

// grantCodeNames are grantScript's answer codes, by their Lua names.
var grantCodeNames = map[string]int{
	"GRANTED": grantGranted, "BLOCKED": grantBlocked, "DELAYED": grantDelayed, "INFLIGHT": grantInflight,
	"CLAIMED": grantClaimed, "SUPERSEDED": grantSuperseded, "UNAVAILABLE": grantUnavailable,
}

func TestGrantCodesPrelude(t *testing.T) {
	t.Parallel()
	want := "local GRANTED = 0\nlocal BLOCKED = 1\nlocal DELAYED = 2\nlocal INFLIGHT = 3\nlocal CLAIMED = 4\n" +
		"local SUPERSEDED = 5\nlocal UNAVAILABLE = 6\nlocal CLAIM_MODE_TAKE = 1\nlocal CLAIM_MODE_CHECK = 2\n"
	if grantCodes != want {
		t.Errorf("grantCodes = %q, want %q", grantCodes, want)
	}
	// The Lua names evaluate to the Go constants.
	rdb := newTestClient(t)
	got, err := rdb.Eval(context.Background(), grantCodes+"return {GRANTED, BLOCKED, DELAYED, INFLIGHT, CLAIMED, SUPERSEDED, UNAVAILABLE}", nil).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if w := []int64{grantGranted, grantBlocked, grantDelayed, grantInflight, grantClaimed, grantSuperseded, grantUnavailable}; !slices.Equal(got, w) {
		t.Errorf("Lua codes = %v, want %v", got, w)
	}
}

// TestGrantScriptReturnsNamedCodes fails if grantScript answers with a
// literal code instead of one of the names shared with Go.
func TestGrantScriptReturnsNamedCodes(t *testing.T) {
	t.Parallel()
	returns := regexp.MustCompile(`\breturn\s*\{\s*([^,}]*)`).FindAllStringSubmatch(grantLua, -1)
	seen := map[string]bool{}
	for _, m := range returns {
		if _, ok := grantCodeNames[m[1]]; !ok {
			t.Errorf("grantScript returns code %q, want one of the named codes", m[1])
		}
		seen[m[1]] = true
	}
	for name := range grantCodeNames {
		if !seen[name] {
			t.Errorf("grantScript never returns %s", name)
		}
	}
}
