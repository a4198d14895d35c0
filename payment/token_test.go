package payment_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// forge builds a compact JWS with an arbitrary header over the golden
// claims, signed with the test key when sign is true.
func forge(t *testing.T, header map[string]any, sign bool) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c := goldenClaims()
	p, _ := json.Marshal(payment.ClaimsWire(&c))
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sig := []byte("not-a-signature")
	if sign {
		sig = ed25519.Sign(paytest.Key().Key.(ed25519.PrivateKey), []byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerifyJWSHeaderRules(t *testing.T) {
	jwk, _ := paytest.Key().PublicJWK()
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}}
	pub, _ := json.Marshal(jwk)
	good := map[string]any{"alg": "EdDSA", "kid": "orch-2026", "typ": payment.TokenType}
	if _, err := payment.VerifyJWS(forge(t, good, true), payment.TokenType, set); err != nil {
		t.Fatalf("hand-built token rejected: %v", err)
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := map[string]map[string]any{
		"alg none":        with("alg", "none"),
		"alg HS256":       with("alg", "HS256"),
		"alg RS256":       with("alg", "RS256"),
		"no typ":          with("typ", nil),
		"attestation typ": with("typ", "agentprov-attestation+jwt"),
		"plain JWT typ":   with("typ", "JWT"),
		"no kid":          with("kid", nil),
		"unknown kid":     with("kid", "other"),
		"embedded jwk":    with("jwk", json.RawMessage(pub)),
		"jku":             with("jku", "https://evil.example/jwks"),
		"x5u":             with("x5u", "https://evil.example/cert"),
		"x5c":             with("x5c", []string{"MIIB"}),
		"x5t":             with("x5t", "dGh1bWI"),
		"x5t#S256":        with("x5t#S256", "dGh1bWI"),
		"crit":            with("crit", []string{"exp"}),
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := payment.VerifyJWS(forge(t, hdr, true), payment.TokenType, set); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := payment.VerifyJWS(forge(t, good, false), payment.TokenType, set); err == nil {
		t.Fatal("bad signature accepted")
	}
	if _, err := payment.VerifyJWS(strings.Repeat("a", payment.MaxTokenSize+1), payment.TokenType, set); err == nil {
		t.Fatal("oversized token accepted")
	}
}

func TestES256AndKeyRotation(t *testing.T) {
	w := paytest.NewWorld(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oldJWK, _ := paytest.Key().PublicJWK()
	iss, err := issuer.NewIssuer(paytest.IssuerURL, payment.SigningKey{KeyID: "p256", Key: ec}, w.Ledger, &issuer.IssuerOptions{
		Rail: w.Rail, Store: w.Store, Now: w.Clock.Now, Logger: paytest.QuietLogger(), RetiredKeys: []jose.JSONWebKey{oldJWK},
	})
	if err != nil {
		t.Fatal(err)
	}
	old := w.Mint(100) // signed by the Ed25519 key before the rotation
	w.Issuer = iss
	fresh := w.Mint(100)
	if !strings.HasPrefix(fresh.Token, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256"`))) {
		t.Fatalf("not ES256: %.40s", fresh.Token)
	}
	if len(iss.JWKS().Keys) != 2 {
		t.Fatalf("JWKS has %d keys", len(iss.JWKS().Keys))
	}
	for _, tok := range []string{old.Token, fresh.Token} {
		rc, err := iss.Redeem(context.Background(), "cloudflare", tok, budget.USD(50))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := payment.VerifyReceipt(rc.Signed, iss.JWKS(), paytest.IssuerURL); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := issuer.NewIssuer(paytest.IssuerURL, payment.SigningKey{KeyID: "p384", Key: mustP384(t)}, w.Ledger, &issuer.IssuerOptions{Rail: w.Rail}); err == nil {
		t.Fatal("P-384 key accepted")
	}
	if _, err := issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), w.Ledger, nil); err == nil {
		t.Fatal("missing Rail accepted")
	}
}

func mustP384(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSigningKeyRedacted(t *testing.T) {
	k := paytest.Key()
	want := `SigningKey{kid="orch-2026" alg=EdDSA key=[redacted]}`
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if got := fmt.Sprintf(verb, k); got != want {
			t.Errorf("%s printed %s", verb, got)
		}
	}
	r, _ := paywall.NewRedeemer("https://orch.example/r", &paywall.RedeemerOptions{APIKey: "sekrit"})
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, r); strings.Contains(s, "sekrit") {
			t.Errorf("%s printed the API key: %s", verb, s)
		}
	}
}
