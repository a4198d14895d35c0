package payment

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
)

// BenchmarkMintRedeem measures Issuer.Mint plus the redemption core
// (verify, commit, charge on the memory rail, signed receipt), all in
// memory, and reports it as a ratio to the raw Ed25519 work inside it
// (two signatures and one verification) measured in the same run.
func BenchmarkMintRedeem(b *testing.B) {
	clk := clock.NewFake(testStart)
	l, err := budget.NewLedger(budget.NewMemoryStore(nil), &budget.LedgerOptions{Now: clk.Now, DefaultProviderCap: budget.USD(1 << 50)})
	if err != nil {
		b.Fatal(err)
	}
	iss, err := NewIssuer(testIss, testKey(), l, &IssuerOptions{Rail: NewMemoryRail(nil), Now: clk.Now, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	// Baseline: the raw signatures inside one mint+redeem.
	priv := ed25519.NewKeyFromSeed(testSeed)
	pub := priv.Public().(ed25519.PublicKey)
	msg := make([]byte, 400) // about the size of a token's signing input
	start := time.Now()
	for range b.N {
		sig := ed25519.Sign(priv, msg)
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
		_ = ed25519.Sign(priv, msg)
	}
	baseline := float64(time.Since(start).Nanoseconds()) / float64(b.N)

	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		m, err := iss.Mint(ctx, MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain",
			MaxAmount: budget.USD(100), IdempotencyKey: fmt.Sprint("b", n)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(60)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(baseline, "ed25519-ns/op")
	b.ReportMetric(per/baseline, "x-ed25519")
}

// BenchmarkCanonicalJSON reports fingerprinting a redemption body as a
// ratio to plain SHA-256-free json.Valid on the same bytes.
func BenchmarkCanonicalJSON(b *testing.B) {
	body := []byte(`{"token":"eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJodHRwczovL29yY2hlc3RyYXRvci5leGFtcGxlIn0.sig","amount":{"currency":"USD","amount":1299}}`)
	start := time.Now()
	for range b.N {
		_ = jsonValid(body)
	}
	baseline := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ResetTimer()
	for range b.N {
		_ = Fingerprint(body)
	}
	b.StopTimer()
	b.ReportMetric(baseline, "jsonvalid-ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/baseline, "x-jsonvalid")
}
