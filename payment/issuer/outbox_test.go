package issuer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// settleAll advances the clock past every lease and backoff and runs the
// outbox until nothing is due.
func (w *world) settleAll() {
	w.t.Helper()
	for range 20 {
		w.clk.Advance(10 * time.Minute)
		n, _ := w.iss.SettlePending(context.Background())
		if n == 0 {
			return
		}
	}
	w.t.Fatal("outbox does not converge")
}

func TestRailFailsThenOutboxConfirms(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := w.mint(1000)
	w.rail.FailNext(3)
	rc, err := w.iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(700))
	if err != nil {
		t.Fatal(err)
	}
	if rc.State != payment.StateSettling || rc.Signed == "" {
		t.Fatalf("receipt while the rail fails = %+v", rc)
	}
	// The commit stands while settlement is pending.
	if h := w.hold(m.Claims.HoldID); h.State != budget.HoldCommitted {
		t.Fatalf("hold = %s", h.State)
	}
	w.settleAll()
	r := w.record(m.Claims.HoldID)
	if r.State != payment.StateSettled || r.Attempts != 4 {
		t.Fatalf("record = %s after %d attempts", r.State, r.Attempts)
	}
	if len(w.rail.Charges()) != 1 || w.rail.Calls() != 4 {
		t.Fatalf("charges %d, calls %d", len(w.rail.Charges()), w.rail.Calls())
	}
	again, err := w.iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(700))
	if err != nil || again.State != payment.StateSettled || again.Signed != rc.Signed {
		t.Fatalf("after settlement: %+v %v", again, err)
	}
	w.consistent(m.Claims.HoldID)
}

func TestRailTimesOutButCharged(t *testing.T) {
	w := newWorld(t)
	w.settleTimeout = 20 * time.Millisecond
	w.restart()
	ctx := context.Background()
	m := w.mint(1000)
	// The rail charges, then answers long after the caller's deadline.
	w.rail.DelayNext(1, 5*time.Second)
	rc, err := w.iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(400))
	if err != nil {
		t.Fatal(err)
	}
	if rc.State != payment.StateSettling {
		t.Fatalf("state = %s", rc.State)
	}
	if len(w.rail.Charges()) != 1 {
		t.Fatal("the delayed charge was not made")
	}
	w.settleAll()
	if r := w.record(m.Claims.HoldID); r.State != payment.StateSettled || r.Reference != w.rail.Charges()[0].Reference {
		t.Fatalf("record = %+v", r)
	}
	if len(w.rail.Charges()) != 1 || w.rail.Calls() != 2 {
		t.Fatalf("charges %d calls %d", len(w.rail.Charges()), w.rail.Calls())
	}
	w.consistent(m.Claims.HoldID)
}

func TestRailRefuses(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := w.mint(1000)
	w.rail.Refuse(m.Claims.HoldID)
	_, err := w.iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(400))
	wantCode(t, err, payment.ErrSettlementRefused)
	r := w.record(m.Claims.HoldID)
	if r.State != payment.StateReversed {
		t.Fatalf("state = %s", r.State)
	}
	if h := w.hold(m.Claims.HoldID); h.State != budget.HoldReversed {
		t.Fatalf("hold = %s", h.State)
	}
	// The provider is told: a callback, and the same answer on retry.
	var states []payment.RedemptionState
	for _, f := range w.finals() {
		states = append(states, f.State)
	}
	if len(states) != 2 || states[0] != payment.StateRefused || states[1] != payment.StateReversed {
		t.Fatalf("notifications = %v", states)
	}
	_, err = w.iss.Redeem(ctx, "cloudflare", m.Token, budget.USD(400))
	wantCode(t, err, payment.ErrSettlementRefused)
	w.consistent(m.Claims.HoldID)
	if w.rail.Total("USD") != 0 || w.spent() != 0 {
		t.Fatal("money moved on a refusal")
	}
}

