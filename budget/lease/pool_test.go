package lease_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/lease"
)

// TestRapidLeases: random reserve, commit, release, clock steps (with the
// settler's Settle) and crash+recover across 2–4 instances on one cap.
func TestRapidLeases(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		const capAmount = 3000
		now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		shared := budget.NewMemoryStore(nil)
		opts := &lease.Options{
			Ledger:   &budget.LedgerOptions{DefaultProviderCap: budget.USD(capAmount)},
			Slice:    rapid.Int64Range(50, 800).Draw(rt, "slice"),
			LeaseTTL: 10 * time.Minute, HoldTTL: 3 * time.Minute, Margin: 2 * time.Minute,
			SettleEvery: -1, Now: clock,
			IdleAfter: time.Duration(rapid.IntRange(-1, 90).Draw(rt, "idleSecs")) * time.Second,
		}
		scope := budget.Scope{Project: "hot", Provider: "acme"}
		n := rapid.IntRange(2, 4).Draw(rt, "instances")
		journals := make([]*lease.MemoryJournal, n)
		pools := make([]*lease.Pool, n)
		open := func(i int) {
			p, err := lease.New(ctx, shared, journals[i], opts)
			if err != nil {
				rt.Fatalf("New: %v", err)
			}
			pools[i] = p
		}
		for i := range pools {
			journals[i] = lease.NewMemoryJournal()
			open(i)
		}
		type held struct {
			pool int
			id   string
		}
		var live []held
		committed := map[string]int64{}
		var reported int64
		seq := 0
		spent := func() budget.CounterUsage {
			u, err := pools[0].Ledger().Usage(ctx, scope)
			if err != nil {
				rt.Fatal(err)
			}
			return u.Counters[1]
		}
		steps := rapid.IntRange(10, 120).Draw(rt, "steps")
		for step := 0; step < steps; step++ {
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0, 1, 2, 3:
				i := rapid.IntRange(0, n-1).Draw(rt, "pool")
				seq++
				amt := rapid.Int64Range(1, 1000).Draw(rt, "amount")
				h, err := pools[i].Reserve(ctx, scope, budget.USD(amt), "k"+string(rune('a'+i))+itoa(seq))
				if err == nil {
					live = append(live, held{i, h.ID})
				} else if !errors.Is(err, budget.ErrCapExceeded) {
					rt.Fatalf("reserve: %v", err)
				}
			case 4, 5, 6:
				if len(live) == 0 {
					continue
				}
				k := rapid.IntRange(0, len(live)-1).Draw(rt, "hold")
				hd := live[k]
				actual := rapid.Int64Range(0, 10).Draw(rt, "actual")
				h, err := pools[hd.pool].Commit(ctx, hd.id, budget.USD(actual))
				if err == nil {
					if prev, ok := committed[hd.id]; ok {
						if prev != actual || h.Committed.Amount != prev {
							rt.Fatalf("hold %s committed twice: %d then %d", hd.id, prev, actual)
						}
						continue
					}
					committed[hd.id] = actual
					reported += actual
				}
			case 7:
				if len(live) == 0 {
					continue
				}
				k := rapid.IntRange(0, len(live)-1).Draw(rt, "hold")
				_, _ = pools[live[k].pool].Release(ctx, live[k].id)
				live = append(live[:k], live[k+1:]...)
			case 8:
				now = now.Add(time.Duration(rapid.Int64Range(1, 60).Draw(rt, "secs")) * time.Second)
				for _, p := range pools {
					if err := p.Settle(ctx); err != nil {
						rt.Fatalf("settle: %v", err)
					}
				}
			case 9:
				i := rapid.IntRange(0, n-1).Draw(rt, "crash")
				open(i) // the old Pool is dropped without Close: kill -9
				kept := live[:0]
				for _, hd := range live {
					if hd.pool != i {
						kept = append(kept, hd)
					}
				}
				live = kept
			}
			if reported > capAmount {
				rt.Fatalf("reported committed %d exceeds cap %d", reported, capAmount)
			}
			if c := spent(); c.Used() > capAmount || c.Committed > reported {
				rt.Fatalf("store: %+v, reported %d", c, reported)
			}
		}
		for _, hd := range live {
			if _, err := pools[hd.pool].Release(ctx, hd.id); err != nil && !errors.Is(err, budget.ErrHoldNotFound) && !errors.Is(err, budget.ErrHoldEnded) {
				rt.Fatalf("release %s: %v", hd.id, err)
			}
		}
		for _, p := range pools {
			if err := p.Close(ctx); err != nil {
				rt.Fatalf("close: %v", err)
			}
		}
		now = now.Add(time.Hour) // direct holds of crashed instances expire
		if c := spent(); c.Committed != reported || c.Held != 0 || c.Arrears != 0 {
			rt.Fatalf("after close store has %+v; reported committed %d", c, reported)
		}
	})
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

