package budgettest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
)

// start is a Tuesday, mid-month, mid-week, in the middle of the day.
var start = time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)

// Run runs the whole conformance suite against stores made by mk. Subtests
// run in parallel, each on its own harness.
func Run(t *testing.T, mk HarnessMaker) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, HarnessMaker)
	}{
		{"CapEveryScope", testCapEveryScope},
		{"ConcurrentOneScope", testConcurrentOneScope},
		{"ConcurrentProjectCap", testConcurrentProjectCap},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"IdempotentReserve", testIdempotentReserve},
		{"IdempotentTransitions", testIdempotentTransitions},
		{"IdempotentUsage", testIdempotentUsage},
		{"Expiry", testExpiry},
		{"RolloverMonth", testRolloverMonth},
		{"RolloverWeekYear", testRolloverWeekYear},
		{"CapChange", testCapChange},
		{"ArrearsOverrun", testArrearsOverrun},
		{"AlertsOnce", testAlertsOnce},
		{"Reverse", testReverse},
		{"FailClosed", testFailClosed},
		{"CrashBetweenReserveAndCommit", testCrash},
		{"Reopen", testReopen},
		{"StoreContract", testStoreContract},
		{"ConcurrentMarks", testConcurrentMarks},
		{"ConcurrentUsage", testConcurrentUsage},
		{"ConcurrentTransitions", testConcurrentTransitions},
		{"Model", RunModel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, mk)
		})
	}
}

// env is one harness with a Ledger on a fake clock.
type env struct {
	t      *testing.T
	ctx    context.Context
	h      Harness
	clk    *clock.Fake
	l      *budget.Ledger
	opts   budget.LedgerOptions
	alerts *alertLog
}

type alertLog struct {
	mu sync.Mutex
	a  []budget.Alert
}

func (a *alertLog) add(_ context.Context, x budget.Alert) {
	a.mu.Lock()
	a.a = append(a.a, x)
	a.mu.Unlock()
}

func (a *alertLog) list() []budget.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]budget.Alert(nil), a.a...)
}

func newEnv(t *testing.T, mk HarnessMaker, configure func(*budget.LedgerOptions)) *env {
	t.Helper()
	ctx := t.Context()
	h, err := mk(ctx, t)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(h.Close)
	e := &env{t: t, ctx: ctx, h: h, clk: clock.NewFake(start), alerts: &alertLog{}}
	e.opts = budget.LedgerOptions{Now: e.clk.Now, Alerts: e.alerts.add}
	if configure != nil {
		configure(&e.opts)
	}
	e.l = e.ledger(h.Store())
	return e
}

func (e *env) ledger(s budget.Store) *budget.Ledger {
	e.t.Helper()
	l, err := budget.NewLedger(s, &e.opts)
	if err != nil {
		e.t.Fatalf("NewLedger: %v", err)
	}
	return l
}

func (e *env) reserve(scope budget.Scope, amount int64, key string) budget.Hold {
	e.t.Helper()
	h, err := e.l.Reserve(e.ctx, scope, budget.USD(amount), key, nil)
	if err != nil {
		e.t.Fatalf("Reserve(%v, %d, %q): %v", scope, amount, key, err)
	}
	if h.State != budget.HoldActive || h.Amount != budget.USD(amount) || h.Key != key || h.Scope != scope {
		e.t.Fatalf("Reserve(%v, %d, %q) = %+v", scope, amount, key, h)
	}
	return h
}

func (e *env) refused(scope budget.Scope, amount int64, key string) *budget.CapError {
	e.t.Helper()
	h, err := e.l.Reserve(e.ctx, scope, budget.USD(amount), key, nil)
	var ce *budget.CapError
	if !errors.As(err, &ce) || !errors.Is(err, budget.ErrCapExceeded) {
		e.t.Fatalf("Reserve(%v, %d, %q) = %+v, %v; want a *CapError", scope, amount, key, h, err)
	}
	return ce
}

func (e *env) commit(id string, actual int64) budget.Hold {
	e.t.Helper()
	h, err := e.l.Commit(e.ctx, id, budget.USD(actual))
	if err != nil {
		e.t.Fatalf("Commit(%s, %d): %v", id, actual, err)
	}
	if h.State != budget.HoldCommitted || h.Committed.Amount != actual {
		e.t.Fatalf("Commit(%s, %d) = %+v", id, actual, h)
	}
	return h
}

// counter returns the usage of scope's counter in period (provider "" in
// scope means the project-wide counter).
func (e *env) counter(scope budget.Scope, project bool, p budget.Period) budget.CounterUsage {
	e.t.Helper()
	u, err := e.l.Usage(e.ctx, scope)
	if err != nil {
		e.t.Fatalf("Usage(%v): %v", scope, err)
	}
	for _, c := range u.Counters {
		if c.Counter.Window.Period() == p && (c.Counter.Provider == "") == project {
			return c
		}
	}
	e.t.Fatalf("Usage(%v) has no %s counter (project=%v): %+v", scope, p, project, u)
	return budget.CounterUsage{}
}

