package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/sqltest"
)

// baseline runs the reference operations the store is compared with: a bare
// SELECT 1 round trip and a bare durable single-row UPDATE, both through
// the same driver and pool as the store under test.
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

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func BenchmarkPostgresBaseline(b *testing.B) {
	db := sqltest.Postgres(b)
	bl := newBaseline(b, db)
	ctx := context.Background()
	var sel, upd time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := timed(func() error { return bl.selectOne(ctx) })
		if err != nil {
			b.Fatal(err)
		}
		sel += d
		d, err = timed(func() error { return bl.update(ctx) })
		if err != nil {
			b.Fatal(err)
		}
		upd += d
	}
	b.ReportMetric(float64(sel.Nanoseconds())/float64(b.N), "select1-ns/op")
	b.ReportMetric(float64(upd.Nanoseconds())/float64(b.N), "update-ns/op")
}
