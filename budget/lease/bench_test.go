package lease_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/lease"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// run32 runs n calls of f over 32 goroutines and returns the elapsed time.
func run32(n int, f func(i int) error) (time.Duration, error) { return run(32, n, f) }

// run runs f(1) … f(n) over workers goroutines and returns the elapsed time
// or the first error.
func run(workers, n int, f func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Value
	start := time.Now()
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// BenchmarkLeasedReserveHot: leased reserve+commit on one hot scope by 32
// clients (file journal, group-commit fsync) against the same run's plain
// sqlstore Reserve on that scope; x-baseline is the throughput ratio.
func BenchmarkLeasedReserveHot(b *testing.B) {
	ctx := context.Background()
	db := sqltest.Postgres(b)
	store, err := sqlstore.New(ctx, db, sqlstore.Postgres, nil)
	if err != nil {
		b.Fatal(err)
	}
	lo := &budget.LedgerOptions{DefaultProviderCap: budget.USD(1 << 50)}
	ledger, err := budget.NewLedger(store, lo)
	if err != nil {
		b.Fatal(err)
	}
	scope := budget.Scope{Project: "hot", Provider: "acme"}
	const baseN = 2000
	base, err := run32(baseN, func(i int) error {
		_, err := ledger.Reserve(ctx, scope, budget.USD(1), fmt.Sprintf("base-%d-%d", b.N, i), nil)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	j, err := lease.OpenFileJournal(filepath.Join(b.TempDir(), "journal"))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	pool, err := lease.New(ctx, store, j, &lease.Options{Ledger: lo, Slice: 100000})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close(ctx)
	b.ResetTimer()
	el, err := run32(b.N, func(i int) error {
		h, err := pool.Reserve(ctx, scope, budget.USD(1), fmt.Sprintf("lease-%d-%d", b.N, i))
		if err != nil {
			return err
		}
		_, err = pool.Commit(ctx, h.ID, budget.USD(1))
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	leased := float64(b.N) / el.Seconds()
	baseline := float64(baseN) / base.Seconds()
	b.ReportMetric(leased, "leased-ops/s")
	b.ReportMetric(baseline, "baseline-ops/s")
	b.ReportMetric(leased/baseline, "x-baseline")
}

// BenchmarkFileJournalCompact: compacting a journal of 1,000 settled
// leases (5 records each) and 100 live ones, against replaying the same
// journal once in the same iteration (x-baseline): compaction reads it once
// and rewrites what is live, with two fsyncs and a rename.
func BenchmarkFileJournalCompact(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	var base, comp time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		j, err := lease.OpenFileJournal(filepath.Join(dir, fmt.Sprintf("j%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		for l := 0; l < 1100; l++ {
			key := fmt.Sprintf("lease:i:%d", l)
			recs := []lease.Record{
				{Kind: lease.KindLease, LeaseKey: key, Scope: budget.Scope{Project: "p", Provider: "acme"}, Amount: 1000, Currency: "USD"},
				{Kind: lease.KindGranted, LeaseKey: key, LeaseID: "hold_" + key, ExpiresAt: time.Unix(1e9, 0)},
				{Kind: lease.KindReserve, LeaseKey: key, Sub: "lsub_" + key, Amount: 10},
				{Kind: lease.KindCommit, LeaseKey: key, Sub: "lsub_" + key, Amount: 7},
			}
			if l < 1000 {
				recs = append(recs, lease.Record{Kind: lease.KindSettled, LeaseKey: key, Amount: 7})
			}
			for _, r := range recs {
				if err := j.Append(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		}
		t0 := time.Now()
		if err := j.Replay(ctx, func(lease.Record) error { return nil }); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		b.StartTimer()
		n, err := j.Compact(ctx)
		b.StopTimer()
		comp += time.Since(t1)
		base += t1.Sub(t0)
		if err != nil || n != 5000 {
			b.Fatalf("Compact = %d, %v; want 5000 dropped", n, err)
		}
		j.Close()
	}
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "replay-ns/op")
	b.ReportMetric(float64(comp)/float64(base), "x-baseline")
}
