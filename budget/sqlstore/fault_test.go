package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

var faultStart = time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)

func fixedLedger(t *testing.T, s budget.Store, now time.Time) *budget.Ledger {
	t.Helper()
	l, err := budget.NewLedger(s, &budget.LedgerOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func monthCounter(t *testing.T, l *budget.Ledger, scope budget.Scope) budget.CounterUsage {
	t.Helper()
	u, err := l.Usage(t.Context(), scope)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	for _, c := range u.Counters {
		if c.Counter.Provider != "" && c.Counter.Window.Period() == budget.Month {
			return c
		}
	}
	t.Fatalf("no month counter in %+v", u)
	return budget.CounterUsage{}
}

// A database that is gone fails every call closed: ErrStore, nothing
// granted; once it is back, nothing had been counted.
func testDatabaseGone(t *testing.T, d sqlstore.Dialect, open func() (*sql.DB, error)) {
	ctx := t.Context()
	db, err := open()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.New(ctx, db, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := fixedLedger(t, s, faultStart)
	scope := budget.Scope{Project: "p", Provider: "acme"}
	h, err := l.Reserve(ctx, scope, budget.USD(500), "before", nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := l.Reserve(ctx, scope, budget.USD(100), "while-down", nil); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("Reserve on a closed database: %v; want ErrStore", err)
	}
	if _, err := l.Commit(ctx, h.ID, budget.USD(500)); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("Commit on a closed database: %v; want ErrStore", err)
	}
	if _, err := l.Hold(ctx, h.ID); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("Hold on a closed database: %v; want ErrStore", err)
	}
	if _, err := l.Usage(ctx, scope); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("Usage on a closed database: %v; want ErrStore (never a zero)", err)
	}

	db2, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2, err := sqlstore.New(ctx, db2, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	l2 := fixedLedger(t, s2, faultStart)
	if c := monthCounter(t, l2, scope); c.Held != 500 || c.Committed != 0 {
		t.Fatalf("after the outage: %+v; want only the first hold", c)
	}
	if got, err := l2.Hold(ctx, h.ID); err != nil || got.State != budget.HoldActive {
		t.Fatalf("hold after the outage = %+v, %v", got, err)
	}
}

func TestSQLiteDatabaseGone(t *testing.T) {
	testDatabaseGone(t, sqlstore.SQLite, openSQLite(sqltest.SQLitePath(t)))
}

func TestPostgresDatabaseGone(t *testing.T) {
	testDatabaseGone(t, sqlstore.Postgres, openPostgres(sqltest.PostgresSchema(t)))
}

// Calls cut off at random points (the context ends while the statement is
// on the wire, in the server, or committing) either happened entirely or
// not at all: retried with the same keys, every reservation and commit
// lands exactly once and the counters equal the sum of the holds.
func testCutOff(t *testing.T, d sqlstore.Dialect, open func() (*sql.DB, error)) {
	ctx := t.Context()
	db, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := sqlstore.New(ctx, db, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := fixedLedger(t, s, faultStart)
	scope := budget.Scope{Project: "p", Provider: "acme"}
	const workers, per = 8, 12
	var (
		mu        sync.Mutex
		committed int64
		cut       int
	)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(7, uint64(w)))
			for i := 0; i < per; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				amount := 1 + rng.Int64N(100)
				// First attempt under a deadline that may fire anywhere.
				cctx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(20000))*time.Microsecond)
				h, err := l.Reserve(cctx, scope, budget.USD(amount), key, nil)
				cancel()
				if err != nil {
					if !errors.Is(err, budget.ErrStore) {
						t.Errorf("cut-off reserve: %v; want ErrStore", err)
						return
					}
					mu.Lock()
					cut++
					mu.Unlock()
					// The retry finds the hold the lost attempt placed, or
					// places it now: never two.
					if h, err = l.Reserve(ctx, scope, budget.USD(amount), key, nil); err != nil {
						t.Errorf("retried reserve: %v", err)
						return
					}
				}
				actual := rng.Int64N(amount + 1)
				cctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(20000))*time.Microsecond)
				_, err = l.Commit(cctx, h.ID, budget.USD(actual))
				cancel()
				if err != nil {
					if !errors.Is(err, budget.ErrStore) {
						t.Errorf("cut-off commit: %v; want ErrStore", err)
						return
					}
					if _, err := l.Commit(ctx, h.ID, budget.USD(actual)); err != nil {
						t.Errorf("retried commit: %v", err)
						return
					}
				}
				mu.Lock()
				committed += actual
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d of %d reservations cut off on the first attempt", cut, workers*per)
	c := monthCounter(t, l, scope)
	if c.Committed != committed || c.Held != 0 {
		t.Fatalf("counter committed %d held %d; want %d and 0", c.Committed, c.Held, committed)
	}
	var holds int
	if err := db.QueryRow(`SELECT count(*) FROM agentprov_budget_holds`).Scan(&holds); err != nil {
		t.Fatal(err)
	}
	if holds != workers*per {
		t.Fatalf("%d holds stored for %d keys", holds, workers*per)
	}
}