func (e *env) wantUsed(scope budget.Scope, committed, held, arrears int64) {
	e.t.Helper()
	c := e.counter(scope, false, budget.Month)
	if c.Committed != committed || c.Held != held || c.Arrears != arrears {
		e.t.Fatalf("month counter of %v: committed %d held %d arrears %d; want %d %d %d",
			scope, c.Committed, c.Held, c.Arrears, committed, held, arrears)
	}
}

func (e *env) setCap(project, provider string, p budget.Period, limit int64) budget.CapRecord {
	e.t.Helper()
	rec, err := e.l.SetCap(e.ctx, budget.CapChange{Project: project, Provider: provider, Period: p,
		Limit: budget.USD(limit), By: budget.Principal{Kind: budget.PrincipalUser, ID: "user-1"}, Reason: "test"})
	if err != nil {
		e.t.Fatalf("SetCap(%s/%s %s %d): %v", project, provider, p, limit, err)
	}
	return rec
}

func sc(project, provider string) budget.Scope {
	return budget.Scope{Project: project, Provider: provider}
}

func testCapEveryScope(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	a, b := sc("p1", "acme"), sc("p1", "bolt")

	// Default: $100 per provider per month.
	e.reserve(a, 6000, "a1")
	ce := e.refused(a, 4001, "a2")
	want := budget.Counter{Project: "p1", Provider: "acme", Window: "month:2026-11"}
	if ce.Counter != want || ce.Limit != budget.USD(10000) || ce.Used != 6000 || ce.Requested != 4001 || ce.Remaining() != 4000 {
		t.Fatalf("CapError = %+v; want counter %v limit 10000 used 6000 requested 4001", ce, want)
	}
	e.reserve(a, 4000, "a3")
	e.refused(a, 1, "a4")
	// Another provider has its own cap.
	e.reserve(b, 10000, "b1")
	e.refused(b, 1, "b2")
	// Another project is untouched.
	e.reserve(sc("p2", "acme"), 10000, "c1")

	// Project-wide cap over every provider.
	e.setCap("p3", "", budget.Month, 15000)
	e.reserve(sc("p3", "acme"), 9000, "d1")
	ce = e.refused(sc("p3", "bolt"), 6001, "d2")
	if ce.Counter != (budget.Counter{Project: "p3", Window: "month:2026-11"}) || ce.Used != 9000 {
		t.Fatalf("project-wide CapError = %+v", ce)
	}
	e.reserve(sc("p3", "bolt"), 6000, "d3")
	e.refused(sc("p3", "cobalt"), 1, "d4")

	// Week and year caps on a provider, alongside the monthly default.
	e.setCap("p4", "acme", budget.Week, 3000)
	e.setCap("p4", "acme", budget.Year, 5000)
	e.commit(e.reserve(sc("p4", "acme"), 3000, "e1").ID, 3000)
	ce = e.refused(sc("p4", "acme"), 1, "e2")
	if ce.Counter.Window != "week:2026-W46" {
		t.Fatalf("week CapError = %+v", ce)
	}
	e.clk.Advance(7 * 24 * time.Hour)
	e.reserve(sc("p4", "acme"), 2000, "e3")
	ce = e.refused(sc("p4", "acme"), 1, "e4")
	if ce.Counter.Window != "year:2026" || ce.Used != 5000 {
		t.Fatalf("year CapError = %+v", ce)
	}

	// Per-call ceiling, from the options and per call.
	e2 := newEnv(t, mk, func(o *budget.LedgerOptions) { o.CallCeiling = &budget.Money{Amount: 500, Currency: "USD"} })
	if _, err := e2.l.Reserve(e2.ctx, a, budget.USD(501), "f1", nil); !errors.Is(err, budget.ErrCallCeiling) {
		t.Fatalf("over ceiling: %v; want ErrCallCeiling", err)
	}
	if _, err := e2.l.Reserve(e2.ctx, a, budget.USD(900), "f2", &budget.ReserveOptions{CallCeiling: &budget.Money{Amount: 1000, Currency: "USD"}}); err != nil {
		t.Fatalf("under per-call ceiling: %v", err)
	}
	e2.wantUsed(a, 0, 900, 0)
	// Currency mismatch and invalid amounts are refused before the store.
	for _, m := range []budget.Money{{Amount: 100, Currency: "EUR"}, {Amount: 0, Currency: "USD"}, {Amount: -1, Currency: "USD"}} {
		_, err := e2.l.Reserve(e2.ctx, a, m, "g", nil)
		if !errors.Is(err, budget.ErrCurrencyMismatch) && !errors.Is(err, budget.ErrInvalidAmount) {
			t.Fatalf("Reserve(%v): %v; want ErrCurrencyMismatch or ErrInvalidAmount", m, err)
		}
	}
	e2.wantUsed(a, 0, 900, 0)
}

