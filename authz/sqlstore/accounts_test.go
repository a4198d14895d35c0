package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

func accountHarness(ctx context.Context, db *sql.DB, d sqlstore.Dialect, reopen func() *sql.DB) (*authztest.AccountHarness, error) {
	s, err := sqlstore.NewAccountStore(db, d, nil)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	// Migrating twice must be harmless.
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	return &authztest.AccountHarness{
		Store: s,
		Seed:  s.Seed,
		Reopen: func(ctx context.Context) (authz.AccountStore, error) {
			s2, err := sqlstore.NewAccountStore(reopen(), d, nil)
			if err != nil {
				return nil, err
			}
			return s2, s2.Migrate(ctx)
		},
	}, nil
}

func TestAccountStoreSQLite(t *testing.T) {
	authztest.RunAccountStore(t, func(ctx context.Context, t *testing.T) (*authztest.AccountHarness, error) {
		path := sqltest.SQLitePath(t)
		return accountHarness(ctx, sqltest.SQLite(t, path), sqlstore.SQLite, func() *sql.DB { return sqltest.SQLite(t, path) })
	})
}

func TestAccountStorePostgres(t *testing.T) {
	sqltest.PostgresBase(t)
	authztest.RunAccountStore(t, func(ctx context.Context, t *testing.T) (*authztest.AccountHarness, error) {
		dsn := sqltest.PostgresSchema(t)
		return accountHarness(ctx, sqltest.OpenPostgres(t, dsn), sqlstore.Postgres, func() *sql.DB { return sqltest.OpenPostgres(t, dsn) })
	})
}