// TestJournalFailure: once the journal fails, a reservation is refused
// (ErrStore, nothing granted, nothing new held in the store), a commit is
// refused, and nothing reported before is lost: the store ends with
// exactly the commits reported while the journal worked.
func TestJournalFailure(t *testing.T) {
	ctx := context.Background()
	shared := budget.NewMemoryStore(nil)
	j := lease.NewMemoryJournal()
	opts := &lease.Options{Slice: 100, SettleEvery: -1}
	p, err := lease.New(ctx, shared, j, opts)
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{Project: "hot", Provider: "acme"}
	h1, err := p.Reserve(ctx, scope, budget.USD(40), "k1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctx, h1.ID, budget.USD(30)); err != nil {
		t.Fatal(err)
	}
	h2, err := p.Reserve(ctx, scope, budget.USD(20), "k2")
	if err != nil {
		t.Fatal(err)
	}
	held := func() budget.CounterUsage {
		u, err := p.Ledger().Usage(ctx, scope)
		if err != nil {
			t.Fatal(err)
		}
		return u.Counters[1]
	}
	before := held()

	j.Fail(errors.New("disk gone"))
	// From the current slice and beyond it (a new lease needs the journal).
	for _, amt := range []int64{10, 90} {
		if h, err := p.Reserve(ctx, scope, budget.USD(amt), "k-fail-"+itoa(int(amt))); !errors.Is(err, budget.ErrStore) || h.ID != "" {
			t.Fatalf("reserve %d with a failed journal = %+v, %v; want ErrStore and no hold", amt, h, err)
		}
	}
	if _, err := p.Commit(ctx, h2.ID, budget.USD(20)); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("commit with a failed journal: %v; want ErrStore", err)
	}
	if c := held(); c.Committed != before.Committed || c.Held != before.Held || c.Arrears != before.Arrears {
		t.Fatalf("store changed while the journal failed: %+v, was %+v", c, before)
	}
	// Crash now: the journal is all that survives, and it works again.
	j.Fail(nil)
	if _, err := lease.Recover(ctx, shared, j, opts); err != nil {
		t.Fatal(err)
	}
	if c := held(); c.Committed != 30 || c.Held != 0 || c.Arrears != 0 {
		t.Fatalf("after recovery the store has %+v; want exactly the reported 30 committed", c)
	}
}

