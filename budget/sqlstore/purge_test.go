package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

func TestSQLitePurge(t *testing.T) {
	db, err := openSQLite(sqltest.SQLitePath(t))()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testPurge(t, db, sqlstore.SQLite, "agentprov_")
}

func TestPostgresPurge(t *testing.T) {
	dsn := sqltest.PostgresSchema(t)
	db, err := openPostgres(dsn)()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testPurge(t, db, sqlstore.Postgres, "ap_")
}

// testPurge runs a month of activity, purges it and checks that every
// figure the Ledger reports is unchanged while the ended rows are gone.
func testPurge(t *testing.T, db *sql.DB, d sqlstore.Dialect, prefix string) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := sqlstore.New(ctx, db, d, &sqlstore.Options{TablePrefix: prefix, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	ledger, err := budget.NewLedger(store, &budget.LedgerOptions{
		Now:               clock,
		DefaultProjectCap: ptr(budget.USD(6000)),
		ProjectPeriod:     budget.Year,
		MaxTTL:            60 * 24 * time.Hour,
		Alerts:            func(context.Context, budget.Alert) { alerts++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{Project: "app", Provider: "acme"}
	idle := budget.Scope{Project: "idle", Provider: "acme"}
	short := &budget.ReserveOptions{TTL: time.Minute}
	must := func(h budget.Hold, err error) budget.Hold {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	// A hold in a project nobody touches again: it expires on 10 January
	// but stays active in the database (holds are reclaimed lazily, per
	// project), so its amount is still in the counters.
	now = time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	unreclaimed := must(ledger.Reserve(ctx, idle, budget.USD(700), "idle-1", short))

	// January: per day 12 commits, 12 releases, 12 expiries (1,116 holds,
	// more than one purge batch) and a usage report.
	var ended []budget.Hold
	for day := 1; day <= 31; day++ {
		now = time.Date(2026, 1, day, 9, 0, 0, 0, time.UTC)
		for i := 0; i < 12; i++ {
			h := must(ledger.Reserve(ctx, scope, budget.USD(20), fmt.Sprintf("c-%d-%d", day, i), short))
			ended = append(ended, must(ledger.Commit(ctx, h.ID, budget.USD(10))))
			h = must(ledger.Reserve(ctx, scope, budget.USD(20), fmt.Sprintf("r-%d-%d", day, i), short))
			ended = append(ended, must(ledger.Release(ctx, h.ID)))
			ended = append(ended, must(ledger.Reserve(ctx, scope, budget.USD(20), fmt.Sprintf("e-%d-%d", day, i), short)))
		}
		if _, err := ledger.ReportUsage(ctx, budget.UsageReport{Key: fmt.Sprintf("u-%d", day), Scope: scope, Amount: budget.USD(50)}); err != nil {
			t.Fatal(err)
		}
	}
	// After the cutoff: an ended hold, a usage entry and a hold active
	// through the purge.
	now = time.Date(2026, 2, 20, 9, 0, 0, 0, time.UTC)
	late := must(ledger.Reserve(ctx, scope, budget.USD(30), "late", short))
	late = must(ledger.Commit(ctx, late.ID, budget.USD(30)))
	if _, err := ledger.ReportUsage(ctx, budget.UsageReport{Key: "u-late", Scope: scope, Amount: budget.USD(40)}); err != nil {
		t.Fatal(err)
	}
	now = time.Date(2026, 3, 15, 9, 0, 0, 0, time.UTC)
	active := must(ledger.Reserve(ctx, scope, budget.USD(500), "active", &budget.ReserveOptions{TTL: 40 * 24 * time.Hour}))

	type figures struct {
		Usage         budget.ScopeUsage
		Month, Year   []budget.CounterUsage
		Week, Project []budget.CounterUsage
	}
	snapshot := func() figures {
		t.Helper()
		var f figures
		var err error
		if f.Usage, err = ledger.Usage(ctx, scope); err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			dst      *[]budget.CounterUsage
			provider string
			p        budget.Period
		}{{&f.Month, "acme", budget.Month}, {&f.Week, "acme", budget.Week}, {&f.Year, "acme", budget.Year}, {&f.Project, "", budget.Year}} {
			if *x.dst, err = ledger.SpendHistory(ctx, scope.Project, x.provider, x.p); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	before := snapshot()
	alertsBefore := alerts

	rows := func(table string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+prefix+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	holdsBefore, linksBefore := rows("budget_holds"), rows("budget_hold_counters")

	// A cutoff within MinPurgeAge of now is refused and deletes nothing.
	_, err = store.Purge(ctx, now.Add(-sqlstore.MinPurgeAge+time.Second))
	var ce *sqlstore.CutoffError
	if !errors.Is(err, sqlstore.ErrCutoffTooRecent) || !errors.As(err, &ce) || !ce.Latest.Equal(now.Add(-sqlstore.MinPurgeAge)) {
		t.Fatalf("recent cutoff: got %v, want a *CutoffError", err)
	}
	if got := rows("budget_holds"); got != holdsBefore {
		t.Fatalf("refused purge deleted holds: %d → %d", holdsBefore, got)
	}

	cutoff := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
	st, err := store.Purge(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if st.Holds != int64(len(ended)) || st.UsageEntries != 31 {
		t.Errorf("purged %+v, want %d holds and 31 usage entries", st, len(ended))
	}
	if got := rows("budget_holds"); got != holdsBefore-len(ended) || int64(got) != int64(holdsBefore)-st.Holds {
		t.Errorf("holds: %d left of %d, purge reported %d", got, holdsBefore, st.Holds)
	}
	// SQLite links holds to their counters in hold_counters; PostgreSQL
	// keeps the list in the hold row and writes no links.
	if got := rows("budget_hold_counters"); int64(got) != int64(linksBefore)-st.HoldLinks || (st.HoldLinks == 0) != (d == sqlstore.Postgres) {
		t.Errorf("links: %d left of %d, purge reported %d", got, linksBefore, st.HoldLinks)
	}
	if got := rows("budget_usage"); got != 1 {
		t.Errorf("usage entries left: %d, want 1", got)
	}
	// January's week and month marks go; the year's stays, since 2026 is
	// still open and its alert must not fire twice.
	kr, err := db.QueryContext(ctx, `SELECT alert_key FROM `+prefix+`budget_alerts`)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for kr.Next() {
		var k string
		if err := kr.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	kr.Close()
	if st.AlertMarks == 0 || len(keys) == 0 {
		t.Errorf("alert marks: purged %d, kept %q", st.AlertMarks, keys)
	}
	for _, k := range keys {
		if strings.Contains(k, "/month:2026-01/") || strings.Contains(k, "/week:2026-W0") || !strings.HasPrefix(k, "alert:app/") {
			t.Errorf("alert mark %q of a closed window survived", k)
		}
	}

	if diff := cmp.Diff(before, snapshot()); diff != "" {
		t.Errorf("figures changed by the purge (-before +after):\n%s", diff)
	}
	for _, h := range ended[:3] {
		if _, err := ledger.Hold(ctx, h.ID); !errors.Is(err, budget.ErrHoldNotFound) {
			t.Errorf("hold %s (%s) after purge: %v, want ErrHoldNotFound", h.Key, h.State, err)
		}
	}
	for _, h := range []budget.Hold{late, active} {
		got, err := ledger.Hold(ctx, h.ID)
		if err != nil || got.State != h.State {
			t.Errorf("hold %s after purge: %v %v, want %s", h.Key, got.State, err, h.State)
		}
	}
	// The expired but unreclaimed hold survived and still gives its
	// amount back when reclaimed.
	if got, err := ledger.Hold(ctx, unreclaimed.ID); err != nil || got.State != budget.HoldExpired {
		t.Errorf("unreclaimed hold: %v %v, want expired", got.State, err)
	}
	jan, err := ledger.SpendHistory(ctx, idle.Project, idle.Provider, budget.Month)
	if err != nil || len(jan) != 1 || jan[0].Held != 0 {
		t.Errorf("idle project after reclaim: %+v %v, want nothing held", jan, err)
	}
	// The year alert already delivered is not delivered again.
	now = now.Add(time.Hour)
	if _, err := ledger.ReportUsage(ctx, budget.UsageReport{Key: "u-march", Scope: scope, Amount: budget.USD(1)}); err != nil {
		t.Fatal(err)
	}
	if alerts != alertsBefore {
		t.Errorf("alerts delivered after the purge: %d, want %d", alerts-alertsBefore, 0)
	}
	// Documented consequence: a purged key reserves anew.
	h, err := ledger.Reserve(ctx, scope, budget.USD(20), "c-1-0", short)
	if err != nil || h.ID == ended[0].ID || h.State != budget.HoldActive {
		t.Errorf("replayed purged key: %+v %v, want a new active hold", h, err)
	}

	// A second purge with the same cutoff finds only the idle hold, which
	// ended (expired on 10 January) once reclaimed; a third finds nothing.
	if st, err := store.Purge(ctx, cutoff); err != nil || st.Holds != 1 || st.UsageEntries != 0 || st.AlertMarks != 0 {
		t.Errorf("second purge: %+v %v, want the idle hold only", st, err)
	}
	if _, err := ledger.Hold(ctx, unreclaimed.ID); !errors.Is(err, budget.ErrHoldNotFound) {
		t.Errorf("idle hold after the second purge: %v, want ErrHoldNotFound", err)
	}
	if st, err := store.Purge(ctx, cutoff); err != nil || st != (sqlstore.PurgeStats{}) {
		t.Errorf("third purge: %+v %v, want nothing", st, err)
	}
}

func TestPurgeHonoursContext(t *testing.T) {
	db, err := openSQLite(sqltest.SQLitePath(t))()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := sqlstore.New(context.Background(), db, sqlstore.SQLite, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := store.Purge(ctx, time.Now().Add(-sqlstore.RecommendedPurgeAge)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled purge: %v, want context.Canceled", err)
	}
}

func ptr[T any](v T) *T { return &v }
