package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/sqltest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paymenttest"
	"github.com/agentprov/agentprov/payment/paywall"
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
			return &paymenttest.RedemptionHarness{Store: s, Reopen: func(ctx context.Context) (issuer.RedemptionStore, error) { return open(ctx) }}, nil
		})
	})
	t.Run("Idempotency", func(t *testing.T) {
		paymenttest.RunIdempotencyStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.IdempotencyHarness, error) {
			s, open := mk(t)
			return &paymenttest.IdempotencyHarness{Store: s, Reopen: func(ctx context.Context) (payment.IdempotencyStore, error) { return open(ctx) }}, nil
		})
	})
}

// challengeHarness opens a ChallengeStore on db; Reopen opens a second one
// (a second provider instance) over the same database.
func challengeHarness(t *testing.T, db func() *sql.DB, dialect sqlstore.Dialect) *paymenttest.ChallengeHarness {
	open := func(ctx context.Context) (paywall.ChallengeStore, error) {
		return sqlstore.NewChallengeStore(ctx, db(), dialect, &sqlstore.Options{TablePrefix: "prov_"})
	}
	s, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &paymenttest.ChallengeHarness{Store: s, Reopen: open}
}

func TestSQLiteChallengeConformance(t *testing.T) {
	paymenttest.RunChallengeStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.ChallengeHarness, error) {
		path := sqltest.SQLitePath(t)
		return challengeHarness(t, func() *sql.DB { return sqltest.SQLite(t, path) }, sqlstore.SQLite), nil
	})
}

func TestPostgresChallengeConformance(t *testing.T) {
	paymenttest.RunChallengeStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.ChallengeHarness, error) {
		dsn := sqltest.PostgresSchema(t)
		return challengeHarness(t, func() *sql.DB { return sqltest.OpenPostgres(t, dsn) }, sqlstore.Postgres), nil
	})
}

func TestChallengePurge(t *testing.T) {
	ctx := context.Background()
	s, err := sqlstore.NewChallengeStore(ctx, sqltest.SQLite(t, sqltest.SQLitePath(t)), sqlstore.SQLite, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, until := range []time.Time{now.Add(-time.Second), now, now.Add(time.Second)} {
		rec := paywall.ChallengeRecord{ID: fmt.Sprint("c", i), Fingerprint: "f", State: paywall.ChallengeDone, RetainUntil: until}
		if _, ok, err := s.Claim(ctx, rec); err != nil || !ok {
			t.Fatalf("Claim %d = %v, %v", i, ok, err)
		}
	}
	n, err := s.Purge(ctx, now)
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	if _, err := s.Get(ctx, "c2"); err != nil {
		t.Errorf("live record purged: %v", err)
	}
	if _, err := s.Get(ctx, "c0"); !errors.Is(err, paywall.ErrChallengeNotFound) {
		t.Errorf("expired record kept: %v", err)
	}
	if _, err := sqlstore.NewChallengeStore(ctx, nil, sqlstore.SQLite, nil); err == nil {
		t.Error("nil db accepted")
	}
}

func TestSQLiteConformance(t *testing.T)   { run(t, sqliteStore) }
func TestPostgresConformance(t *testing.T) { run(t, postgresStore) }

// sessionHarness opens a SessionStore on db; Reopen opens a second one (a
// second provider instance, or the same one after a restart) over the same
// database.
func sessionHarness(t *testing.T, db func() *sql.DB, dialect sqlstore.Dialect) *paymenttest.SessionHarness {
	open := func(ctx context.Context) (paywall.SessionStore, error) {
		return sqlstore.NewSessionStore(ctx, db(), dialect, &sqlstore.Options{TablePrefix: "prov_"})
	}
	s, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &paymenttest.SessionHarness{Store: s, Reopen: open}
}

func TestSQLiteSessionConformance(t *testing.T) {
	paymenttest.RunSessionStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.SessionHarness, error) {
		path := sqltest.SQLitePath(t)
		return sessionHarness(t, func() *sql.DB { return sqltest.SQLite(t, path) }, sqlstore.SQLite), nil
	})
}

func TestPostgresSessionConformance(t *testing.T) {
	paymenttest.RunSessionStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.SessionHarness, error) {
		dsn := sqltest.PostgresSchema(t)
		return sessionHarness(t, func() *sql.DB { return sqltest.OpenPostgres(t, dsn) }, sqlstore.Postgres), nil
	})
}
