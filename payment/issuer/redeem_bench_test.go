package issuer_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/payment/issuer"
)

// BenchmarkMintRedeem measures Issuer.Mint plus the redemption core
// (verify, commit, charge on the memory rail, signed receipt), all in
// memory, and reports it as a ratio to the raw Ed25519 work inside it
// (two signatures and one verification) measured in the same run.
func BenchmarkMintRedeem(b *testing.B) {
	clk := clock.NewFake(paytest.Start)
	l, err := budget.NewLedger(budget.NewMemoryStore(nil), &budget.LedgerOptions{Now: clk.Now, DefaultProviderCap: budget.USD(1 << 50)})
	if err != nil {
		b.Fatal(err)
	}
	iss, err := issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), l, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil), Now: clk.Now, Logger: paytest.QuietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	// Baseline: the raw signatures inside one mint+redeem, timed in the same
	// iterations (interleaved, so machine load hits both alike).
	priv := ed25519.NewKeyFromSeed(paytest.Seed)
	pub := priv.Public().(ed25519.PublicKey)
	msg := make([]byte, 400) // about the size of a token's signing input
	var base, work time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		t0 := time.Now()
		sig := ed25519.Sign(priv, msg)
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
		_ = ed25519.Sign(priv, msg)
		t1 := time.Now()
		base += t1.Sub(t0)
		b.StartTimer()
		m, err := iss.Mint(ctx, issuer.MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain",
			MaxAmount: budget.USD(100), IdempotencyKey: fmt.Sprint("b", n)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(60)); err != nil {
			b.Fatal(err)
		}
		work += time.Since(t1)
	}
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "ed25519-ns/op")
	b.ReportMetric(float64(work)/float64(base), "x-ed25519")
}
