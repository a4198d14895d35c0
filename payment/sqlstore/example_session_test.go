package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment/paywall"
	"github.com/agentprov/agentprov/payment/sqlstore"
)

// A provider keeps its metered sessions in SQLite, so that what a session
// consumed survives a restart and is redeemed: the store reopened on the
// same file still knows the call and refuses its sequence number again.
func ExampleNewSessionStore() {
	dir, _ := os.MkdirTemp("", "payment-sessions")
	defer os.RemoveAll(dir)
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "provider.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
		if err != nil {
			log.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		return db
	}
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	db := open()
	store, err := sqlstore.NewSessionStore(ctx, db, sqlstore.SQLite, nil)
	if err != nil {
		log.Fatal(err)
	}
	// paywall.PaywallOptions{Sessions: &paywall.SessionOptions{Store: store, …}}
	// is where a provider plugs it in; here the store is driven directly.
	store.Open(ctx, paywall.SessionRecord{ID: "hold_1", Max: budget.USD(1000), Deadline: now.Add(time.Hour), LastUsed: now})
	store.Consume(ctx, "hold_1", 1, 250, now)
	db.Close() // the provider restarts

	db = open()
	defer db.Close()
	store, err = sqlstore.NewSessionStore(ctx, db, sqlstore.SQLite, nil)
	if err != nil {
		log.Fatal(err)
	}
	_, err = store.Consume(ctx, "hold_1", 1, 250, now)
	rec, _ := store.Get(ctx, "hold_1")
	fmt.Println("consumed:", rec.Consumed, "minor units; replay refused:", err != nil)
	// Output: consumed: 250 minor units; replay refused: true
}
