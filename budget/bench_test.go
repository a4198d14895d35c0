package budget_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// baseline is the least a cap needs: one mutex over a map of counters and a
// map of holds by key; reserve looks the counter up, checks and adds, and
// keeps the hold; commit finds the hold, checks it is open and the amount
// fits, and gives back the difference. It keeps every hold, as the Ledger
// does. The Ledger over the MemoryStore does the same work plus validation,
// store-wide idempotency with replays, hold ids, six counters per hold
// (week, month, year × provider, project), caps looked up per counter,
// expiry and alerts.
type baseline struct {
	mu       sync.Mutex
	counters map[string]int64
	holds    map[string]*baseHold
	limit    int64
}

type baseHold struct {
	scope     string
	amount    int64
	committed bool
}

func newBaseline() *baseline {
	return &baseline{counters: map[string]int64{}, holds: map[string]*baseHold{}, limit: 1 << 60}
}

func (b *baseline) reserve(scope, key string, amount int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.counters[scope]+amount > b.limit {
		return false
	}
	b.counters[scope] += amount
	b.holds[key] = &baseHold{scope: scope, amount: amount}
	return true
}

func (b *baseline) commit(key string, actual int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.holds[key]
	if h == nil || h.committed || actual < 0 || actual > h.amount {
		return false
	}
	b.counters[h.scope] -= h.amount - actual
	h.committed = true
	return true
}

// benchLedger is a Ledger with caps too high to refuse anything, on a
// clock that returns a fixed instant: reading the real clock costs what
// the platform makes it cost (about 120 ns a call on a loaded 2-core VM,
// two calls per reserve and commit), which is no part of the Ledger's
// work and which the baseline does not pay either.
func benchLedger(b *testing.B) *budget.Ledger {
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	l, err := budget.NewLedger(budget.NewMemoryStore(nil), &budget.LedgerOptions{
		DefaultProviderCap: budget.USD(1 << 60),
		Now:                func() time.Time { return now },
	})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkReserveCommit measures one reserve plus one commit through a
// Ledger on a MemoryStore against the baseline doing the same in the same
// run. The two alternate in chunks so that load from other processes hits
// both alike. It reports wall ns/op of the Ledger, baseline-ns/op and their
// ratio x-baseline, and the same in process CPU time (cpu-x-baseline), which
// is the figure to read on a loaded machine. Target: within 2.
func BenchmarkReserveCommit(b *testing.B) {
	for _, keys := range []struct {
		name string
		n    int
	}{{"hot", 1}, {"10k-keys", 10000}} {
		projects := make([]string, keys.n)
		for i := range projects {
			projects[i] = "p" + strconv.Itoa(i)
		}
		for _, par := range []bool{false, true} {
			name := keys.name + "/serial"
			if par {
				name = keys.name + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				base := newBaseline()
				l := benchLedger(b)
				baseOp := func(i int) {
					k := "k" + strconv.Itoa(i)
					if !base.reserve(projects[i%len(projects)], k, 100) {
						panic("baseline refused")
					}
					if !base.commit(k, 60) {
						panic("baseline commit refused")
					}
				}
				ledgerOp := func(i int) {
					h, err := l.Reserve(ctx, budget.Scope{Project: projects[i%len(projects)], Provider: "acme"}, budget.USD(100), "k"+strconv.Itoa(i), nil)
					if err != nil {
						panic(err)
					}
					if _, err := l.Commit(ctx, h.ID, budget.USD(60)); err != nil {
						panic(err)
					}
				}
				paired(b, par, baseOp, ledgerOp)
			})
		}
	}
}

// paired runs b.N operations of each function, alternating in chunks, over
// GOMAXPROCS goroutines when par is set, and reports the timings.
func paired(b *testing.B, par bool, baseOp, op func(i int)) {
	procs := 1
	if par {
		procs = runtime.GOMAXPROCS(0)
	}
	run := func(from, to int, f func(int)) time.Duration {
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		t0 := time.Now()
		for g := 0; g < procs; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= to {
						return
					}
					f(i)
				}
			}()
		}
		wg.Wait()
		return time.Since(t0)
	}
	const chunk = 2000
	var baseT, opT, baseCPU, opCPU time.Duration
	b.ResetTimer()
	for from := 0; from < b.N; from += chunk {
		to := min(from+chunk, b.N)
		c0 := cpuTime()
		baseT += run(from, to, baseOp)
		c1 := cpuTime()
		opT += run(from, to, op)
		c2 := cpuTime()
		baseCPU += c1 - c0
		opCPU += c2 - c1
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(opT.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(baseT.Nanoseconds())/n, "baseline-ns/op")
	b.ReportMetric(float64(opT)/float64(baseT), "x-baseline")
	if baseCPU > 0 {
		// CPU time (GC included) is what load from other processes does
		// not inflate; this is the ratio to read on a shared machine.
		b.ReportMetric(float64(opCPU.Nanoseconds())/n, "cpu-ns/op")
		b.ReportMetric(float64(baseCPU.Nanoseconds())/n, "baseline-cpu-ns/op")
		b.ReportMetric(float64(opCPU)/float64(baseCPU), "cpu-x-baseline")
	}
}
