package sqlstore_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	budgetsql "github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/sqltest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/sqlstore"
)

// TestIssuerSurvivesRestart runs the orchestrator on one SQLite file: the
// rail fails while the provider redeems, the process "dies", a new one
// opens the same file and its outbox finishes the settlement, once.
func TestIssuerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := sqltest.SQLitePath(t)
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	rail := issuer.NewMemoryRail(nil) // the payment network outlives the process
	key := payment.SigningKey{KeyID: "k1", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	boot := func() (*issuer.Issuer, *budget.Ledger) {
		db := sqltest.SQLite(t, path)
		bs, err := budgetsql.New(ctx, db, budgetsql.SQLite, nil)
		if err != nil {
			t.Fatal(err)
		}
		ledger, err := budget.NewLedger(bs, &budget.LedgerOptions{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		ps, err := sqlstore.New(ctx, db, sqlstore.SQLite, nil)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := issuer.NewIssuer("https://orch.example", key, ledger, &issuer.IssuerOptions{Rail: rail, Store: ps, Idempotency: ps, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return iss, ledger
	}
	iss, _ := boot()
	m, err := iss.Mint(ctx, issuer.MintRequest{Project: "p1", Provider: "neon", Service: "postgres", MaxAmount: budget.USD(3000)})
	if err != nil {
		t.Fatal(err)
	}
	rail.FailNext(1)
	rc, err := iss.Redeem(ctx, "neon", m.Token, budget.USD(2500))
	if err != nil || rc.State != payment.StateSettling {
		t.Fatalf("redeem during rail outage: %+v %v", rc, err)
	}

	iss, ledger := boot() // restart
	clk.Advance(time.Minute)
	if _, err := iss.SettlePending(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := iss.Redemption(ctx, m.Claims.HoldID)
	if err != nil || r.State != payment.StateSettled {
		t.Fatalf("after restart: %+v %v", r, err)
	}
	h, _ := ledger.Hold(ctx, m.Claims.HoldID)
	if h.State != budget.HoldCommitted || h.Committed != budget.USD(2500) {
		t.Fatalf("hold %+v", h)
	}
	if len(rail.Charges()) != 1 || rail.Total("USD") != 2500 {
		t.Fatalf("charges %+v", rail.Charges())
	}
	again, err := iss.Redeem(ctx, "neon", m.Token, budget.USD(2500))
	if err != nil || again.Signed != rc.Signed || again.State != payment.StateSettled {
		t.Fatalf("replay after restart: %+v %v", again, err)
	}
}
