package session

import (
	"bytes"
	"testing"
)

// Subkeys are stable for one signing key and purpose, and differ across purposes and keys.
func TestSubkey(t *testing.T) {
	newTokens := func(fill byte) *Tokens {
		tokens, err := NewTokens(bytes.Repeat([]byte{fill}, 32), nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return tokens
	}
	a, b := newTokens(1), newTokens(2)
	k := a.Subkey("ssh")
	switch {
	case len(k) != 32:
		t.Errorf("subkey has %d bytes, want 32", len(k))
	case !bytes.Equal(k, newTokens(1).Subkey("ssh")):
		t.Error("the same key and purpose gave two subkeys")
	case bytes.Equal(k, a.Subkey("other")):
		t.Error("two purposes share a subkey")
	case bytes.Equal(k, b.Subkey("ssh")):
		t.Error("two signing keys give the same subkey")
	}
}
