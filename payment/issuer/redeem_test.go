package issuer_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

func TestMintRedeemSettle(t *testing.T) {
	w := paytest.NewWorld(t)
	ctx := context.Background()
	m := w.Mint(2000)
	if m.Claims.Audience != "cloudflare" || m.Claims.Service != "cloudflare/registrar:domain" || m.Claims.MaxAmount != budget.USD(2000) {
		t.Fatalf("claims = %+v", m.Claims)
	}
	if h := w.Hold(m.Claims.HoldID); h.State != budget.HoldActive || h.Amount != budget.USD(2000) {
		t.Fatalf("hold after mint = %+v", h)
	}
	rc, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(1299))
	if err != nil {
		t.Fatal(err)
	}
	if rc.State != payment.StateSettled || rc.Reference == "" || rc.Amount != budget.USD(1299) {
		t.Fatalf("receipt = %+v", rc)
	}
	vr, err := payment.VerifyReceipt(rc.Signed, w.Issuer.JWKS(), paytest.IssuerURL)
	if err != nil {
		t.Fatal(err)
	}
	if vr.HoldID != m.Claims.HoldID || vr.Amount != budget.USD(1299) || vr.Provider != "cloudflare" || vr.Service != "cloudflare/registrar:domain" || vr.Project != "proj-1" {
		t.Fatalf("verified receipt = %+v", vr)
	}
	// A retry with the same amount returns the same receipt; another amount is refused.
	again, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(1299))
	if err != nil || again.Signed != rc.Signed {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	_, err = w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(1300))
	paytest.WantCode(t, err, payment.ErrAlreadyRedeemed)
	w.Consistent(m.Claims.HoldID)
	if w.Spent() != 1299 || w.Rail.Calls() != 1 {
		t.Fatalf("spent %d, rail calls %d", w.Spent(), w.Rail.Calls())
	}
}

func TestMintRefusedByCap(t *testing.T) {
	w := paytest.NewWorld(t)
	_, err := w.Issuer.Mint(context.Background(), issuer.MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(10001)})
	paytest.WantCode(t, err, payment.ErrCapExceeded)
	var ce *budget.CapError
	if !errors.As(err, &ce) {
		t.Fatalf("cap error not kept as cause: %v", err)
	}
	if due, _ := w.Store.Due(context.Background(), paytest.Start.Add(time.Hour), 0); len(due) != 0 {
		t.Fatalf("a refused mint left %d records", len(due))
	}
}

