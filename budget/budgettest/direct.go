package budgettest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// testStoreContract calls the Store directly for the parts of its contract
// that a Ledger never exercises on its own.
func testStoreContract(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := e.h.Store()
	scope := sc("direct", "acme")
	month := budget.Window("month:2026-11")
	ctr := func(provider string) budget.Counter {
		return budget.Counter{Project: "direct", Provider: provider, Window: month}
	}
	lim := func(n int64) *budget.Money { m := budget.USD(n); return &m }
	req := func(id, key string, amount int64, checks ...budget.CapCheck) *budget.ReserveRequest {
		return &budget.ReserveRequest{HoldID: id, Key: key, Scope: scope, Amount: budget.USD(amount), Checks: checks,
			Now: start, ExpiresAt: start.Add(time.Hour), RequestHash: fmt.Sprintf("h-%s-%d", key, amount)}
	}

	// No default and no stored cap: unlimited.
	h, replayed, err := s.Reserve(e.ctx, req("d1", "dk1", 1<<40, budget.CapCheck{Counter: ctr("acme")}))
	if err != nil || replayed || h.ID != "d1" || h.State != budget.HoldActive || h.Amount.Amount != 1<<40 {
		t.Fatalf("unlimited Reserve = %+v, %v, %v", h, replayed, err)
	}
	if _, err := s.Transition(e.ctx, &budget.TransitionRequest{HoldID: "d1", From: budget.HoldActive, To: budget.HoldReleased, Now: start}); err != nil {
		t.Fatal(err)
	}
	// The first failing check, in order, is reported.
	_, _, err = s.Reserve(e.ctx, req("d2", "dk2", 50,
		budget.CapCheck{Counter: ctr("acme"), Default: lim(100)},
		budget.CapCheck{Counter: ctr(""), Default: lim(10)},
		budget.CapCheck{Counter: budget.Counter{Project: "direct", Window: "year:2026"}, Default: lim(5)}))
	var ce *budget.CapError
	if !errors.As(err, &ce) || ce.Counter != ctr("") || ce.Limit.Amount != 10 || ce.Requested != 50 {
		t.Fatalf("Reserve over the second check: %v; want a *CapError on %v", err, ctr(""))
	}
	// A stored cap wins over the default.
	if _, err := s.SetCap(e.ctx, budget.CapRecord{Key: budget.CapKey{Project: "direct", Period: budget.Month}, Limit: budget.USD(60),
		By: budget.Principal{Kind: budget.PrincipalUser, ID: "u"}, At: start}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reserve(e.ctx, req("d3", "dk3", 50, budget.CapCheck{Counter: ctr(""), Default: lim(10)})); err != nil {
		t.Fatalf("Reserve under a stored cap above the default: %v", err)
	}
	u, err := s.Usage(e.ctx, []budget.CapCheck{{Counter: ctr(""), Default: lim(10)}, {Counter: ctr("acme")}}, start)
	if err != nil || len(u) != 2 || u[0].Limit == nil || u[0].Limit.Amount != 60 || u[0].Held != 50 || u[1].Limit != nil || u[1].Held != 0 {
		t.Fatalf("Usage = %+v, %v", u, err)
	}
	// No transition from active to reversed, nor from a final state.
	if _, err := s.Transition(e.ctx, &budget.TransitionRequest{HoldID: "d3", From: budget.HoldCommitted, To: budget.HoldReversed, Now: start}); !errors.Is(err, budget.ErrHoldEnded) {
		t.Fatalf("reverse of an active hold: %v; want ErrHoldEnded", err)
	}
	if _, err := s.Transition(e.ctx, &budget.TransitionRequest{HoldID: "d1", From: budget.HoldActive, To: budget.HoldCommitted, Actual: budget.USD(1), Now: start}); !errors.Is(err, budget.ErrHoldEnded) {
		t.Fatalf("commit of a released hold: %v; want ErrHoldEnded", err)
	}
	if _, err := s.Hold(e.ctx, "nope"); !errors.Is(err, budget.ErrHoldNotFound) {
		t.Fatalf("Hold(nope): %v; want ErrHoldNotFound", err)
	}
	// Windows lists oldest first and only the period asked.
	for i, m := range []string{"month:2026-12", "month:2026-10"} {
		r := req(fmt.Sprintf("w%d", i), fmt.Sprintf("wk%d", i), 1, budget.CapCheck{Counter: budget.Counter{Project: "direct", Provider: "acme", Window: budget.Window(m)}})
		if _, _, err := s.Reserve(e.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := s.Windows(e.ctx, "direct", "acme", budget.Month, start)
	if err != nil || len(ws) != 3 || ws[0].Counter.Window != "month:2026-10" || ws[1].Counter.Window != month || ws[2].Counter.Window != "month:2026-12" {
		t.Fatalf("Windows = %+v, %v", ws, err)
	}
	if ws, err := s.Windows(e.ctx, "direct", "acme", budget.Year, start); err != nil || len(ws) != 0 {
		t.Fatalf("Windows(year) = %+v, %v; want none", ws, err)
	}
	// SetCap fills Previous atomically; history is in order.
	rec, err := s.SetCap(e.ctx, budget.CapRecord{Key: budget.CapKey{Project: "direct", Period: budget.Month}, Limit: budget.USD(70),
		By: budget.Principal{Kind: budget.PrincipalUser, ID: "u"}, At: start.Add(time.Second)})
	if err != nil || rec.Previous == nil || rec.Previous.Amount != 60 {
		t.Fatalf("SetCap = %+v, %v; want previous 60", rec, err)
	}
	if hist, err := s.CapHistory(e.ctx, "direct"); err != nil || len(hist) != 2 || hist[0].Previous != nil || hist[1].Limit.Amount != 70 {
		t.Fatalf("CapHistory = %+v, %v", hist, err)
	}
	if hist, err := s.CapHistory(e.ctx, "nobody"); err != nil || len(hist) != 0 {
		t.Fatalf("CapHistory(nobody) = %+v, %v", hist, err)
	}
}

func testConcurrentMarks(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := e.h.Store()
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, err := s.MarkAlert(e.ctx, "alert:x/y/month:2026-11/80", start)
			if err != nil {
				t.Errorf("MarkAlert: %v", err)
			}
			if first {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := firsts.Load(); n != 1 {
		t.Fatalf("%d callers were first to mark one alert; want 1", n)
	}
}

func testConcurrentUsage(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	var wg sync.WaitGroup
	var applied atomic.Int64
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the reports share one key; the rest are distinct.
			key := "same"
			if i%2 == 1 {
				key = fmt.Sprintf("u%d", i)
			}
			r, err := e.l.ReportUsage(e.ctx, budget.UsageReport{Key: key, Scope: s, Amount: budget.USD(10), At: start})
			if err != nil {
				t.Errorf("ReportUsage: %v", err)
				return
			}
			if !r.Replayed {
				applied.Add(1)
			}
		}()
	}
	wg.Wait()
	if applied.Load() != 17 {
		t.Fatalf("%d reports applied; want 17 (16 distinct keys and one shared)", applied.Load())
	}
	e.wantUsed(s, 0, 0, 170)
}

func testConcurrentTransitions(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	var committed int64
	for i := 0; i < 20; i++ {
		h := e.reserve(s, 100, fmt.Sprintf("k%d", i))
		var wg sync.WaitGroup
		var wins atomic.Int64
		results := make([]budget.Hold, 4)
		for j := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got budget.Hold
				var err error
				if j%2 == 0 {
					got, err = e.l.Commit(e.ctx, h.ID, budget.USD(70))
				} else {
					got, err = e.l.Release(e.ctx, h.ID)
				}
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, budget.ErrHoldEnded):
					t.Errorf("transition: %v", err)
				}
				results[j] = got
			}()
		}
		wg.Wait()
		// Both winners (if two) agree on one final state: the repeated
		// transition to the same state is a replay.
		final, err := e.l.Hold(e.ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if r.ID != "" && (r.State != final.State || !r.EndedAt.Equal(final.EndedAt)) {
				t.Fatalf("callers saw %+v; the hold ended as %+v", r, final)
			}
		}
		if wins.Load() != 2 { // the winner and its replay
			t.Fatalf("%d transitions succeeded; want 2", wins.Load())
		}
		if final.State == budget.HoldCommitted {
			committed += 70
		}
	}
	e.wantUsed(s, committed, 0, 0)
}
