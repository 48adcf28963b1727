package keys

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
)

func TestLayout(t *testing.T) {
	t.Parallel()
	for _, s := range []Space{{}, New(""), New(DefaultPrefix)} {
		if got := s.Prefix(); got != "b24q" {
			t.Errorf("Prefix() = %q, want b24q", got)
		}
	}
	s := New("pfx")
	tests := []struct{ got, want string }{
		{s.Prefix(), "pfx"},
		{Tag("acme"), "{acme}"},
		{s.Bucket("acme"), "pfx:{acme}:bucket"},
		{s.Block("acme", "department.add"), "pfx:{acme}:block:department.add"},
		{s.Report("acme", "department.add"), "pfx:{acme}:op:department.add"},
		{s.Throttled("acme"), "pfx:{acme}:throttled"},
		{s.ThrottledPattern(), "pfx:{*}:throttled"},
		{s.Object("acme", "d", "1\x00sales"), "pfx:{acme}:obj:d:" + fmt.Sprintf("%x", sha256.Sum256([]byte("1\x00sales")))[:32]},
		{s.Claim("acme", "t1"), "pfx:{acme}:claim:t1"},
		{s.OAuth("acme"), "pfx:{acme}:oauth"},
		{s.Unavailable("acme"), "pfx:{acme}:unavailable"},
		{s.PortalPattern("acme"), "pfx:{acme}:*"},
		{s.Requests("acme"), "pfx:{acme}:reqs"},
		{s.Usage("acme"), "pfx:{acme}:usage"},
		{s.Imports(), "pfx:imports"},
		{s.Credential("acme"), "pfx:{acme}:credential"},
		{s.Portals(), "pfx:{portals}"},
		{s.PortalsVersion(), "pfx:{portals}:version"},
		{s.PortalsChanges(), "pfx:{portals}:changes"},
		{s.Active(), "pfx:active"},
		{s.Workers(), "pfx:workers"},
		{Space{}.Bucket("acme"), "b24q:{acme}:bucket"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}

	imp := s.Import("i1")
	want := []string{
		"pfx:imp:{i1}:meta", "pfx:imp:{i1}:spec", "pfx:imp:{i1}:kids", "pfx:imp:{i1}:parent",
		"pfx:imp:{i1}:state", "pfx:imp:{i1}:ids", "pfx:imp:{i1}:failed", "pfx:imp:{i1}:lock",
		"pfx:imp:{i1}:marks",
	}
	if got := imp.List(); !slices.Equal(got, want) {
		t.Errorf("Import(i1).List() = %q, want %q", got, want)
	}
	if imp.Meta != want[0] || imp.Lock != want[7] {
		t.Errorf("Import(i1) = %+v", imp)
	}
}

func TestThrottledPatternEscapesGlob(t *testing.T) {
	t.Parallel()
	s := New(`a*b?[c]\d`)
	if got, want := s.ThrottledPattern(), `a\*b\?\[c\]\\d:{*}:throttled`; got != want {
		t.Errorf("ThrottledPattern() = %q, want %q", got, want)
	}
}

func TestPortalOfThrottled(t *testing.T) {
	t.Parallel()
	s := New(`a*b?[c]\d`)
	for _, portal := range []string{"p1", "x.bitrix24.ru", "with:colon"} {
		got, ok := s.PortalOfThrottled(s.Throttled(portal))
		if !ok || got != portal {
			t.Errorf("PortalOfThrottled(Throttled(%q)) = %q, %v", portal, got, ok)
		}
	}
	for _, channel := range []string{
		`a*b?[c]\d:{p1}:bucket`,
		`other:{p1}:throttled`,
		`a*b?[c]\d:{}:throttled`,
		New("other").Throttled("p1"),
		Space{}.Throttled("p1"),
	} {
		if got, ok := s.PortalOfThrottled(channel); ok {
			t.Errorf("PortalOfThrottled(%q) = %q, true; want not ours", channel, got)
		}
	}
}
