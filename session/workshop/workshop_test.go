package workshop

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCheckName(t *testing.T) {
	for in, want := range map[string]string{"Ada": "Ada", "  Grace Hopper ": "Grace Hopper", "Zoë": "Zoë",
		strings.Repeat("é", MaxName): strings.Repeat("é", MaxName)} {
		if got, err := CheckName(in); err != nil || got != want {
			t.Errorf("CheckName(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "   ", strings.Repeat("x", MaxName+1), "a\x00b", "a\nb", "a\u202eb", "a\u200bb", "\xff"} {
		if got, err := CheckName(in); err == nil {
			t.Errorf("CheckName(%q) = %q", in, got)
		}
	}
}

// Whatever a person sends as a name, what is accepted is short, trimmed and printable.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"Ada", " x ", "a\x00", "\u202e", strings.Repeat("y", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, err := CheckName(in)
		if err != nil {
			return
		}
		if name == "" || utf8.RuneCountInString(name) > MaxName || strings.TrimSpace(name) != name || !utf8.ValidString(name) {
			t.Fatalf("accepted %q as %q", in, name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
	})
}

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		c := NewCode()
		if len(c) != CodeLength || strings.Trim(c, CodeAlphabet) != "" {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct codes of 2000", len(seen))
	}
	if got := normalizeCode("ab c-234"); got != "ABC234" {
		t.Errorf("normalizeCode: %q", got)
	}
}
