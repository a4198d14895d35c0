package authz_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/authztesting"
)

func idConsent() authz.ConsentReceipt {
	return authz.ConsentReceipt{
		Subject:      "pairwise-subject-1",
		Email:        "ada@example.com",
		Provider:     idAudience,
		TermsURL:     "https://neon.example/terms",
		TermsVersion: "2026-04-01",
		AcceptedAt:   idT0.Add(-time.Minute),
		Agent:        "claude-code",
		Human:        true,
	}
}

func TestConsentRoundTrip(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	ctx := context.Background()
	tok, err := e.att.SignConsent(ctx, idConsent())
	if err != nil {
		t.Fatal(err)
	}
	if typ := tokenHeader(t, tok)["typ"]; typ != authz.TypeConsent {
		t.Fatalf("typ %v", typ)
	}
	want := idConsent()
	want.Issuer = idIssuer
	want.IssuedAt = idT0
	for range 2 { // receipts are evidence: verifying twice is fine
		got, err := e.ver.VerifyConsent(ctx, tok)
		if err != nil {
			t.Fatalf("VerifyConsent: %v", err)
		}
		if diff := cmp.Diff(&want, got, cmpopts.IgnoreFields(authz.ConsentReceipt{}, "ID")); diff != "" {
			t.Fatalf("receipt (-want +got):\n%s", diff)
		}
	}
	// Type confusion both ways.
	_, err = e.ver.Verify(ctx, tok)
	authztesting.WantErr(t, err, authz.ErrWrongTokenType)
	_, err = e.ver.VerifyConsent(ctx, e.attest(t, idRequest()))
	authztesting.WantErr(t, err, authz.ErrWrongTokenType)
	_, err = e.verifier(t, "cloudflare").VerifyConsent(ctx, tok)
	authztesting.WantErr(t, err, authz.ErrWrongAudience)
}

func TestSignConsentRequiresHuman(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	for name, mod := range map[string]func(*authz.ConsentReceipt){
		"agent alone":          func(r *authz.ConsentReceipt) { r.Human = false },
		"no acceptance time":   func(r *authz.ConsentReceipt) { r.AcceptedAt = time.Time{} },
		"accepted in a future": func(r *authz.ConsentReceipt) { r.AcceptedAt = idT0.Add(time.Hour) },
	} {
		t.Run(name, func(t *testing.T) {
			r := idConsent()
			mod(&r)
			_, err := e.att.SignConsent(context.Background(), r)
			authztesting.WantErr(t, err, authz.ErrHumanAcceptanceRequired)
		})
	}
	for name, mod := range map[string]func(*authz.ConsentReceipt){
		"http terms":     func(r *authz.ConsentReceipt) { r.TermsURL = "http://neon.example/terms" },
		"relative terms": func(r *authz.ConsentReceipt) { r.TermsURL = "/terms" },
		"no version":     func(r *authz.ConsentReceipt) { r.TermsVersion = "" },
		"no provider":    func(r *authz.ConsentReceipt) { r.Provider = "" },
		"no subject":     func(r *authz.ConsentReceipt) { r.Subject = "" },
		"other issuer":   func(r *authz.ConsentReceipt) { r.Issuer = "https://evil.example" },
	} {
		t.Run(name, func(t *testing.T) {
			r := idConsent()
			mod(&r)
			_, err := e.att.SignConsent(context.Background(), r)
			authztesting.WantErr(t, err, authz.ErrInvalidRequest)
		})
	}
}

func TestVerifyConsentRejectsAgentOnlyReceipt(t *testing.T) {
	// A receipt that a faulty or hostile signer issued without the human
	// flag is refused by the verifier too.
	e := newIDEnv(t, jose.EdDSA)
	claims := map[string]any{
		"iss": idIssuer, "sub": "s1", "aud": idAudience, "terms_url": "https://neon.example/terms",
		"terms_version": "1", "accepted_at": idT0.Unix(), "jti": "c1", "iat": idT0.Unix(), "human": false,
	}
	tok := craft(t, e.key.Key.(ed25519.PrivateKey), with(goodHeader(), "typ", authz.TypeConsent), claims)
	_, err := e.ver.VerifyConsent(context.Background(), tok)
	authztesting.WantErr(t, err, authz.ErrHumanAcceptanceRequired)
	tok = craft(t, e.key.Key.(ed25519.PrivateKey), with(goodHeader(), "typ", authz.TypeConsent), with(claims, "human", nil))
	_, err = e.ver.VerifyConsent(context.Background(), tok)
	authztesting.WantErr(t, err, authz.ErrHumanAcceptanceRequired)
}

func TestConsentEmbeddedInAttestation(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	ctx := context.Background()
	receipt, err := e.att.SignConsent(ctx, idConsent())
	if err != nil {
		t.Fatal(err)
	}
	req := idRequest()
	req.Consent = receipt
	a, err := e.ver.Verify(ctx, e.attest(t, req))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if a.Consent != receipt || a.ConsentReceipt == nil || a.ConsentReceipt.TermsVersion != "2026-04-01" || !a.ConsentReceipt.Human {
		t.Fatalf("consent not surfaced: %+v", a.ConsentReceipt)
	}
	// A receipt for another subject cannot ride along.
	other := idConsent()
	other.Subject = "someone-else"
	receipt2, _ := e.att.SignConsent(ctx, other)
	req.Consent = receipt2
	_, err = e.ver.Verify(ctx, e.attest(t, req))
	authztesting.WantErr(t, err, authz.ErrMalformedToken)
	// Garbage in the consent claim fails verification of the attestation.
	req.Consent = "x.y.z"
	_, err = e.ver.Verify(ctx, e.attest(t, req))
	if err == nil || !strings.Contains(err.Error(), "consent") {
		t.Fatalf("garbage consent: %v", err)
	}
}
