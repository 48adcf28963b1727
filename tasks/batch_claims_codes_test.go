package tasks

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/b24queue/b24queue/internal/testutil"
)

func TestClaimCodesPrelude(t *testing.T) {
	t.Parallel()
	if want := "local CLAIMED = 1\nlocal TAKEN = 0\n"; claimCodes != want {
		t.Errorf("claimCodes = %q, want %q", claimCodes, want)
	}
	// The Lua names evaluate to the Go constants.
	rdb := testutil.Redis(t, testRedisDB)
	got, err := rdb.Eval(context.Background(), claimCodes+"return {CLAIMED, TAKEN}", nil).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{claimClaimed, claimTaken}; !slices.Equal(got, want) {
		t.Errorf("Lua codes = %v, want %v", got, want)
	}
}

// TestClaimScriptAnswersNamedCodes fails if claimScript answers with a
// literal instead of one of the names shared with Go.
func TestClaimScriptAnswersNamedCodes(t *testing.T) {
	t.Parallel()
	answers := regexp.MustCompile(`out\[i\]\s*=\s*(\S+)`).FindAllStringSubmatch(claimLua, -1)
	var names []string
	for _, m := range answers {
		names = append(names, m[1])
	}
	slices.Sort(names)
	if want := []string{"CLAIMED", "TAKEN"}; !slices.Equal(names, want) {
		t.Errorf("claimScript answers %q, want %q", names, want)
	}
}