func testConcurrentOneScope(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("hot", "acme")
	const workers, attempts = 64, 4
	var granted atomic.Int64
	var ids sync.Map
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < attempts; i++ {
				h, err := e.l.Reserve(e.ctx, s, budget.USD(100), fmt.Sprintf("k-%d-%d", w, i), nil)
				switch {
				case err == nil:
					granted.Add(1)
					ids.Store(h.ID, true)
				case !errors.Is(err, budget.ErrCapExceeded):
					t.Errorf("Reserve: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if g := granted.Load(); g != 100 {
		t.Fatalf("granted %d holds of $1 under a $100 cap; want exactly 100", g)
	}
	e.wantUsed(s, 0, 10000, 0)

	// Now commit part, release part, and reserve again, all at once: the
	// cap must hold at every instant, checked at the end by exact sums.
	var held, committed atomic.Int64
	var list []string
	ids.Range(func(k, _ any) bool { list = append(list, k.(string)); return true })
	for i, id := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				if _, err := e.l.Commit(e.ctx, id, budget.USD(40)); err != nil {
					t.Errorf("Commit: %v", err)
				}
				committed.Add(40)
			case 1:
				if _, err := e.l.Release(e.ctx, id); err != nil {
					t.Errorf("Release: %v", err)
				}
			default:
				held.Add(100)
			}
			h, err := e.l.Reserve(e.ctx, s, budget.USD(30), "again-"+id, nil)
			switch {
			case err == nil:
				held.Add(h.Amount.Amount)
			case !errors.Is(err, budget.ErrCapExceeded):
				t.Errorf("Reserve: %v", err)
			}
		}()
	}
	wg.Wait()
	c := e.counter(s, false, budget.Month)
	if c.Committed != committed.Load() || c.Held != held.Load() {
		t.Fatalf("counter committed %d held %d; callers saw %d %d", c.Committed, c.Held, committed.Load(), held.Load())
	}
	if c.Used() > 10000 {
		t.Fatalf("used %d exceeds the cap 10000", c.Used())
	}
}

func testConcurrentProjectCap(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	e.setCap("shared", "", budget.Month, 5000)
	providers := []string{"acme", "bolt", "cobalt", "dyne"}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sc("shared", providers[w%len(providers)])
			for i := 0; i < 3; i++ {
				_, err := e.l.Reserve(e.ctx, s, budget.USD(50), fmt.Sprintf("k-%d-%d", w, i), nil)
				switch {
				case err == nil:
					granted.Add(50)
				case !errors.Is(err, budget.ErrCapExceeded):
					t.Errorf("Reserve: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if g := granted.Load(); g != 5000 {
		t.Fatalf("granted %d under a project-wide cap of 5000 (192 attempts of 50); want exactly 5000", g)
	}
	c := e.counter(sc("shared", "acme"), true, budget.Month)
	if c.Held != 5000 {
		t.Fatalf("project counter holds %d; want 5000", c.Held)
	}
}

func testConcurrentSameKey(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	var wg sync.WaitGroup
	got := make([]budget.Hold, 32)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := e.l.Reserve(e.ctx, s, budget.USD(700), "same", nil)
			if err != nil {
				t.Errorf("Reserve: %v", err)
			}
			got[i] = h
		}()
	}
	wg.Wait()
	for _, h := range got[1:] {
		if h != got[0] {
			t.Fatalf("concurrent retries returned different holds: %+v and %+v", got[0], h)
		}
	}
	e.wantUsed(s, 0, 700, 0)
}

func testIdempotentReserve(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	opts := &budget.ReserveOptions{Service: "registrar:domain", Memo: "example.com", TTL: time.Hour}
	h1, err := e.l.Reserve(e.ctx, s, budget.USD(1200), "k1", opts)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Service != "registrar:domain" || h1.Memo != "example.com" || !h1.ExpiresAt.Equal(start.Add(time.Hour)) || !h1.CreatedAt.Equal(start) || h1.ID == "" {
		t.Fatalf("hold = %+v", h1)
	}
	e.clk.Advance(time.Minute)
	h2, err := e.l.Reserve(e.ctx, s, budget.USD(1200), "k1", opts)
	if err != nil || !sameHold(h1, h2) {
		t.Fatalf("retry = %+v, %v; want %+v", h2, err, h1)
	}
	e.wantUsed(s, 0, 1200, 0)
	for name, retry := range map[string]func() error{
		"amount":   func() error { _, err := e.l.Reserve(e.ctx, s, budget.USD(1201), "k1", opts); return err },
		"provider": func() error { _, err := e.l.Reserve(e.ctx, sc("p", "bolt"), budget.USD(1200), "k1", opts); return err },
		"project":  func() error { _, err := e.l.Reserve(e.ctx, sc("q", "acme"), budget.USD(1200), "k1", opts); return err },
		"service":  func() error { _, err := e.l.Reserve(e.ctx, s, budget.USD(1200), "k1", nil); return err },
	} {
		if err := retry(); !errors.Is(err, budget.ErrIdempotencyConflict) {
			t.Errorf("same key, different %s: %v; want ErrIdempotencyConflict", name, err)
		}
	}
	// A retry is answered even when the cap is now full, and after commit.
	e.reserve(s, 8800, "k2")
	e.commit(h1.ID, 1000)
	h3, err := e.l.Reserve(e.ctx, s, budget.USD(1200), "k1", opts)
	if err != nil || h3.ID != h1.ID || h3.State != budget.HoldCommitted || h3.Committed.Amount != 1000 {
		t.Fatalf("retry after commit = %+v, %v", h3, err)
	}
	e.wantUsed(s, 1000, 8800, 0)
	if _, err := e.l.Hold(e.ctx, "hold_does_not_exist"); !errors.Is(err, budget.ErrHoldNotFound) {
		t.Fatalf("Hold(unknown): %v", err)
	}
}

