package payment_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/go-jose/go-jose/v4"
)

// Every verification point checks the time claims of the token it is
// shown, not only its stored record (issue 10): exp, nbf and iat, at the
// redemption endpoint, the release endpoint, the Paywall's verifier, and
// the signed receipt.

// timeCase re-signs a minted token's claims with one time claim changed.
// The record stays as minted (current), so only the token's own claims
// can make the verifier refuse.
type timeCase struct {
	name  string
	claim func(c *payment.TokenClaims, now time.Time)
}

var tokenTimeCases = []timeCase{
	{"exp passed", func(c *payment.TokenClaims, now time.Time) {
		c.IssuedAt, c.Expiry = now.Add(-2*time.Hour), now.Add(-time.Hour)
	}},
	{"nbf ahead", func(c *payment.TokenClaims, now time.Time) { c.NotBefore = now.Add(2 * time.Minute) }},
	{"iat ahead", func(c *payment.TokenClaims, now time.Time) { c.IssuedAt = now.Add(2 * time.Minute) }},
}

// testSigner is a signer of paytest.Key for typ, the one an Issuer made
// with paytest.Key signs typ with.
func testSigner(t paytest.TB, typ string) jose.Signer {
	t.Helper()
	s, err := paywire.SignerFor(paytest.Key(), typ)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// resign signs claims with the world's issuer key.
func resign(w *paytest.World, c payment.TokenClaims) string {
	w.T.Helper()
	tok, err := payment.SignJWT(testSigner(w.T, payment.TokenType), payment.ClaimsWire(&c))
	if err != nil {
		w.T.Fatal(err)
	}
	return tok
}

func TestTokenTimeClaimsAtEveryEndpoint(t *testing.T) {
	type want struct {
		status int
		code   string
	}
	for _, tc := range []struct {
		timeCase
		redeem, release want
		verify          *payment.Error // TokenVerifier (the Paywall's Check); nil: accepted
	}{
		{tokenTimeCases[0], want{401, "token_expired"}, want{200, ""}, payment.ErrTokenExpired}, // an expired token may be released (§5.2.3)
		{tokenTimeCases[1], want{401, "token_invalid"}, want{401, "token_invalid"}, payment.ErrTokenInvalid},
		{tokenTimeCases[2], want{401, "token_invalid"}, want{401, "token_invalid"}, payment.ErrTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := paytest.NewWorld(t)
			srv := server(w, t)
			m := w.Mint(500)
			c := m.Claims
			tc.claim(&c, w.Clock.Now())
			tok := resign(w, c)

			t.Run("redemption POST", func(t *testing.T) {
				body, _ := json.Marshal(payment.RedemptionRequest{Token: tok, Amount: c.MaxAmount})
				r := post(t, srv.URL+"/payment/redemptions", "cf-key", "redeem-1", body)
				if r.status != tc.redeem.status || r.code != tc.redeem.code {
					t.Fatalf("got %d %q, want %d %q", r.status, r.code, tc.redeem.status, tc.redeem.code)
				}
				if rec := w.Record(c.HoldID); rec.State != payment.StateIssued {
					t.Fatalf("record moved to %s", rec.State)
				}
			})
			t.Run("paywall verification", func(t *testing.T) {
				v, err := payment.NewTokenVerifier(paytest.IssuerURL, "cloudflare", w.Issuer.JWKS(), &payment.TokenVerifierOptions{Now: w.Clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				_, err = v.Verify(t.Context(), tok)
				if !errors.Is(err, tc.verify) {
					t.Fatalf("Verify: %v, want %v", err, tc.verify)
				}
			})
			t.Run("release", func(t *testing.T) {
				body, _ := json.Marshal(payment.ReleaseRequest{Token: tok})
				r := post(t, srv.URL+"/payment/redemptions/"+c.HoldID+"/release", "cf-key", "release-1", body)
				if r.status != tc.release.status || r.code != tc.release.code {
					t.Fatalf("got %d %q, want %d %q", r.status, r.code, tc.release.status, tc.release.code)
				}
			})
		})
	}
	// The untouched token passes the same checks: the cases above fail
	// for their claim alone.
	w := paytest.NewWorld(t)
	m := w.Mint(500)
	if tok := resign(w, m.Claims); tok != m.Token {
		t.Fatal("re-signing the minted claims does not give the minted token")
	}
	v, _ := payment.NewTokenVerifier(paytest.IssuerURL, "cloudflare", w.Issuer.JWKS(), &payment.TokenVerifierOptions{Now: w.Clock.Now})
	if _, err := v.Verify(t.Context(), m.Token); err != nil {
		t.Fatalf("valid token: %v", err)
	}
}

// TestPaywallRefusesTokenNotYetValid: through the Paywall, a token whose
// nbf is ahead is verification-failed and nothing is served.
func TestPaywallRefusesTokenNotYetValid(t *testing.T) {
	w := newE2E(t, e2eConfig{})
	c := w.challengeFor("/v1/check")
	m, err := w.iss.Mint(t.Context(), issuer.MintRequest{Project: e2eProject, Provider: e2eProvider, Service: e2eService,
		MaxAmount: budget.USD(e2ePrice), ChallengeID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	claims := m.Claims
	claims.NotBefore = time.Now().Add(2 * time.Minute)
	tok, err := payment.SignJWT(testSigner(t, payment.TokenType), payment.ClaimsWire(&claims))
	if err != nil {
		t.Fatal(err)
	}
	if status, code := w.present("/v1/check", credentialFor(t, &c, tok, "")); status != 402 || code != payment.ErrVerificationFailed.Code {
		t.Fatalf("got %d %q, want 402 %q", status, code, payment.ErrVerificationFailed.Code)
	}
	if w.served.Load() != 0 {
		t.Fatal("handler ran for a token not yet valid")
	}
}

func TestReceiptTimeClaims(t *testing.T) {
	w := paytest.NewWorld(t)
	now := w.Clock.Now().UTC().Truncate(time.Second)
	base := func() map[string]any {
		return map[string]any{
			"iss": paytest.IssuerURL, "aud": "cloudflare", "sub": "proj-1", "jti": "hold_1", "iat": now.Unix(),
			"service": "cloudflare/registrar:domain", "amount": map[string]any{"amount": 250, "currency": "USD"},
			"redeemed_at": now.Format(time.RFC3339), "protocol_version": payment.ProtocolVersion,
		}
	}
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
		ok     bool
	}{
		{"as signed by the issuer", func(map[string]any) {}, true},
		{"exp", func(m map[string]any) { m["exp"] = now.Add(time.Hour).Unix() }, false},
		{"exp passed", func(m map[string]any) { m["exp"] = now.Add(-time.Hour).Unix() }, false},
		{"nbf", func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() }, false},
		{"iat not redeemed_at", func(m map[string]any) { m["iat"] = now.Add(time.Hour).Unix() }, false},
		{"iat missing", func(m map[string]any) { delete(m, "iat") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := base()
			tc.change(claims)
			signed, err := payment.SignJWT(testSigner(t, payment.ReceiptType), claims)
			if err != nil {
				t.Fatal(err)
			}
			_, err = payment.VerifyReceipt(signed, w.Issuer.JWKS(), paytest.IssuerURL)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, payment.ErrTokenInvalid)) {
				t.Fatalf("VerifyReceipt: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
