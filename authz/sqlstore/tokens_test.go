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

func tokenHarness(ctx context.Context, db *sql.DB, d sqlstore.Dialect, reopen func() *sql.DB) (*authztest.TokenHarness, error) {
	s, err := sqlstore.NewTokenStore(db, d, nil)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	return &authztest.TokenHarness{
		Store: s,
		Reopen: func(ctx context.Context) (authz.TokenStore, error) {
			s2, err := sqlstore.NewTokenStore(reopen(), d, nil)
			if err != nil {
				return nil, err
			}
			return s2, s2.Migrate(ctx)
		},
	}, nil
}

func TestTokenStoreSQLite(t *testing.T) {
	authztest.RunTokenStore(t, func(ctx context.Context, t *testing.T) (*authztest.TokenHarness, error) {
		path := sqltest.SQLitePath(t)
		return tokenHarness(ctx, sqltest.SQLite(t, path), sqlstore.SQLite, func() *sql.DB { return sqltest.SQLite(t, path) })
	})
}

func TestTokenStorePostgres(t *testing.T) {
	sqltest.PostgresBase(t)
	authztest.RunTokenStore(t, func(ctx context.Context, t *testing.T) (*authztest.TokenHarness, error) {
		dsn := sqltest.PostgresSchema(t)
		return tokenHarness(ctx, sqltest.OpenPostgres(t, dsn), sqlstore.Postgres, func() *sql.DB { return sqltest.OpenPostgres(t, dsn) })
	})
}