func sameHold(a, b budget.Hold) bool {
	return a.ID == b.ID && a.Key == b.Key && a.Scope == b.Scope && a.Service == b.Service && a.Memo == b.Memo &&
		a.Amount == b.Amount && a.Committed == b.Committed && a.State == b.State &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) && a.EndedAt.Equal(b.EndedAt) && a.Reason == b.Reason
}

func testIdempotentTransitions(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	h := e.reserve(s, 5000, "k1")
	if _, err := e.l.Commit(e.ctx, h.ID, budget.USD(5001)); !errors.Is(err, budget.ErrInvalidAmount) {
		t.Fatalf("commit above held: %v; want ErrInvalidAmount", err)
	}
	if _, err := e.l.Commit(e.ctx, h.ID, budget.Money{Amount: 10, Currency: "EUR"}); !errors.Is(err, budget.ErrCurrencyMismatch) {
		t.Fatalf("commit in EUR: %v; want ErrCurrencyMismatch", err)
	}
	e.wantUsed(s, 0, 5000, 0)
	c1 := e.commit(h.ID, 3000)
	e.wantUsed(s, 3000, 0, 0) // the remainder is back at once
	e.clk.Advance(time.Hour)  // even past the expiry, a replay answers the same
	c2, err := e.l.Commit(e.ctx, h.ID, budget.USD(3000))
	if err != nil || !sameHold(c1, c2) {
		t.Fatalf("repeated commit = %+v, %v; want %+v", c2, err, c1)
	}
	if _, err := e.l.Commit(e.ctx, h.ID, budget.USD(2000)); !errors.Is(err, budget.ErrIdempotencyConflict) {
		t.Fatalf("commit again with another amount: %v; want ErrIdempotencyConflict", err)
	}
	if _, err := e.l.Release(e.ctx, h.ID); !errors.Is(err, budget.ErrHoldEnded) {
		t.Fatalf("release after commit: %v; want ErrHoldEnded", err)
	}
	e.wantUsed(s, 3000, 0, 0)

	r := e.reserve(s, 2000, "k2")
	r1, err := e.l.Release(e.ctx, r.ID)
	if err != nil || r1.State != budget.HoldReleased || !r1.EndedAt.Equal(e.clk.Now()) {
		t.Fatalf("Release = %+v, %v", r1, err)
	}
	e.clk.Advance(time.Second)
	r2, err := e.l.Release(e.ctx, r.ID)
	if err != nil || !sameHold(r1, r2) {
		t.Fatalf("repeated release = %+v, %v; want %+v", r2, err, r1)
	}
	if _, err := e.l.Commit(e.ctx, r.ID, budget.USD(1)); !errors.Is(err, budget.ErrHoldEnded) {
		t.Fatalf("commit after release: %v; want ErrHoldEnded", err)
	}
	if _, err := e.l.Reverse(e.ctx, r.ID, "x"); !errors.Is(err, budget.ErrHoldEnded) {
		t.Fatalf("reverse of a released hold: %v; want ErrHoldEnded", err)
	}
	if _, err := e.l.Commit(e.ctx, "hold_nope", budget.USD(1)); !errors.Is(err, budget.ErrHoldNotFound) {
		t.Fatalf("commit of unknown hold: %v; want ErrHoldNotFound", err)
	}
	// Committing zero is a commit (the call was free), and ends the hold.
	z := e.reserve(s, 100, "k3")
	e.commit(z.ID, 0)
	e.wantUsed(s, 3000, 0, 0)
}

func testIdempotentUsage(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	r := budget.UsageReport{Key: "u1", Scope: s, Service: "compute", Amount: budget.USD(700), At: start.Add(-time.Hour)}
	res1, err := e.l.ReportUsage(e.ctx, r)
	if err != nil || res1.Replayed || res1.Entry.Amount != budget.USD(700) || !res1.Entry.At.Equal(r.At) {
		t.Fatalf("ReportUsage = %+v, %v", res1, err)
	}
	e.clk.Advance(time.Minute)
	res2, err := e.l.ReportUsage(e.ctx, r)
	if err != nil || !res2.Replayed || res2.Entry.Key != "u1" || !res2.Entry.RecordedAt.Equal(res1.Entry.RecordedAt) {
		t.Fatalf("repeated ReportUsage = %+v, %v", res2, err)
	}
	e.wantUsed(s, 0, 0, 700)
	r.Amount = budget.USD(800)
	if _, err := e.l.ReportUsage(e.ctx, r); !errors.Is(err, budget.ErrIdempotencyConflict) {
		t.Fatalf("same usage key, other amount: %v; want ErrIdempotencyConflict", err)
	}
	r.Key, r.At = "u2", e.clk.Now().Add(time.Hour)
	if _, err := e.l.ReportUsage(e.ctx, r); !errors.Is(err, budget.ErrInvalidRequest) {
		t.Fatalf("usage in the future: %v; want ErrInvalidRequest", err)
	}
	e.wantUsed(s, 0, 0, 700)
}

