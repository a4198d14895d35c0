package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the caller brings the driver

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
)

// An orchestrator keeps its spending caps in a SQLite file: the state
// survives a restart, including a hold that was never committed.
func Example() {
	dir, _ := os.MkdirTemp("", "sqlstore-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "budget.db")
	ctx := context.Background()
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)

	open := func() (*sql.DB, *budget.Ledger) {
		db, err := sql.Open("sqlite", sqlstore.SQLiteDSN(path))
		if err != nil {
			panic(err)
		}
		db.SetMaxOpenConns(1)
		store, err := sqlstore.New(ctx, db, sqlstore.SQLite, nil)
		if err != nil {
			panic(err)
		}
		ledger, err := budget.NewLedger(store, &budget.LedgerOptions{Now: func() time.Time { return now }})
		if err != nil {
			panic(err)
		}
		return db, ledger
	}

	db, ledger := open()
	scope := budget.Scope{Project: "my-app", Provider: "cloudflare"}
	domain, _ := ledger.Reserve(ctx, scope, budget.USD(1299), "order-1", &budget.ReserveOptions{Service: "registrar:domain"})
	ledger.Commit(ctx, domain.ID, budget.USD(1050))
	worker, _ := ledger.Reserve(ctx, scope, budget.USD(5000), "order-2", nil)
	db.Close() // the process stops before settling order-2

	db, ledger = open()
	defer db.Close()
	u, _ := ledger.Usage(ctx, scope)
	fmt.Println("remaining this month:", u.Remaining)
	_, err := ledger.Reserve(ctx, scope, budget.USD(4000), "order-3", nil)
	fmt.Println("over the cap:", errors.Is(err, budget.ErrCapExceeded))

	now = now.Add(time.Hour) // order-2's hold expires
	h, _ := ledger.Hold(ctx, worker.ID)
	fmt.Println("order-2:", h.State)
	u, _ = ledger.Usage(ctx, scope)
	fmt.Println("remaining after expiry:", u.Remaining)
	// Output:
	// remaining this month: 39.50 USD
	// over the cap: true
	// order-2: expired
	// remaining after expiry: 89.50 USD
}
