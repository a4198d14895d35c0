package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/agentprov/agentprov/authz/sqlstore"
)

// migrated builds a store on db and migrates it twice: migrations must be
// idempotent, since every instance runs them at start-up.
func migrated[S interface{ Migrate(context.Context) error }](ctx context.Context, newStore func(*sql.DB, sqlstore.Dialect, *sqlstore.Options) (S, error), db *sql.DB, d sqlstore.Dialect) (S, error) {
	s, err := newStore(db, d, nil)
	if err != nil {
		return s, err
	}
	for range 2 {
		if err := s.Migrate(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// forEachDialect runs suite once per database, each harness on a fresh
// database whose open function reopens it (a process restart).
func forEachDialect(t *testing.T, suite func(t *testing.T, op opener)) {
	for name, op := range dialects {
		t.Run(name, func(t *testing.T) { suite(t, op) })
	}
}