func testExpiry(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	h, err := e.l.Reserve(e.ctx, s, budget.USD(10000), "k1", &budget.ReserveOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute - time.Nanosecond)
	e.refused(s, 1, "k2")
	e.wantUsed(s, 0, 10000, 0)
	e.clk.Advance(time.Nanosecond) // now == ExpiresAt: no longer counts
	e.wantUsed(s, 0, 0, 0)
	got, err := e.l.Hold(e.ctx, h.ID)
	if err != nil || got.State != budget.HoldExpired || !got.EndedAt.Equal(h.ExpiresAt) {
		t.Fatalf("Hold after expiry = %+v, %v", got, err)
	}
	n := e.reserve(s, 10000, "k3")
	if _, err := e.l.Commit(e.ctx, h.ID, budget.USD(5)); !errors.Is(err, budget.ErrHoldExpired) {
		t.Fatalf("commit after expiry: %v; want ErrHoldExpired", err)
	}
	e.clk.Advance(time.Hour)
	for i := 0; i < 2; i++ {
		x, err := e.l.Commit(e.ctx, h.ID, budget.USD(5))
		if !errors.Is(err, budget.ErrHoldExpired) || x.State != budget.HoldExpired || !x.EndedAt.Equal(h.ExpiresAt) {
			t.Fatalf("commit after expiry (%d) = %+v, %v; want expired at %v", i, x, err, h.ExpiresAt)
		}
	}
	if x, err := e.l.Release(e.ctx, h.ID); err != nil || x.State != budget.HoldExpired {
		t.Fatalf("release after expiry = %+v, %v; want the expired hold, no error", x, err)
	}
	if x, err := e.l.Reserve(e.ctx, s, budget.USD(10000), "k1", &budget.ReserveOptions{TTL: time.Minute}); err != nil || x.ID != h.ID || x.State != budget.HoldExpired {
		t.Fatalf("retried reserve of an expired hold = %+v, %v; want the same hold, expired", x, err)
	}
	// The second hold expired too, by itself.
	if x, _ := e.l.Hold(e.ctx, n.ID); x.State != budget.HoldExpired {
		t.Fatalf("second hold = %+v; want expired", x)
	}
	e.wantUsed(s, 0, 0, 0)
	e.reserve(s, 10000, "k4")
}

func testRolloverMonth(t *testing.T, mk HarnessMaker) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	e := newEnv(t, mk, func(o *budget.LedgerOptions) { o.Location = berlin })
	s := sc("p", "acme")
	// 23:59:59.999 on 30 November in Berlin is 22:59:59.999 UTC.
	e.clk.Set(time.Date(2026, 11, 30, 23, 59, 59, 999_000_000, berlin))
	nov := e.reserve(s, 9000, "k1")
	e.refused(s, 1001, "k2")
	if c := e.counter(s, false, budget.Month); c.Counter.Window != "month:2026-11" {
		t.Fatalf("window = %s; want month:2026-11", c.Counter.Window)
	}
	e.clk.Advance(time.Millisecond) // 00:00:00 on 1 December in Berlin
	if c := e.counter(s, false, budget.Month); c.Counter.Window != "month:2026-12" || c.Used() != 0 {
		t.Fatalf("after rollover: %+v; want an empty month:2026-12", c)
	}
	dec := e.reserve(s, 10000, "k3")
	// A hold counts in the period it was reserved in, even committed later.
	e.commit(nov.ID, 8000)
	e.commit(dec.ID, 10000)
	hist, err := e.l.SpendHistory(e.ctx, "p", "acme", budget.Month)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Counter.Window != "month:2026-11" || hist[0].Committed != 8000 ||
		hist[1].Counter.Window != "month:2026-12" || hist[1].Committed != 10000 ||
		hist[0].Limit == nil || hist[0].Limit.Amount != 10000 {
		t.Fatalf("SpendHistory = %+v", hist)
	}
	// The project-wide counters roll over the same way.
	proj, err := e.l.SpendHistory(e.ctx, "p", "", budget.Month)
	if err != nil || len(proj) != 2 || proj[0].Committed != 8000 || proj[1].Committed != 10000 {
		t.Fatalf("project SpendHistory = %+v, %v", proj, err)
	}
}

func testRolloverWeekYear(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, func(o *budget.LedgerOptions) { o.Period = budget.Week })
	s := sc("p", "acme")
	// Sunday 3 January 2027 23:59:59.999999999 UTC is in ISO week 2026-W53.
	e.clk.Set(time.Date(2027, 1, 3, 23, 59, 59, 999_999_999, time.UTC))
	e.reserve(s, 10000, "k1")
	e.refused(s, 1, "k2")
	if c := e.counter(s, false, budget.Week); c.Counter.Window != "week:2026-W53" {
		t.Fatalf("window = %s; want week:2026-W53", c.Counter.Window)
	}
	e.clk.Advance(time.Nanosecond)
	e.reserve(s, 10000, "k3")
	if c := e.counter(s, false, budget.Week); c.Counter.Window != "week:2027-W01" || c.Held != 10000 {
		t.Fatalf("after rollover: %+v", c)
	}
	// Year caps roll over at midnight on 1 January.
	e.setCap("y", "acme", budget.Year, 500)
	e.clk.Set(time.Date(2027, 12, 31, 23, 59, 59, 0, time.UTC))
	e.reserve(sc("y", "acme"), 500, "y1")
	e.refused(sc("y", "acme"), 1, "y2")
	e.clk.Advance(time.Second)
	e.reserve(sc("y", "acme"), 500, "y3")
	hist, err := e.l.SpendHistory(e.ctx, "y", "acme", budget.Year)
	if err != nil || len(hist) != 2 || hist[0].Counter.Window != "year:2027" || hist[1].Counter.Window != "year:2028" ||
		hist[0].Limit == nil || hist[0].Limit.Amount != 500 {
		t.Fatalf("year SpendHistory = %+v, %v", hist, err)
	}
}

