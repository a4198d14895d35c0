package payment_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
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
	iss, err := issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), &paytest.FaultHolds{}, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil)})
	if err != nil {
		f.Fatal(err)
	}
	verifier, _ := payment.NewTokenVerifier(paytest.IssuerURL, "cloudflare", iss.JWKS(), &payment.TokenVerifierOptions{Now: func() time.Time { return goldenClaims().IssuedAt }})
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := verifier.Verify(context.Background(), tok)
		if err == nil && (c.Audience != "cloudflare" || c.Issuer != paytest.IssuerURL || c.HoldID == "") {
			t.Fatalf("accepted bad claims %+v", c)
		}
		if _, err := payment.ParseTokenClaims(tok); err != nil {
			if _, ok := err.(*payment.Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
		}
	})
}
