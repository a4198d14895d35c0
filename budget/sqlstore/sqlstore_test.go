package sqlstore_test

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/budgettest"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// harness runs the conformance suite on one database; reopen opens a new
// handle on the same data, as a restarted process would.
type harness struct {
	open func() (*sql.DB, error)
	d    sqlstore.Dialect
	opts *sqlstore.Options

	mu    sync.Mutex
	db    *sql.DB
	store *sqlstore.Store
}

func newHarness(ctx context.Context, d sqlstore.Dialect, open func() (*sql.DB, error), opts *sqlstore.Options) (*harness, error) {
	h := &harness{open: open, d: d, opts: opts}
	if _, err := h.Reopen(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *harness) Store() budget.Store {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.store
}

func (h *harness) Reopen(ctx context.Context) (budget.Store, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db != nil {
		h.db.Close()
	}
	db, err := h.open()
	if err != nil {
		return nil, err
	}
	s, err := sqlstore.New(ctx, db, h.d, h.opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	h.db, h.store = db, s
	return s, nil
}

func (h *harness) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db != nil {
		h.db.Close()
		h.db = nil
	}
}

// ModelRounds keeps the rapid model test (100 random sequences a round) to
// a duration CI can afford, since every operation is a durable commit.
// AGENTPROV_MODEL_ROUNDS raises it: 10 rounds are 1,000 sequences.
func (h *harness) ModelRounds(short bool) int {
	if n, err := strconv.Atoi(os.Getenv("AGENTPROV_MODEL_ROUNDS")); err == nil && n > 0 {
		return n
	}
	if short {
		return 1
	}
	return 2
}

func openSQLite(path string) func() (*sql.DB, error) {
	return func() (*sql.DB, error) {
		db, err := sql.Open("sqlite", sqlstore.SQLiteDSN(path))
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		return db, nil
	}
}

func openPostgres(dsn string) func() (*sql.DB, error) {
	return func() (*sql.DB, error) {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		// Enough connections for the 64-goroutine subtests to contend on
		// the database rather than on the pool, few enough for a shared
		// server.
		db.SetMaxOpenConns(8)
		return db, nil
	}
}

func sqliteMaker(ctx context.Context, t *testing.T) (budgettest.Harness, error) {
	h, err := newHarness(ctx, sqlstore.SQLite, openSQLite(sqltest.SQLitePath(t)), nil)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func postgresMaker(ctx context.Context, t *testing.T) (budgettest.Harness, error) {
	dsn := sqltest.PostgresSchema(t)
	h, err := newHarness(ctx, sqlstore.Postgres, openPostgres(dsn), &sqlstore.Options{TablePrefix: "ap_"})
	if err != nil {
		return nil, err
	}
	return h, nil
}

func TestSQLiteConformance(t *testing.T) {
	budgettest.Run(t, sqliteMaker)
}

func TestPostgresConformance(t *testing.T) {
	sqltest.PostgresBase(t) // skip early, with the reason, when unset
	budgettest.Run(t, postgresMaker)
}
