package provision

import (
	"testing"

	"pgregory.net/rapid"
)

// RFC 7636 Appendix B.
func TestPKCEAppendixB(t *testing.T) {
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	if got := pkceS256(verifier); got != challenge {
		t.Fatalf("S256 = %s, want %s", got, challenge)
	}
	if !verifyPKCE(verifier, challenge) {
		t.Fatal("appendix B pair rejected")
	}
}

func TestPKCEProperties(t *testing.T) {
	alphabet := rapid.StringMatching(`[A-Za-z0-9._~-]{43,128}`)
	rapid.Check(t, func(t *rapid.T) {
		v := alphabet.Draw(t, "verifier")
		if !verifyPKCE(v, pkceS256(v)) {
			t.Fatalf("verifier %q does not match its own challenge", v)
		}
		other := alphabet.Draw(t, "other")
		if other != v && verifyPKCE(other, pkceS256(v)) {
			t.Fatalf("%q matched the challenge of %q", other, v)
		}
		// The challenge itself is never accepted as the verifier (plain).
		if verifyPKCE(pkceS256(v), pkceS256(v)) {
			t.Fatal("plain method accepted")
		}
	})
	for _, bad := range []string{"", "short", string(make([]byte, 43)), "a b" + string(make([]byte, 41))} {
		if validPKCEString(bad) {
			t.Errorf("validPKCEString(%q) = true", bad)
		}
	}
}

func TestUserCodeProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := newUserCode()
		if len(c) != 9 || c[4] != '-' {
			t.Fatalf("user code %q", c)
		}
		sloppy := rapid.SampledFrom([]func(string) string{
			func(s string) string { return s },
			func(s string) string { return lower(s) },
			func(s string) string { return s[:4] + s[5:] },
			func(s string) string { return " " + lower(s[:4]) + " " + s[5:] },
		}).Draw(t, "entry")
		if got := normalizeUserCode(sloppy(c)); got != c {
			t.Fatalf("normalize(%q) = %q, want %q", sloppy(c), got, c)
		}
	})
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
