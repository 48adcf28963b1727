package tasks

import (
	"strings"
	"testing"
)

// The producer rules: what the enqueue command, the HTTP API and the
// worker's configuration accept, decided here once.

func TestValidPortalName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"default": true, "acme": true, "a": true, "0-x_y": true, strings.Repeat("a", 63): true,
		"": false, "Acme": false, "-acme": false, "_a": false, "a.b": false, strings.Repeat("a", 64): false,
		"{a}": false, "a:b": false, "a b": false,
	} {
		if got := ValidPortalName(name); got != want {
			t.Errorf("ValidPortalName(%q) = %t, want %t", name, got, want)
		}
		if err := CheckPortalName(name); (err == nil) != want {
			t.Errorf("CheckPortalName(%q) = %v, want ok=%t", name, err, want)
		}
	}
	if !ValidPortalName(DefaultPortal) {
		t.Errorf("DefaultPortal %q is not a valid portal name", DefaultPortal)
	}
	const want = `portal "Not Valid": must match ^[a-z0-9][a-z0-9_-]{0,62}$`
	if err := CheckPortalName("Not Valid"); err == nil || err.Error() != want {
		t.Errorf("CheckPortalName = %v, want %q", err, want)
	}
}
