package lease_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/lease"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// The multi-process benchmark: benchProcs OS processes × benchWorkers
// goroutines reserve and commit on one hot scope of one PostgreSQL schema.
// Each child sets up, says "ready", waits for "go" on stdin, runs its share
// and says "done"; the parent times from the first "go" to the last "done",
// so process start-up, connection set-up and a Pool's first lease are
// outside the measured interval for both modes alike.

const (
	envBenchMode    = "AGENTPROV_LEASE_BENCH" // "update", "baseline" or "leased"
	envBenchDSN     = "AGENTPROV_LEASE_BENCH_DSN"
	envBenchJournal = "AGENTPROV_LEASE_BENCH_JOURNAL"
	envBenchOps     = "AGENTPROV_LEASE_BENCH_OPS"
	envBenchTag     = "AGENTPROV_LEASE_BENCH_TAG"

	benchProcs   = 4
	benchWorkers = 32
	benchConns   = 4 // per process, as in the kill test: the server is shared
	benchSlice   = 100000
)

var benchLedger = &budget.LedgerOptions{DefaultProviderCap: budget.USD(1 << 50)}

// TestLeaseBenchProcess is a child of BenchmarkLeasedHotProcesses; it does
// nothing otherwise.
func TestLeaseBenchProcess(t *testing.T) {
	mode := os.Getenv(envBenchMode)
	if mode == "" {
		t.Skip("helper process for BenchmarkLeasedHotProcesses")
	}
	ops, err := strconv.Atoi(os.Getenv(envBenchOps))
	if err != nil {
		t.Fatal(err)
	}
	tag := os.Getenv(envBenchTag)
	ctx := context.Background()
	db := sqltest.OpenPostgres(t, os.Getenv(envBenchDSN))
	db.SetMaxOpenConns(benchConns)
	store, err := sqlstore.New(ctx, db, sqlstore.Postgres, nil)
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{Project: "hot-" + mode, Provider: "acme"}
	var op func(i int) error
	var closeFn func() error
	switch mode {
	case "update": // one durable single-row UPDATE: the row's ceiling
		op = func(int) error {
			_, err := db.ExecContext(ctx, `UPDATE lease_bench_row SET n = n + 1 WHERE id = 1`)
			return err
		}
		closeFn = func() error { return nil }
	case "baseline":
		ledger, err := budget.NewLedger(store, benchLedger)
		if err != nil {
			t.Fatal(err)
		}
		op = func(i int) error {
			h, err := ledger.Reserve(ctx, scope, budget.USD(1), fmt.Sprintf("%s-%d", tag, i), nil)
			if err != nil {
				return err
			}
			_, err = ledger.Commit(ctx, h.ID, budget.USD(1))
			return err
		}
		closeFn = func() error { return nil }
	case "leased":
		j, err := lease.OpenFileJournal(os.Getenv(envBenchJournal))
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		pool, err := lease.New(ctx, store, j, &lease.Options{Ledger: benchLedger, Slice: benchSlice, Instance: tag})
		if err != nil {
			t.Fatal(err)
		}
		op = func(i int) error {
			h, err := pool.Reserve(ctx, scope, budget.USD(1), fmt.Sprintf("%s-%d", tag, i))
			if err != nil {
				return err
			}
			_, err = pool.Commit(ctx, h.ID, budget.USD(1))
			return err
		}
		// The first lease is taken before "ready", as a long-running
		// instance would have it.
		if err := op(0); err != nil {
			t.Fatal(err)
		}
		closeFn = func() error { return pool.Close(ctx) }
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		t.Fatal("no go")
	}
	if _, err := run(benchWorkers, ops, op); err != nil {
		t.Fatal(err)
	}
	fmt.Println("done")
	// Settling the leases is after "done": it is the end of the instance,
	// not part of its reservations. The parent checks it happened.
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
}

