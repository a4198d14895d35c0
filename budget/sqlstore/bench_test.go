package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// The benchmarks compare the store with baselines measured in the same run,
// through the same driver and pool: a bare SELECT 1 round trip and a bare
// durable single-row UPDATE (one commit, one WAL flush). They report ratios;
// they assert nothing about time.

type baseline struct {
	db *sql.DB
}

func newBaseline(tb testing.TB, db *sql.DB) *baseline {
	tb.Helper()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS bench_baseline (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO bench_baseline (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
		tb.Fatal(err)
	}
	return &baseline{db: db}
}

func (bl *baseline) selectOne(ctx context.Context) error {
	var one int
	return bl.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

func (bl *baseline) update(ctx context.Context) error {
	_, err := bl.db.ExecContext(ctx, `UPDATE bench_baseline SET n = n + 1 WHERE id = 1`)
	return err
}

// benchLedger returns a Ledger whose caps never refuse (the benchmark
// measures the reservation path, not refusals).
func benchLedger(tb testing.TB, db *sql.DB, d sqlstore.Dialect) *budget.Ledger {
	tb.Helper()
	s, err := sqlstore.New(context.Background(), db, d, nil)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := budget.NewLedger(s, &budget.LedgerOptions{DefaultProviderCap: budget.USD(1 << 50)})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

var benchSeq atomic.Int64

func benchKey() string { return fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), benchSeq.Add(1)) }

// serial times the three operations interleaved, so that drift in a
// shared machine's load hits them alike, and reports each and the ratios.
func serial(b *testing.B, bl *baseline, reserve func(context.Context) error, withSelect bool) {
	ctx := context.Background()
	var sel, upd, res time.Duration
	timed := func(d *time.Duration, f func(context.Context) error) {
		start := time.Now()
		if err := f(ctx); err != nil {
			b.Fatal(err)
		}
		*d += time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if withSelect {
			timed(&sel, bl.selectOne)
		}
		timed(&upd, bl.update)
		timed(&res, reserve)
	}
	n := float64(b.N)
	b.ReportMetric(float64(res.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(upd.Nanoseconds())/n, "update-ns/op")
	b.ReportMetric(float64(res)/float64(upd), "x-update")
	if withSelect {
		b.ReportMetric(float64(sel.Nanoseconds())/n, "select1-ns/op")
		b.ReportMetric(float64(res)/float64(sel), "x-select1")
	}
}

// BenchmarkPostgresReserve: one client, one reservation at a time, against
// SELECT 1 and a durable UPDATE.
func BenchmarkPostgresReserve(b *testing.B) {
	db := sqltest.Postgres(b)
	bl := newBaseline(b, db)
	l := benchLedger(b, db, sqlstore.Postgres)
	scope := budget.Scope{Project: "bench", Provider: "acme"}
	serial(b, bl, func(ctx context.Context) error {
		_, err := l.Reserve(ctx, scope, budget.USD(1), benchKey(), nil)
		return err
	}, true)
}

// BenchmarkPostgresReserveCommit: a reservation and its commit.
func BenchmarkPostgresReserveCommit(b *testing.B) {
	db := sqltest.Postgres(b)
	bl := newBaseline(b, db)
	l := benchLedger(b, db, sqlstore.Postgres)
	scope := budget.Scope{Project: "bench", Provider: "acme"}
	serial(b, bl, func(ctx context.Context) error {
		h, err := l.Reserve(ctx, scope, budget.USD(2), benchKey(), nil)
		if err != nil {
			return err
		}
		_, err = l.Commit(ctx, h.ID, budget.USD(1))
		return err
	}, true)
}

// parallel runs op n times from clients goroutines and returns the time.
func parallel(b *testing.B, n, clients int, op func(ctx context.Context, client int) error) time.Duration {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := op(ctx, c); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkPostgresReserveClients: throughput at 1, 8 and 32 concurrent
// clients, on one hot scope (every reservation updates the same counter
// rows) and on a scope per client, against SELECT 1 and a durable UPDATE
// of one row (the same row for all clients when the scope is hot, a row
// per client otherwise) at the same concurrency. The three run in
// alternating slices so that a shared machine's drift hits them alike.
func BenchmarkPostgresReserveClients(b *testing.B) {
	for _, clients := range []int{1, 8, 32} {
		for _, hot := range []bool{true, false} {
			name := fmt.Sprintf("clients=%d/scope=per-client", clients)
			if hot {
				name = fmt.Sprintf("clients=%d/scope=hot", clients)
			}
			b.Run(name, func(b *testing.B) {
				db := sqltest.Postgres(b)
				db.SetMaxOpenConns(clients)
				db.SetMaxIdleConns(clients)
				bl := newBaseline(b, db)
				for c := 0; c < clients; c++ {
					if _, err := db.Exec(`INSERT INTO bench_baseline (id, n) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING`, c); err != nil {
						b.Fatal(err)
					}
				}
				l := benchLedger(b, db, sqlstore.Postgres)
				slices := min(20, b.N)
				var took [3]time.Duration // SELECT 1, UPDATE, reserve
				ops := [3]func(ctx context.Context, c int) error{
					func(ctx context.Context, _ int) error { return bl.selectOne(ctx) },
					func(ctx context.Context, c int) error {
						row := 0
						if !hot {
							row = c
						}
						_, err := db.ExecContext(ctx, `UPDATE bench_baseline SET n = n + 1 WHERE id = $1`, row)
						return err
					},
					func(ctx context.Context, c int) error {
						scope := budget.Scope{Project: "bench", Provider: "acme"}
						if !hot {
							scope.Project = fmt.Sprintf("bench-%d", c)
						}
						_, err := l.Reserve(ctx, scope, budget.USD(1), benchKey(), nil)
						return err
					},
				}
				b.ResetTimer()
				for i := 0; i < slices; i++ {
					n := b.N / slices
					if i == 0 {
						n += b.N % slices
					}
					for j := 0; j < 3; j++ { // rotate the order slice by slice
						k := (i + j) % 3
						took[k] += parallel(b, n, clients, ops[k])
					}
				}
				sel, upd, res := took[0], took[1], took[2]
				perSec := func(d time.Duration) float64 { return float64(b.N) / d.Seconds() }
				b.ReportMetric(float64(res.Nanoseconds())/float64(b.N), "ns/op")
				b.ReportMetric(perSec(res), "reserves/s")
				b.ReportMetric(perSec(sel), "select1/s")
				b.ReportMetric(perSec(upd), "updates/s")
				b.ReportMetric(float64(res)/float64(upd), "x-update")
				b.ReportMetric(float64(res)/float64(sel), "x-select1")
			})
		}
	}
}

// BenchmarkSQLiteReserve: a reservation against a durable single-row
// UPDATE in the same database file (WAL, synchronous=FULL).
func BenchmarkSQLiteReserve(b *testing.B) {
	db := sqltest.SQLite(b, sqltest.SQLitePath(b))
	bl := newBaseline(b, db)
	l := benchLedger(b, db, sqlstore.SQLite)
	scope := budget.Scope{Project: "bench", Provider: "acme"}
	serial(b, bl, func(ctx context.Context) error {
		_, err := l.Reserve(ctx, scope, budget.USD(1), benchKey(), nil)
		return err
	}, false)
}
