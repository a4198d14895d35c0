package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
)

// A daily job purges what ended more than 30 days ago; spend figures do not
// change, and a cutoff that recent idempotent retries may still need is
// refused.
func ExampleStore_Purge() {
	dir, _ := os.MkdirTemp("", "sqlstore-purge")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", sqlstore.SQLiteDSN(filepath.Join(dir, "budget.db")))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := sqlstore.New(ctx, db, sqlstore.SQLite, &sqlstore.Options{Now: clock})
	if err != nil {
		panic(err)
	}
	ledger, err := budget.NewLedger(store, &budget.LedgerOptions{Now: clock})
	if err != nil {
		panic(err)
	}
	scope := budget.Scope{Project: "my-app", Provider: "cloudflare"}
	h, _ := ledger.Reserve(ctx, scope, budget.USD(1299), "order-1", nil)
	ledger.Commit(ctx, h.ID, budget.USD(1050))

	now = now.AddDate(0, 2, 0) // May: the March hold is long settled
	_, err = store.Purge(ctx, now.Add(-time.Hour))
	fmt.Println("recent cutoff refused:", errors.Is(err, sqlstore.ErrCutoffTooRecent))
	st, err := store.Purge(ctx, now.Add(-sqlstore.RecommendedPurgeAge))
	fmt.Println("holds purged:", st.Holds, err)
	march, _ := ledger.SpendHistory(ctx, scope.Project, scope.Provider, budget.Month)
	fmt.Println("March still spent:", march[0].Committed)
	// Output:
	// recent cutoff refused: true
	// holds purged: 1 <nil>
	// March still spent: 1050
}