// runProcesses starts benchProcs children in mode, each doing ops
// reservations, and returns the time from "go" to the last "done" after all
// children exited cleanly.
func runProcesses(b *testing.B, mode, dsn, dir string, ops int) time.Duration {
	b.Helper()
	type child struct {
		cmd   *exec.Cmd
		in    *os.File
		lines chan string
		out   strings.Builder
	}
	children := make([]*child, benchProcs)
	for i := range children {
		tag := fmt.Sprintf("%s-%d-%d-p%d", mode, b.N, time.Now().UnixNano(), i)
		cmd := exec.Command(os.Args[0], "-test.run=^TestLeaseBenchProcess$", "-test.bench=^$", "-test.count=1")
		cmd.Env = append(os.Environ(), envBenchMode+"="+mode, envBenchDSN+"="+dsn,
			envBenchJournal+"="+filepath.Join(dir, tag+".journal"), envBenchOps+"="+strconv.Itoa(ops), envBenchTag+"="+tag)
		cmd.Stderr = os.Stderr
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stdin = r
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		r.Close()
		c := &child{cmd: cmd, in: w, lines: make(chan string, 16)}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
			close(c.lines)
		}()
		children[i] = c
	}
	await := func(c *child, want string) {
		for line := range c.lines {
			if line == want {
				return
			}
			c.out.WriteString(line + "\n")
		}
		c.cmd.Wait()
		b.Fatalf("%s child exited before %q:\n%s", mode, want, c.out.String())
	}
	for _, c := range children {
		await(c, "ready")
	}
	start := time.Now()
	for _, c := range children {
		if _, err := c.in.WriteString("go\n"); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range children {
		await(c, "done")
	}
	elapsed := time.Since(start)
	for _, c := range children {
		c.in.Close()
		for line := range c.lines {
			c.out.WriteString(line + "\n")
		}
		if err := c.cmd.Wait(); err != nil {
			b.Fatalf("%s child: %v\n%s", mode, err, c.out.String())
		}
	}
	return elapsed
}

// BenchmarkLeasedHotProcesses is the fleet case of one hot cap: 4 processes
// × 32 goroutines, each process with 4 connections to one PostgreSQL,
// reserve and commit 1 minor unit at a time on one scope. The subject is a
// lease.Pool per process, each with its own fsync'd FileJournal (b.N
// operations). Two baselines run from the same 4 processes in the same
// run, min(b.N, 2000) operations each: plain Ledger Reserve+Commit against
// the shared rows (x-baseline), and a bare durable UPDATE of one row, the
// ceiling of anything that writes one hot row per operation (x-update).
// After each run the store must have committed exactly the operations done.
func BenchmarkLeasedHotProcesses(b *testing.B) {
	dsn := sqltest.PostgresSchema(b) // skips unless AGENTPROV_TEST_POSTGRES is set
	ctx := context.Background()
	admin := sqltest.OpenPostgres(b, dsn)
	store, err := sqlstore.New(ctx, admin, sqlstore.Postgres, nil) // the tables, once
	if err != nil {
		b.Fatal(err)
	}
	ledger, err := budget.NewLedger(store, benchLedger)
	if err != nil {
		b.Fatal(err)
	}
	committed := func(mode string) int64 {
		u, err := ledger.Usage(ctx, budget.Scope{Project: "hot-" + mode, Provider: "acme"})
		if err != nil {
			b.Fatal(err)
		}
		return u.Counters[1].Committed // the provider's month
	}
	perProc := func(n int) int { return max(1, (n+benchProcs-1)/benchProcs) }
	dir := b.TempDir()

	if _, err := admin.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS lease_bench_row (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, `INSERT INTO lease_bench_row VALUES (1, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
		b.Fatal(err)
	}

	b.StopTimer()
	baseOps := perProc(min(b.N, 2000))
	upd := runProcesses(b, "update", dsn, dir, baseOps)
	before := committed("baseline")
	base := runProcesses(b, "baseline", dsn, dir, baseOps)
	if got := committed("baseline") - before; got != int64(baseOps*benchProcs) {
		b.Fatalf("baseline committed %d, want %d", got, baseOps*benchProcs)
	}

	leaseOps := perProc(b.N)
	before = committed("leased")
	b.StartTimer()
	el := runProcesses(b, "leased", dsn, dir, leaseOps)
	b.StopTimer()
	// +1 per process: the warm-up reservation before "ready".
	if got, want := committed("leased")-before, int64((leaseOps+1)*benchProcs); got != want {
		b.Fatalf("leased committed %d after the pools closed, want %d", got, want)
	}

	leased := float64(leaseOps*benchProcs) / el.Seconds()
	baseline := float64(baseOps*benchProcs) / base.Seconds()
	b.ReportMetric(leased, "leased-ops/s")
	b.ReportMetric(baseline, "baseline-ops/s")
	update := float64(baseOps*benchProcs) / upd.Seconds()
	b.ReportMetric(update, "update-ops/s")
	b.ReportMetric(leased/baseline, "x-baseline")
	b.ReportMetric(leased/update, "x-update")
}
