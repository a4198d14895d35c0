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

func grantHarness(ctx context.Context, db *sql.DB, d sqlstore.Dialect, reopen func() *sql.DB) (*authztest.GrantHarness, error) {
	s, err := sqlstore.NewGrantStore(db, d, nil)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	return &authztest.GrantHarness{
		Store: s,
		Reopen: func(ctx context.Context) (authz.GrantStore, error) {
			s2, err := sqlstore.NewGrantStore(reopen(), d, nil)
			if err != nil {
				return nil, err
			}
			return s2, s2.Migrate(ctx)
		},
	}, nil
}

func TestGrantStoreSQLite(t *testing.T) {
	authztest.RunGrantStore(t, func(ctx context.Context, t *testing.T) (*authztest.GrantHarness, error) {
		path := sqltest.SQLitePath(t)
		return grantHarness(ctx, sqltest.SQLite(t, path), sqlstore.SQLite, func() *sql.DB { return sqltest.SQLite(t, path) })
	})
}

func TestGrantStorePostgres(t *testing.T) {
	sqltest.PostgresBase(t)
	authztest.RunGrantStore(t, func(ctx context.Context, t *testing.T) (*authztest.GrantHarness, error) {
		dsn := sqltest.PostgresSchema(t)
		return grantHarness(ctx, sqltest.OpenPostgres(t, dsn), sqlstore.Postgres, func() *sql.DB { return sqltest.OpenPostgres(t, dsn) })
	})
}