func TestSQLiteCutOff(t *testing.T) {
	testCutOff(t, sqlstore.SQLite, openSQLite(sqltest.SQLitePath(t)))
}

func TestPostgresCutOff(t *testing.T) {
	testCutOff(t, sqlstore.Postgres, openPostgres(sqltest.PostgresSchema(t)))
}

func TestNewRejectsBadInput(t *testing.T) {
	ctx := t.Context()
	db := sqltest.SQLite(t, sqltest.SQLitePath(t))
	if _, err := sqlstore.New(ctx, nil, sqlstore.SQLite, nil); err == nil {
		t.Error("New(nil db) succeeded")
	}
	if _, err := sqlstore.New(ctx, db, sqlstore.Dialect(0), nil); err == nil {
		t.Error("New with an unknown dialect succeeded")
	}
	for _, p := range []string{"Bad", "1x", "x-y", "x y", "x;DROP TABLE t;--", "abcdefghijklmnopqrstuvwxyz0123456789"} {
		if _, err := sqlstore.New(ctx, db, sqlstore.SQLite, &sqlstore.Options{TablePrefix: p}); err == nil {
			t.Errorf("New with table prefix %q succeeded", p)
		}
	}
	// Two prefixes are two independent stores in one database.
	a, err := sqlstore.New(ctx, db, sqlstore.SQLite, &sqlstore.Options{TablePrefix: "a_"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sqlstore.New(ctx, db, sqlstore.SQLite, &sqlstore.Options{TablePrefix: "b_"})
	if err != nil {
		t.Fatal(err)
	}
	la, lb := fixedLedger(t, a, faultStart), fixedLedger(t, b, faultStart)
	scope := budget.Scope{Project: "p", Provider: "acme"}
	if _, err := la.Reserve(ctx, scope, budget.USD(10000), "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Reserve(ctx, scope, budget.USD(10000), "k", nil); err != nil {
		t.Fatalf("second prefix shares state with the first: %v", err)
	}
	// New is idempotent: a restart on existing tables keeps the data.
	a2, err := sqlstore.New(ctx, db, sqlstore.SQLite, &sqlstore.Options{TablePrefix: "a_"})
	if err != nil {
		t.Fatal(err)
	}
	if c := monthCounter(t, fixedLedger(t, a2, faultStart), scope); c.Held != 10000 {
		t.Fatalf("after New again: %+v", c)
	}
}

// Bad requests reaching the store directly are refused with a contract
// error naming the problem, and change nothing.
func testBadRequests(t *testing.T, d sqlstore.Dialect, open func() (*sql.DB, error)) {
	ctx := t.Context()
	db, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := sqlstore.New(ctx, db, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{Project: "p", Provider: "acme"}
	month := budget.Counter{Project: "p", Provider: "acme", Window: "month:2026-11"}
	good := func() *budget.ReserveRequest {
		return &budget.ReserveRequest{HoldID: "h1", Key: "k1", Scope: scope, Amount: budget.USD(100),
			Checks: []budget.CapCheck{{Counter: month}, {Counter: budget.Counter{Project: "p", Window: "month:2026-11"}}},
			Now:    faultStart, ExpiresAt: faultStart.Add(time.Hour), RequestHash: "x"}
	}
	if _, _, err := s.Reserve(ctx, good()); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mutate func(*budget.ReserveRequest)
		want   error
	}{
		"hold id taken":     {func(r *budget.ReserveRequest) { r.Key = "k2" }, budget.ErrInvalidRequest},
		"counter elsewhere": {func(r *budget.ReserveRequest) { r.Key, r.HoldID = "k3", "h3"; r.Checks[0].Counter.Provider = "bolt" }, budget.ErrInvalidRequest},
		"other project":     {func(r *budget.ReserveRequest) { r.Key, r.HoldID = "k4", "h4"; r.Checks[1].Counter.Project = "q" }, budget.ErrInvalidRequest},
		"counter twice":     {func(r *budget.ReserveRequest) { r.Key, r.HoldID = "k5", "h5"; r.Checks[1] = r.Checks[0] }, budget.ErrInvalidRequest},
		"NUL in memo":       {func(r *budget.ReserveRequest) { r.Key, r.HoldID, r.Memo = "k6", "h6", "a\x00b" }, budget.ErrInvalidRequest},
		"bad UTF-8":         {func(r *budget.ReserveRequest) { r.Key, r.HoldID, r.Service = "k7", "h7", "\xff" }, budget.ErrInvalidRequest},
		"year 3000": {func(r *budget.ReserveRequest) {
			r.Key, r.HoldID = "k8", "h8"
			r.ExpiresAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
		}, budget.ErrInvalidRequest},
		"negative": {func(r *budget.ReserveRequest) { r.Key, r.HoldID = "k9", "h9"; r.Amount = budget.USD(-1) }, budget.ErrInvalidAmount},
	} {
		r := good()
		tc.mutate(r)
		if _, _, err := s.Reserve(ctx, r); !errors.Is(err, tc.want) {
			t.Errorf("%s: Reserve = %v; want %v", name, err, tc.want)
		}
	}
	for name, req := range map[string]*budget.TransitionRequest{
		"released → committed": {HoldID: "h1", From: budget.HoldReleased, To: budget.HoldCommitted, Now: faultStart},
		"active → reversed":    {HoldID: "h1", From: budget.HoldActive, To: budget.HoldReversed, Now: faultStart},
	} {
		if _, err := s.Transition(ctx, req); !errors.Is(err, budget.ErrInvalidRequest) {
			t.Errorf("%s: Transition = %v; want ErrInvalidRequest", name, err)
		}
	}
	if _, err := s.Transition(ctx, &budget.TransitionRequest{HoldID: "h1", From: budget.HoldActive, To: budget.HoldCommitted,
		Actual: budget.USD(-1), Now: faultStart}); !errors.Is(err, budget.ErrInvalidAmount) {
		t.Errorf("negative commit: %v; want ErrInvalidAmount", err)
	}
	us, err := s.Usage(ctx, []budget.CapCheck{{Counter: month}}, faultStart)
	if err != nil || us[0].Held != 100 || us[0].Committed != 0 {
		t.Fatalf("after bad requests: %+v, %v; want only the first hold", us, err)
	}
	if h, err := s.Hold(ctx, "h1"); err != nil || h.State != budget.HoldActive || h.Key != "k1" {
		t.Fatalf("hold h1 = %+v, %v", h, err)
	}
}

func TestSQLiteBadRequests(t *testing.T) {
	testBadRequests(t, sqlstore.SQLite, openSQLite(sqltest.SQLitePath(t)))
}

func TestPostgresBadRequests(t *testing.T) {
	testBadRequests(t, sqlstore.Postgres, openPostgres(sqltest.PostgresSchema(t)))
}
