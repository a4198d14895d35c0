package payment

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzVerifyToken feeds arbitrary strings to the token parser and
// verifier: nothing may panic, and anything accepted must be a well-formed
// token for this issuer and audience.
func FuzzVerifyToken(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("testdata", "token.json"))
	if err != nil {
		f.Fatal(err)
	}
	var v tokenVector
	_ = json.Unmarshal(raw, &v)
	f.Add(v.JWS)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(v.JWS[:len(v.JWS)-3] + "AAA")
	iss, err := NewIssuer(testIss, testKey(), &faultHolds{}, &IssuerOptions{Rail: NewMemoryRail(nil)})
	if err != nil {
		f.Fatal(err)
	}
	verifier, _ := NewTokenVerifier(testIss, "cloudflare", iss.JWKS(), &TokenVerifierOptions{Now: func() time.Time { return goldenClaims().IssuedAt }})
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := verifier.Verify(context.Background(), tok)
		if err == nil && (c.Audience != "cloudflare" || c.Issuer != testIss || c.HoldID == "") {
			t.Fatalf("accepted bad claims %+v", c)
		}
		if _, err := ParseTokenClaims(tok); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
		}
	})
}
