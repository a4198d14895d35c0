package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// TestPostgresLegacyHolds: a database made before holds listed their
// counters (no counter_list column, links in hold_counters) is migrated by
// New, and a hold written the old way still moves its counters when it is
// committed: the statements read its links.
func TestPostgresLegacyHolds(t *testing.T) {
	ctx := context.Background()
	db := sqltest.OpenPostgres(t, sqltest.PostgresSchema(t))
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ledger := func() *budget.Ledger {
		s, err := sqlstore.New(ctx, db, sqlstore.Postgres, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := budget.NewLedger(s, &budget.LedgerOptions{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := ledger()
	scope := budget.Scope{Project: "p1", Provider: "acme"}
	h, err := l.Reserve(ctx, scope, budget.USD(700), "k1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Turn the hold into one written before counter_list: its links in
	// hold_counters, the column gone.
	var list string
	if err := db.QueryRow(`SELECT counter_list FROM agentprov_budget_holds WHERE id = $1`, h.ID).Scan(&list); err != nil {
		t.Fatal(err)
	}
	items := strings.Split(list, ",")
	if len(items) != 6 {
		t.Fatalf("counter_list %q: want 6 counters", list)
	}
	for _, it := range items {
		p, w, _ := strings.Cut(it, "|")
		if _, err := db.Exec(`INSERT INTO agentprov_budget_hold_counters (hold_id, provider, win) VALUES ($1, $2, $3)`, h.ID, p, w); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`ALTER TABLE agentprov_budget_holds DROP COLUMN counter_list`); err != nil {
		t.Fatal(err)
	}
	l = ledger() // migrates: the column is back, NULL for the old hold
	var isNull bool
	if err := db.QueryRow(`SELECT counter_list IS NULL FROM agentprov_budget_holds WHERE id = $1`, h.ID).Scan(&isNull); err != nil || !isNull {
		t.Fatalf("after the migration: counter_list IS NULL = %v, %v", isNull, err)
	}
	if _, err := l.Commit(ctx, h.ID, budget.USD(400)); err != nil {
		t.Fatal(err)
	}
	u, err := l.Usage(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range u.Counters {
		n++
		if c.Committed != 400 || c.Held != 0 {
			t.Errorf("counter %v: committed %d held %d, want 400 and 0", c.Counter, c.Committed, c.Held)
		}
	}
	if n == 0 {
		t.Fatal("no counters reported")
	}
	// A new hold on the migrated database lists its counters itself.
	h2, err := l.Reserve(ctx, scope, budget.USD(100), "k2", nil)
	if err != nil {
		t.Fatal(err)
	}
	var links int
	if err := db.QueryRow(`SELECT count(*) FROM agentprov_budget_hold_counters WHERE hold_id = $1`, h2.ID).Scan(&links); err != nil || links != 0 {
		t.Errorf("new hold has %d links (%v), want none", links, err)
	}
}