func testCapChange(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	_, err := e.l.SetCap(e.ctx, budget.CapChange{Project: "p", Provider: "acme", Limit: budget.USD(50000),
		By: budget.Principal{Kind: budget.PrincipalAgent, ID: "agent-7"}})
	if !errors.Is(err, budget.ErrNotAuthorized) {
		t.Fatalf("agent raising a cap: %v; want ErrNotAuthorized", err)
	}
	if h, err := e.l.CapHistory(e.ctx, "p"); err != nil || len(h) != 0 {
		t.Fatalf("history after refusal = %+v, %v; want empty", h, err)
	}
	e.reserve(s, 10000, "k1")
	e.refused(s, 5000, "k2")
	e.clk.Advance(time.Minute)
	raised := e.setCap("p", "acme", "", 20000) // "" = the Ledger's period, month
	if raised.Key != (budget.CapKey{Project: "p", Provider: "acme", Period: budget.Month}) || raised.Previous != nil ||
		raised.By != (budget.Principal{Kind: budget.PrincipalUser, ID: "user-1"}) || !raised.At.Equal(e.clk.Now()) {
		t.Fatalf("raise record = %+v", raised)
	}
	h2 := e.reserve(s, 5000, "k2b")
	e.commit(h2.ID, 5000)
	e.clk.Advance(time.Minute)
	lowered := e.setCap("p", "acme", budget.Month, 12000) // below the 15000 used
	if lowered.Previous == nil || lowered.Previous.Amount != 20000 {
		t.Fatalf("lower record = %+v; want previous 20000", lowered)
	}
	ce := e.refused(s, 1, "k3")
	if ce.Limit.Amount != 12000 || ce.Used != 15000 || ce.Remaining() != 0 {
		t.Fatalf("after lowering: %+v", ce)
	}
	e.wantUsed(s, 5000, 10000, 0) // history is intact
	hist, err := e.l.CapHistory(e.ctx, "p")
	if err != nil || len(hist) != 2 || hist[0].Limit.Amount != 20000 || hist[1].Limit.Amount != 12000 ||
		!hist[1].At.After(hist[0].At) || hist[1].Reason != "test" {
		t.Fatalf("CapHistory = %+v, %v", hist, err)
	}
	u, err := e.l.Usage(e.ctx, s)
	if err != nil || u.Remaining == nil || u.Remaining.Amount != 0 {
		t.Fatalf("Usage = %+v, %v; want remaining 0", u, err)
	}
	// A zero cap blocks everything; an operator may set it.
	if _, err := e.l.SetCap(e.ctx, budget.CapChange{Project: "z", Provider: "acme", Limit: budget.USD(0),
		By: budget.Principal{Kind: budget.PrincipalOperator, ID: "ops"}}); err != nil {
		t.Fatal(err)
	}
	e.refused(sc("z", "acme"), 1, "z1")
}

