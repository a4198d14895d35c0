package sqlstore_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"

	"github.com/agentprov/agentprov/budget"
	budgetsql "github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/sqlstore"
)

// TestTwoIssuersOnePostgres: two orchestrator instances (separate pools on
// one PostgreSQL schema) race 60 redemptions of one token; exactly one
// commit and one charge happen, and every success carries the same receipt.
func TestTwoIssuersOnePostgres(t *testing.T) {
	ctx := context.Background()
	dsn := sqltest.PostgresSchema(t)
	rail := issuer.NewMemoryRail(nil) // the shared payment network
	key := payment.SigningKey{KeyID: "k1", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	instance := func() *issuer.Issuer {
		db := sqltest.OpenPostgres(t, dsn)
		bs, err := budgetsql.New(ctx, db, budgetsql.Postgres, nil)
		if err != nil {
			t.Fatal(err)
		}
		ledger, err := budget.NewLedger(bs, nil)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := sqlstore.New(ctx, db, sqlstore.Postgres, nil)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := issuer.NewIssuer("https://orch.example", key, ledger, &issuer.IssuerOptions{Rail: rail, Store: ps, Idempotency: ps})
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	a, b := instance(), instance()
	m, err := a.Mint(ctx, issuer.MintRequest{Project: "p1", Provider: "neon", Service: "postgres", MaxAmount: budget.USD(900)})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		receipts = map[string]int{}
	)
	start := make(chan struct{})
	for i := range 60 {
		iss := a
		if i%2 == 1 {
			iss = b
		}
		wg.Go(func() {
			<-start
			rc, err := iss.Redeem(ctx, "neon", m.Token, budget.USD(800))
			switch {
			case err == nil:
				mu.Lock()
				receipts[rc.Signed]++
				mu.Unlock()
			case errors.Is(err, payment.ErrRedemptionInFlight):
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(receipts) != 1 {
		t.Fatalf("%d distinct receipts", len(receipts))
	}
	if _, err := b.SettlePending(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := b.Redemption(ctx, m.Claims.HoldID)
	if err != nil || r.State != payment.StateSettled {
		t.Fatalf("record %+v %v", r, err)
	}
	if len(rail.Charges()) != 1 || rail.Calls() != 1 || rail.Total("USD") != 800 {
		t.Fatalf("rail: %d charges, %d calls, total %d", len(rail.Charges()), rail.Calls(), rail.Total("USD"))
	}
}
