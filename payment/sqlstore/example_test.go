package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers "sqlite"; the library itself imports no driver

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/sqlstore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "payment-sqlstore")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "orchestrator.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // SQLite has one writer: queue in Go, not on SQLITE_BUSY
	ctx := context.Background()
	store, err := sqlstore.New(ctx, db, sqlstore.SQLite, nil)
	if err != nil {
		log.Fatal(err)
	}
	// The same *Store backs both the Issuer's records and its endpoint's
	// idempotency: issuer.IssuerOptions{Store: store, Idempotency: store}.
	_, created, _ := store.Create(ctx, issuer.Redemption{HoldID: "hold_1", State: payment.StateIssued, Version: 1})
	_, again, _ := store.Create(ctx, issuer.Redemption{HoldID: "hold_1", State: payment.StateIssued, Version: 1})
	fmt.Println("created:", created, "created again:", again)
	// Output: created: true created again: false
}