func TestMintIdempotent(t *testing.T) {
	w := paytest.NewWorld(t)
	req := issuer.MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(500), IdempotencyKey: "k1"}
	a, err := w.Issuer.Mint(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	w.Clock.Advance(3 * time.Second)
	b, err := w.Issuer.Mint(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Token != b.Token {
		t.Fatal("same idempotency key minted a different token")
	}
	req.MaxAmount = budget.USD(600)
	_, err = w.Issuer.Mint(context.Background(), req)
	paytest.WantCode(t, err, payment.ErrIdempotencyConflict)
}

func TestTokenRejections(t *testing.T) {
	w := paytest.NewWorld(t)
	ctx := context.Background()
	m := w.Mint(1000)

	t.Run("wrong typ", func(t *testing.T) {
		// An attestation-typed JWS with the same key and claims.
		s, err := paywire.SignerFor(paytest.Key(), "agentprov-attestation+jwt")
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := payment.SignToken(s, &m.Claims)
		_, err = w.Issuer.Redeem(ctx, "cloudflare", tok, budget.USD(1))
		paytest.WantCode(t, err, payment.ErrTokenInvalid)
	})
	t.Run("wrong aud", func(t *testing.T) {
		_, err := w.Issuer.Redeem(ctx, "neon", m.Token, budget.USD(1))
		paytest.WantCode(t, err, payment.ErrForbidden)
	})
	t.Run("foreign key", func(t *testing.T) {
		other := payment.SigningKey{KeyID: "orch-2026", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
		s, _ := paywire.SignerFor(other, payment.TokenType)
		tok, _ := payment.SignToken(s, &m.Claims)
		_, err := w.Issuer.Redeem(ctx, "cloudflare", tok, budget.USD(1))
		paytest.WantCode(t, err, payment.ErrTokenInvalid)
	})
	t.Run("amount over max", func(t *testing.T) {
		_, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(1001))
		paytest.WantCode(t, err, payment.ErrAmountExceedsMax)
	})
	t.Run("currency mismatch", func(t *testing.T) {
		_, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.Money{Amount: 5, Currency: "EUR"})
		paytest.WantCode(t, err, payment.ErrCurrencyMismatch)
	})
	t.Run("revoked", func(t *testing.T) {
		r := w.Mint(100)
		if err := w.Issuer.Revoke(ctx, r.Claims.HoldID, "user cancelled"); err != nil {
			t.Fatal(err)
		}
		_, err := w.Issuer.Redeem(ctx, "cloudflare", r.Token, budget.USD(1))
		paytest.WantCode(t, err, payment.ErrTokenRevoked)
		if h := w.Hold(r.Claims.HoldID); h.State != budget.HoldReleased {
			t.Fatalf("revoked token's hold is %s", h.State)
		}
		if err := w.Issuer.Revoke(ctx, r.Claims.HoldID, ""); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		w.Clock.Advance(5*time.Minute + payment.DefaultLeeway)
		_, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(1))
		paytest.WantCode(t, err, payment.ErrTokenExpired)
		v, _ := payment.NewTokenVerifier(paytest.IssuerURL, "cloudflare", w.Issuer.JWKS(), &payment.TokenVerifierOptions{Now: w.Clock.Now})
		_, err = v.Verify(ctx, m.Token)
		paytest.WantCode(t, err, payment.ErrTokenExpired)
	})
	if err := w.Issuer.Revoke(ctx, m.Claims.HoldID, ""); err != nil {
		t.Fatal(err)
	}
	if rc := w.Record(m.Claims.HoldID); rc.State != payment.StateRevoked {
		t.Fatalf("state %s", rc.State)
	}
}

func TestExpiredTokensAreSwept(t *testing.T) {
	w := paytest.NewWorld(t)
	ctx := context.Background()
	a, b := w.Mint(100), w.Mint(200)
	if _, err := w.Issuer.Redeem(ctx, "cloudflare", b.Token, budget.USD(150)); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Issuer.SettlePending(ctx); err != nil || n != 0 {
		t.Fatalf("early sweep touched %d records: %v", n, err)
	}
	w.Clock.Advance(6 * time.Minute)
	if n, err := w.Issuer.SettlePending(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	r := w.Record(a.Claims.HoldID)
	if r.State != payment.StateRevoked || r.Reason != "expired" {
		t.Fatalf("expired token record = %s (%s)", r.State, r.Reason)
	}
	if h := w.Hold(a.Claims.HoldID); h.State != budget.HoldReleased {
		t.Fatalf("hold = %s", h.State)
	}
	_, err := w.Issuer.Redeem(ctx, "cloudflare", a.Token, budget.USD(1))
	paytest.WantCode(t, err, payment.ErrTokenExpired)
	w.Consistent(a.Claims.HoldID, b.Claims.HoldID)
}

func TestTokenVerifier(t *testing.T) {
	w := paytest.NewWorld(t)
	m := w.Mint(100)
	v, err := payment.NewTokenVerifier(paytest.IssuerURL, "cloudflare", w.Issuer.JWKS(), &payment.TokenVerifierOptions{Now: w.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if *c != m.Claims {
		t.Fatalf("verified claims %+v != minted %+v", *c, m.Claims)
	}
	other, _ := payment.NewTokenVerifier(paytest.IssuerURL, "neon", w.Issuer.JWKS(), nil)
	if _, err := other.Verify(context.Background(), m.Token); err == nil {
		t.Fatal("another provider accepted the token")
	}
	wrongIss, _ := payment.NewTokenVerifier("https://evil.example", "cloudflare", w.Issuer.JWKS(), &payment.TokenVerifierOptions{Now: w.Clock.Now})
	_, err = wrongIss.Verify(context.Background(), m.Token)
	paytest.WantCode(t, err, payment.ErrTokenInvalid)
	empty := &jose.JSONWebKeySet{}
	if _, err := payment.NewTokenVerifier(paytest.IssuerURL, "cloudflare", empty, nil); err == nil {
		t.Fatal("empty key set accepted")
	}
}
