package sqlstore_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/internal/sqltest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paymenttest"
	"github.com/agentprov/agentprov/payment/sqlstore"
)

func sqliteStore(t *testing.T) (*sqlstore.Store, func(context.Context) (*sqlstore.Store, error)) {
	path := sqltest.SQLitePath(t)
	open := func(ctx context.Context) (*sqlstore.Store, error) {
		return sqlstore.New(ctx, sqltest.SQLite(t, path), sqlstore.SQLite, nil)
	}
	s, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, open
}

func postgresStore(t *testing.T) (*sqlstore.Store, func(context.Context) (*sqlstore.Store, error)) {
	dsn := sqltest.PostgresSchema(t)
	open := func(ctx context.Context) (*sqlstore.Store, error) {
		return sqlstore.New(ctx, sqltest.OpenPostgres(t, dsn), sqlstore.Postgres, &sqlstore.Options{TablePrefix: "pay_"})
	}
	s, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, open
}

func run(t *testing.T, mk func(*testing.T) (*sqlstore.Store, func(context.Context) (*sqlstore.Store, error))) {
	t.Run("Redemptions", func(t *testing.T) {
		paymenttest.RunRedemptionStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.RedemptionHarness, error) {
			s, open := mk(t)
			return &paymenttest.RedemptionHarness{Store: s, Reopen: func(ctx context.Context) (payment.RedemptionStore, error) { return open(ctx) }}, nil
		})
	})
	t.Run("Idempotency", func(t *testing.T) {
		paymenttest.RunIdempotencyStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.IdempotencyHarness, error) {
			s, open := mk(t)
			return &paymenttest.IdempotencyHarness{Store: s, Reopen: func(ctx context.Context) (payment.IdempotencyStore, error) { return open(ctx) }}, nil
		})
	})
}

func TestSQLiteConformance(t *testing.T)   { run(t, sqliteStore) }
func TestPostgresConformance(t *testing.T) { run(t, postgresStore) }