// TestCrashRecovery kills the process (drops the Issuer, keeps the stores,
// ledger and rail) at every step and recovers with SettlePending.
func TestCrashRecovery(t *testing.T) {
	cases := []struct {
		name   string
		inject func(w *world, f *faultHolds, cr *crashRail, holdID string)
	}{
		{"before commit", func(w *world, f *faultHolds, _ *crashRail, _ string) { f.commitBefore = 1 }},
		{"after commit", func(w *world, f *faultHolds, _ *crashRail, _ string) { f.commitAfter = 1 }},
		{"after charge", func(w *world, _ *faultHolds, cr *crashRail, _ string) { cr.n = 1 }},
		{"before reverse", func(w *world, f *faultHolds, _ *crashRail, id string) { f.reverse = 1; w.rail.Refuse(id) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			f := &faultHolds{Holds: w.ledger}
			cr := &crashRail{MemoryRail: w.rail}
			w.holds = f
			iss, err := issuer.NewIssuer(testIss, testKey(), f, &issuer.IssuerOptions{Rail: cr, Store: w.store, Now: w.clk.Now, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			w.iss = iss
			m := w.mint(900)
			tc.inject(w, f, cr, m.Claims.HoldID)
			_, _ = w.iss.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(600))

			// Crash: a new process with the same durable state.
			w.iss, err = issuer.NewIssuer(testIss, testKey(), f, &issuer.IssuerOptions{Rail: w.rail, Store: w.store, Now: w.clk.Now, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			w.settleAll()
			w.consistent(m.Claims.HoldID)
			r := w.record(m.Claims.HoldID)
			if tc.name == "before reverse" {
				if r.State != payment.StateReversed {
					t.Fatalf("state %s", r.State)
				}
			} else if r.State != payment.StateSettled || r.Amount != budget.USD(600) {
				t.Fatalf("state %s amount %v", r.State, r.Amount)
			}
			// The provider retrying after the crash gets the outcome, not a new charge.
			_, err = w.iss.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(600))
			if tc.name == "before reverse" {
				wantCode(t, err, payment.ErrSettlementRefused)
			} else if err != nil {
				t.Fatal(err)
			}
			w.consistent(m.Claims.HoldID)
		})
	}
}

func TestRevokeReleaseRetried(t *testing.T) {
	w := newWorld(t)
	f := &faultHolds{Holds: w.ledger, release: 1}
	w.holds = f
	w.restart()
	m := w.mint(300)
	if err := w.iss.Revoke(context.Background(), m.Claims.HoldID, "user"); err == nil {
		t.Fatal("release fault not reported")
	}
	if r := w.record(m.Claims.HoldID); r.State != payment.StateRevoking {
		t.Fatalf("state %s", r.State)
	}
	_, err := w.iss.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(1))
	wantCode(t, err, payment.ErrTokenRevoked)
	w.settleAll()
	w.consistent(m.Claims.HoldID)
	if r := w.record(m.Claims.HoldID); r.State != payment.StateRevoked {
		t.Fatalf("state %s", r.State)
	}
}

func TestSettlerRunStops(t *testing.T) {
	w := newWorld(t)
	s, err := issuer.NewSettler(w.iss, &issuer.SettlerOptions{Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run = %v", err)
	}
}

// rendezvousRail answers a charge only once two charges are in progress at
// the same time, or when the caller gives up.
type rendezvousRail struct {
	mu      sync.Mutex
	waiting int
	met     chan struct{}
}

func (r *rendezvousRail) Charge(ctx context.Context, req issuer.ChargeRequest) (issuer.ChargeResult, error) {
	r.mu.Lock()
	r.waiting++
	if r.waiting == 2 {
		close(r.met)
	}
	r.mu.Unlock()
	select {
	case <-r.met:
		return issuer.ChargeResult{Reference: "r-" + req.HoldID}, nil
	case <-ctx.Done():
		return issuer.ChargeResult{}, ctx.Err()
	}
}

// TestOutboxDrivesRecordsInParallel: one slow charge does not hold up the
// others; both charges meet, which only happens if they run at once.
func TestOutboxDrivesRecordsInParallel(t *testing.T) {
	w := newWorld(t)
	rail := &rendezvousRail{met: make(chan struct{})}
	f := &faultHolds{Holds: w.ledger, commitBefore: 2} // leave both redemptions pending
	iss, err := issuer.NewIssuer(testIss, testKey(), f, &issuer.IssuerOptions{Rail: rail, Store: w.store, Now: w.clk.Now, Logger: quietLogger(), SettleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	w.iss = iss
	a, b := w.mint(100), w.mint(100)
	for _, m := range []*issuer.Minted{a, b} {
		_, err := iss.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(100))
		wantCode(t, err, payment.ErrRedemptionInFlight)
	}
	w.clk.Advance(2 * time.Minute) // past the retry backoff, well within the holds' lives
	if _, err := iss.SettlePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*issuer.Minted{a, b} {
		if r := w.record(m.Claims.HoldID); r.State != payment.StateSettled {
			t.Fatalf("%s: %s", m.Claims.HoldID, r.State)
		}
	}
}
