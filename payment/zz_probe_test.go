package payment

import (
	"crypto/ed25519"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agentprov/agentprov/budget"
)

func BenchmarkZZRedeemHTTP(b *testing.B) {
	w := newE2E(b, e2eConfig{cap: 1 << 50})
	mux := http.NewServeMux()
	h := w.iss.RedemptionHandler()
	mux.Handle("/redeem", h)
	orch := httptest.NewServer(mux)
	defer orch.Close()
	ctx := context.Background()
	seq := 0
	mint := func(n int) []string {
		toks := make([]string, n)
		for i := range toks {
			seq++
			m, err := w.iss.Mint(ctx, MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(100), IdempotencyKey: fmt.Sprintf("m-%d", seq)})
			if err != nil {
				b.Fatal(err)
			}
			toks[i] = m.Token
		}
		return toks
	}
	for _, verify := range []bool{false, true} {
		o := &RedeemerOptions{APIKey: "cf-api-key", HTTPClient: orch.Client()}
		if verify {
			o.Keys, o.Issuer = w.iss.JWKS(), e2eIssuer
		}
		red, _ := NewRedeemer(orch.URL+"/redeem", o)
		b.Run(fmt.Sprint("http-verify=", verify), func(b *testing.B) {
			toks := mint(b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				seq++
				if _, err := red.Redeem(ctx, toks[i], budget.USD(60), fmt.Sprintf("k-%d", seq)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("handler-direct", func(b *testing.B) {
		toks := mint(b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			seq++
			body := []byte(`{"token":"` + toks[i] + `","amount":{"amount":60,"currency":"USD"}}`)
			req := httptest.NewRequest("POST", "/redeem", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("k-%d", seq))
			req.Header.Set("Authorization", "Bearer cf-api-key")
			req.Header.Set("Agent-Provisioning-Version", ProtocolVersion)
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != 200 {
				b.Fatal(rr.Code, rr.Body.String())
			}
		}
	})
	b.Run("inproc", func(b *testing.B) {
		toks := mint(b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := w.iss.Redeem(ctx, "cloudflare", toks[i], budget.USD(60)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkZZVerify(b *testing.B) {
	w := newE2E(b, e2eConfig{cap: 1 << 50})
	ctx := context.Background()
	m, _ := w.iss.Mint(ctx, MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(100), IdempotencyKey: "m-x"})
	rc, err := w.iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(60))
	if err != nil {
		b.Fatal(err)
	}
	keys := w.iss.JWKS()
	b.Logf("keys %d receipt %d token %d", len(keys.Keys), len(rc.Signed), len(m.Token))
	b.Run("receipt", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := VerifyReceipt(rc.Signed, keys, e2eIssuer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("token", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := verifyToken(m.Token, keys, e2eIssuer, "cloudflare"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkZZRawVerify(b *testing.B) {
	w := newE2E(b, e2eConfig{cap: 1 << 50})
	ctx := context.Background()
	m, _ := w.iss.Mint(ctx, MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(100), IdempotencyKey: "m-x"})
	priv := ed25519.NewKeyFromSeed([]byte("agentprov-402-e2e-test-key-seed!"))
	pub := priv.Public().(ed25519.PublicKey)
	msg := []byte(m.Token[:400])
	sig := ed25519.Sign(priv, msg)
	for i := 0; i < b.N; i++ {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("x")
		}
	}
}