// TestIdleLeaseReturnsRoom: an instance that stops using a scope gives its
// unused slice back after IdleAfter, so another instance is not refused for
// room nothing spends; with IdleAfter negative the slice stays pinned.
func TestIdleLeaseReturnsRoom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		idle    time.Duration
		settled bool
	}{{"default", 0, true}, {"never", -1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			opts := &lease.Options{
				Ledger:      &budget.LedgerOptions{DefaultProviderCap: budget.USD(1000)},
				Slice:       800,
				SettleEvery: -1, IdleAfter: tc.idle,
				Now: func() time.Time { return now },
			}
			shared := budget.NewMemoryStore(nil)
			a, err := lease.New(ctx, shared, lease.NewMemoryJournal(), opts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := lease.New(ctx, shared, lease.NewMemoryJournal(), opts)
			if err != nil {
				t.Fatal(err)
			}
			scope := budget.Scope{Project: "p", Provider: "acme"}
			h, err := a.Reserve(ctx, scope, budget.USD(100), "a1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Commit(ctx, h.ID, budget.USD(100)); err != nil {
				t.Fatal(err)
			}
			// A's lease of 800 pins the room: 200 is left for B.
			if _, err := b.Reserve(ctx, scope, budget.USD(500), "b1"); !errors.Is(err, budget.ErrCapExceeded) {
				t.Fatalf("B while A's lease is live: %v, want cap_exceeded", err)
			}
			now = now.Add(time.Minute - time.Second) // DefaultIdleAfter is a minute
			if err := a.Settle(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Reserve(ctx, scope, budget.USD(500), "b2"); !errors.Is(err, budget.ErrCapExceeded) {
				t.Fatalf("B before A's lease is idle for IdleAfter: %v, want cap_exceeded", err)
			}
			now = now.Add(time.Second)
			if err := a.Settle(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = b.Reserve(ctx, scope, budget.USD(500), "b3")
			if tc.settled && err != nil {
				t.Fatalf("B after A's lease was idle for IdleAfter: %v, want a hold", err)
			}
			if !tc.settled && !errors.Is(err, budget.ErrCapExceeded) {
				t.Fatalf("B with IdleAfter < 0: %v, want cap_exceeded (the slice stays pinned)", err)
			}
			u, err := a.Ledger().Usage(ctx, scope)
			if err != nil {
				t.Fatal(err)
			}
			c := u.Counters[1]
			if tc.settled && (c.Committed != 100 || c.Held != 800) {
				t.Fatalf("store %+v: want A's 100 committed and B's lease of 800 held", c)
			}
			if !tc.settled && (c.Committed != 0 || c.Held != 800) {
				t.Fatalf("store %+v: want A's lease of 800 held, nothing settled", c)
			}
			// A reserves again after its lease was settled: a new lease.
			if _, err := a.Reserve(ctx, scope, budget.USD(50), "a2"); err != nil && tc.settled {
				t.Fatalf("A after its idle lease was settled: %v", err)
			}
		})
	}
}

// TestPoolCompactsJournal: a Pool over a FileJournal keeps the journal
// about as large as what is live, and compaction loses nothing: a crash
// after it still recovers every reported commit.
func TestPoolCompactsJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal")
	shared := budget.NewMemoryStore(nil)
	opts := &lease.Options{
		Ledger:      &budget.LedgerOptions{DefaultProviderCap: budget.USD(1 << 40)},
		Slice:       10, // every reservation of 10 takes a new lease
		SettleEvery: -1, CompactAfter: 4,
	}
	j, err := lease.OpenFileJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := lease.New(ctx, shared, j, opts)
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{Project: "p", Provider: "acme"}
	records := func() int {
		n := 0
		if err := j.Replay(ctx, func(lease.Record) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	most := 0
	for i := 0; i < 40; i++ {
		h, err := p.Reserve(ctx, scope, budget.USD(10), fmt.Sprintf("k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Commit(ctx, h.ID, budget.USD(7)); err != nil {
			t.Fatal(err)
		}
		if err := p.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		most = max(most, records())
	}
	// A lease's life is 5 records (lease, granted, reserve, commit,
	// settled); 40 of them without compaction would be 200.
	if most > 5*(4+2) {
		t.Fatalf("the journal reached %d records with CompactAfter 4; want it compacted", most)
	}
	// One more commit in a live lease, then kill -9: no Close.
	h, err := p.Reserve(ctx, scope, budget.USD(10), "last")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctx, h.ID, budget.USD(3)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j, err = lease.OpenFileJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	p, err = lease.New(ctx, shared, j, opts) // recovers, then compacts
	if err != nil {
		t.Fatal(err)
	}
	if n := records(); n != 0 {
		t.Fatalf("%d records left after recovery and compaction, want 0", n)
	}
	u, err := p.Ledger().Usage(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	if c := u.Counters[1]; c.Committed != 40*7+3 || c.Held != 0 {
		t.Fatalf("store %+v: want %d committed and nothing held", c, 40*7+3)
	}
}