func testArrearsOverrun(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	e.reserve(s, 2000, "k1")
	res, err := e.l.ReportUsage(e.ctx, budget.UsageReport{Key: "u1", Scope: s, Amount: budget.USD(7000)})
	if err != nil || len(res.Overrun) != 0 {
		t.Fatalf("ReportUsage = %+v, %v", res, err)
	}
	e.refused(s, 1001, "k2")
	res, err = e.l.ReportUsage(e.ctx, budget.UsageReport{Key: "u2", Scope: s, Amount: budget.USD(4000)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Overrun) == 0 || res.Overrun[0].Counter.Provider != "acme" || res.Overrun[0].Spent() != 11000 {
		t.Fatalf("overrun not reported: %+v", res)
	}
	ce := e.refused(s, 1, "k3")
	if ce.Used != 13000 {
		t.Fatalf("CapError = %+v; want used 13000", ce)
	}
	var overruns int
	for _, a := range e.alerts.list() {
		if a.Kind == budget.AlertOverrun {
			overruns++
		}
	}
	if overruns != 1 {
		t.Fatalf("overrun alerts = %d; want 1 (%+v)", overruns, e.alerts.list())
	}
	// A replay does not count twice nor alert again.
	if res, err := e.l.ReportUsage(e.ctx, budget.UsageReport{Key: "u2", Scope: s, Amount: budget.USD(4000)}); err != nil || !res.Replayed {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	e.wantUsed(s, 0, 2000, 11000)
}

func testAlertsOnce(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	other := e.ledger(e.h.Store()) // a second instance sharing the store and the callback
	h1 := e.reserve(s, 6000, "k1")
	if n := len(e.alerts.list()); n != 0 {
		t.Fatalf("alerts before any spend: %d", n)
	}
	e.commit(h1.ID, 4900)
	if n := len(e.alerts.list()); n != 0 {
		t.Fatalf("alerts at 49%%: %+v", e.alerts.list())
	}
	h2 := e.reserve(s, 3200, "k2")
	if _, err := other.Commit(e.ctx, h2.ID, budget.USD(3200)); err != nil { // 81 %
		t.Fatal(err)
	}
	got := e.alerts.list()
	if len(got) != 2 || got[0].Threshold != 50 || got[1].Threshold != 80 || got[1].Spent != 8100 ||
		got[1].Counter != (budget.Counter{Project: "p", Provider: "acme", Window: "month:2026-11"}) || got[1].Limit.Amount != 10000 {
		t.Fatalf("alerts = %+v; want 50 and 80 on the provider's month", got)
	}
	// Replays and further spend below 100 % deliver nothing new.
	if _, err := e.l.Commit(e.ctx, h2.ID, budget.USD(3200)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Commit(e.ctx, h2.ID, budget.USD(3200)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.alerts.list()); n != 2 {
		t.Fatalf("alerts after replays = %+v", e.alerts.list())
	}
	h3 := e.reserve(s, 1900, "k3")
	e.commit(h3.ID, 1900)
	got = e.alerts.list()
	if len(got) != 3 || got[2].Threshold != 100 {
		t.Fatalf("alerts at 100%% = %+v", got)
	}
	// A new window starts afresh.
	e.clk.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	h4 := e.reserve(s, 5000, "k4")
	e.commit(h4.ID, 5000)
	got = e.alerts.list()
	if len(got) != 4 || got[3].Threshold != 50 || got[3].Counter.Window != "month:2026-12" {
		t.Fatalf("alerts in December = %+v", got)
	}
}

func testReverse(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	h := e.reserve(s, 10000, "k1")
	if _, err := e.l.Reverse(e.ctx, h.ID, "refused"); !errors.Is(err, budget.ErrHoldEnded) {
		t.Fatalf("reverse of an active hold: %v; want ErrHoldEnded", err)
	}
	c := e.commit(h.ID, 9000)
	e.refused(s, 1001, "k2")
	e.clk.Advance(time.Minute)
	r1, err := e.l.Reverse(e.ctx, h.ID, "settlement refused")
	if err != nil || r1.State != budget.HoldReversed || r1.Reason != "settlement refused" || r1.Committed.Amount != 9000 || !r1.EndedAt.Equal(c.EndedAt) {
		t.Fatalf("Reverse = %+v, %v", r1, err)
	}
	r2, err := e.l.Reverse(e.ctx, h.ID, "settlement refused")
	if err != nil || !sameHold(r1, r2) {
		t.Fatalf("repeated Reverse = %+v, %v", r2, err)
	}
	if _, err := e.l.Commit(e.ctx, h.ID, budget.USD(9000)); !errors.Is(err, budget.ErrHoldEnded) {
		t.Fatalf("commit after reverse: %v; want ErrHoldEnded", err)
	}
	e.wantUsed(s, 0, 0, 0)
	e.reserve(s, 10000, "k3")
}

func testFailClosed(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	f := NewFaulty(e.h.Store())
	l := e.ledger(f)
	s := sc("p", "acme")

	// The store fails before acting: refused, nothing counted.
	f.Inject("Reserve", FailBefore)
	if _, err := l.Reserve(e.ctx, s, budget.USD(4000), "k1", nil); !errors.Is(err, budget.ErrStore) || !errors.Is(err, ErrInjected) {
		t.Fatalf("Reserve with a failing store: %v; want ErrStore", err)
	}
	e.wantUsed(s, 0, 0, 0)

	// The store acted but the reply was lost: the caller is refused (no
	// token can be minted), and the retry with the same key finds the one
	// hold instead of placing a second.
	f.Inject("Reserve", LoseReply)
	if _, err := l.Reserve(e.ctx, s, budget.USD(4000), "k2", nil); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("Reserve with a lost reply: %v; want ErrStore", err)
	}
	e.wantUsed(s, 0, 4000, 0)
	h, err := l.Reserve(e.ctx, s, budget.USD(4000), "k2", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.wantUsed(s, 0, 4000, 0)

	// A commit whose reply is lost is retried to the same result.
	f.Inject("Transition", LoseReply)
	if _, err := l.Commit(e.ctx, h.ID, budget.USD(3000)); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("Commit with a lost reply: %v; want ErrStore", err)
	}
	if c, err := l.Commit(e.ctx, h.ID, budget.USD(3000)); err != nil || c.Committed.Amount != 3000 {
		t.Fatalf("retried commit = %+v, %v", c, err)
	}
	e.wantUsed(s, 3000, 0, 0)

	// Usage reports: failure counts nothing; a lost reply counts once.
	f.Inject("ApplyUsage", FailBefore, LoseReply)
	for i := 0; i < 2; i++ {
		if _, err := l.ReportUsage(e.ctx, budget.UsageReport{Key: "u1", Scope: s, Amount: budget.USD(500)}); !errors.Is(err, budget.ErrStore) {
			t.Fatalf("ReportUsage with a failing store: %v", err)
		}
	}
	if r, err := l.ReportUsage(e.ctx, budget.UsageReport{Key: "u1", Scope: s, Amount: budget.USD(500)}); err != nil || !r.Replayed {
		t.Fatalf("retried ReportUsage = %+v, %v; want replayed", r, err)
	}
	e.wantUsed(s, 3000, 0, 500)

	// A failing cap change changes nothing; a failing read is an error, not
	// a zero.
	f.Inject("SetCap", FailBefore)
	if _, err := l.SetCap(e.ctx, budget.CapChange{Project: "p", Provider: "acme", Limit: budget.USD(1),
		By: budget.Principal{Kind: budget.PrincipalUser, ID: "u"}}); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("SetCap with a failing store: %v", err)
	}
	f.Inject("Usage", FailBefore)
	if _, err := l.Usage(e.ctx, s); !errors.Is(err, budget.ErrStore) {
		t.Fatalf("Usage with a failing store: %v", err)
	}
	e.reserve(s, 6500, "k3")

	// An alert whose mark fails is not delivered (at most once), and the
	// commit that caused it still succeeds.
	f.Inject("MarkAlert", FailBefore, FailBefore, FailBefore)
	h4 := e.reserve(sc("q", "acme"), 9000, "k4")
	if _, err := l.Commit(e.ctx, h4.ID, budget.USD(9000)); err != nil {
		t.Fatalf("commit with failing alert marks: %v", err)
	}
	// A cancelled context fails closed too.
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.l.Reserve(ctx, sc("r", "acme"), budget.USD(1), "k5", nil); err == nil {
		t.Fatalf("Reserve with a cancelled context succeeded")
	}
	e.wantUsed(sc("r", "acme"), 0, 0, 0)
}

func testCrash(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	h, err := e.l.Reserve(e.ctx, s, budget.USD(10000), "k1", &budget.ReserveOptions{TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The process dies before committing. After a restart, where possible
	// on reopened data, a new Ledger sees the hold count until it expires.
	store := e.h.Store()
	if s2, err := e.h.Reopen(e.ctx); err == nil {
		store = s2
	} else if !errors.Is(err, ErrReopenUnsupported) {
		t.Fatalf("Reopen: %v", err)
	}
	e.l = e.ledger(store)
	e.refused(s, 1, "k2")
	e.clk.Advance(10 * time.Minute)
	e.reserve(s, 10000, "k3")
	got, err := e.l.Hold(e.ctx, h.ID)
	if err != nil || got.State != budget.HoldExpired {
		t.Fatalf("crashed hold = %+v, %v; want expired", got, err)
	}
}

func testReopen(t *testing.T, mk HarnessMaker) {
	e := newEnv(t, mk, nil)
	s := sc("p", "acme")
	active := e.reserve(s, 3000, "k1")
	done := e.reserve(s, 2000, "k2")
	e.commit(done.ID, 1500)
	rel := e.reserve(s, 100, "k3")
	if _, err := e.l.Release(e.ctx, rel.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.ReportUsage(e.ctx, budget.UsageReport{Key: "u1", Scope: s, Amount: budget.USD(250)}); err != nil {
		t.Fatal(err)
	}
	e.setCap("p", "", budget.Month, 9000)
	h1 := e.alerts.list()

	s2, err := e.h.Reopen(e.ctx)
	if errors.Is(err, ErrReopenUnsupported) {
		t.Skip("store has no durable data")
	}
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	e.l = e.ledger(s2)
	e.wantUsed(s, 1500, 3000, 250)
	if c := e.counter(s, true, budget.Month); c.Limit == nil || c.Limit.Amount != 9000 || c.Used() != 4750 {
		t.Fatalf("project counter after reopen = %+v", c)
	}
	got, err := e.l.Reserve(e.ctx, s, budget.USD(3000), "k1", nil)
	if err != nil || got.ID != active.ID || !got.CreatedAt.Equal(active.CreatedAt) || !got.ExpiresAt.Equal(active.ExpiresAt) {
		t.Fatalf("replay after reopen = %+v, %v; want %+v", got, err, active)
	}
	if x, err := e.l.Hold(e.ctx, rel.ID); err != nil || x.State != budget.HoldReleased {
		t.Fatalf("released hold after reopen = %+v, %v", x, err)
	}
	if x, err := e.l.Commit(e.ctx, done.ID, budget.USD(1500)); err != nil || x.Committed.Amount != 1500 {
		t.Fatalf("commit replay after reopen = %+v, %v", x, err)
	}
	if r, err := e.l.ReportUsage(e.ctx, budget.UsageReport{Key: "u1", Scope: s, Amount: budget.USD(250)}); err != nil || !r.Replayed {
		t.Fatalf("usage replay after reopen = %+v, %v", r, err)
	}
	if hist, err := e.l.CapHistory(e.ctx, "p"); err != nil || len(hist) != 1 || hist[0].Limit.Amount != 9000 {
		t.Fatalf("CapHistory after reopen = %+v, %v", hist, err)
	}
	e.commit(active.ID, 3000)
	if len(e.alerts.list()) != len(h1)+1 { // 50 % of the project's 9000, once
		t.Fatalf("alerts after reopen = %+v (before: %+v)", e.alerts.list(), h1)
	}
	e.refused(s, 4251, "k4") // project-wide: 9000 - 4750
}
