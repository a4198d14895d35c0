package issuer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

func TestRailFailsThenOutboxConfirms(t *testing.T) {
	w := paytest.NewWorld(t)
	ctx := context.Background()
	m := w.Mint(1000)
	w.Rail.FailNext(3)
	rc, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(700))
	if err != nil {
		t.Fatal(err)
	}
	if rc.State != payment.StateSettling || rc.Signed == "" {
		t.Fatalf("receipt while the rail fails = %+v", rc)
	}
	// The commit stands while settlement is pending.
	if h := w.Hold(m.Claims.HoldID); h.State != budget.HoldCommitted {
		t.Fatalf("hold = %s", h.State)
	}
	w.SettleAll()
	r := w.Record(m.Claims.HoldID)
	if r.State != payment.StateSettled || r.Attempts != 4 {
		t.Fatalf("record = %s after %d attempts", r.State, r.Attempts)
	}
	if len(w.Rail.Charges()) != 1 || w.Rail.Calls() != 4 {
		t.Fatalf("charges %d, calls %d", len(w.Rail.Charges()), w.Rail.Calls())
	}
	again, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(700))
	if err != nil || again.State != payment.StateSettled || again.Signed != rc.Signed {
		t.Fatalf("after settlement: %+v %v", again, err)
	}
	w.Consistent(m.Claims.HoldID)
}

func TestRailTimesOutButCharged(t *testing.T) {
	w := paytest.NewWorld(t)
	w.SettleTimeout = 20 * time.Millisecond
	w.Restart()
	ctx := context.Background()
	m := w.Mint(1000)
	// The rail charges, then answers long after the caller's deadline.
	w.Rail.DelayNext(1, 5*time.Second)
	rc, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(400))
	if err != nil {
		t.Fatal(err)
	}
	if rc.State != payment.StateSettling {
		t.Fatalf("state = %s", rc.State)
	}
	if len(w.Rail.Charges()) != 1 {
		t.Fatal("the delayed charge was not made")
	}
	w.SettleAll()
	if r := w.Record(m.Claims.HoldID); r.State != payment.StateSettled || r.Reference != w.Rail.Charges()[0].Reference {
		t.Fatalf("record = %+v", r)
	}
	if len(w.Rail.Charges()) != 1 || w.Rail.Calls() != 2 {
		t.Fatalf("charges %d calls %d", len(w.Rail.Charges()), w.Rail.Calls())
	}
	w.Consistent(m.Claims.HoldID)
}

func TestRailRefuses(t *testing.T) {
	w := paytest.NewWorld(t)
	ctx := context.Background()
	m := w.Mint(1000)
	w.Rail.Refuse(m.Claims.HoldID)
	_, err := w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(400))
	paytest.WantCode(t, err, payment.ErrSettlementRefused)
	r := w.Record(m.Claims.HoldID)
	if r.State != payment.StateReversed {
		t.Fatalf("state = %s", r.State)
	}
	if h := w.Hold(m.Claims.HoldID); h.State != budget.HoldReversed {
		t.Fatalf("hold = %s", h.State)
	}
	// The provider is told: a callback, and the same answer on retry.
	var states []payment.RedemptionState
	for _, f := range w.Finals() {
		states = append(states, f.State)
	}
	if len(states) != 2 || states[0] != payment.StateRefused || states[1] != payment.StateReversed {
		t.Fatalf("notifications = %v", states)
	}
	_, err = w.Issuer.Redeem(ctx, "cloudflare", m.Token, budget.USD(400))
	paytest.WantCode(t, err, payment.ErrSettlementRefused)
	w.Consistent(m.Claims.HoldID)
	if w.Rail.Total("USD") != 0 || w.Spent() != 0 {
		t.Fatal("money moved on a refusal")
	}
}

// TestCrashRecovery kills the process (drops the Issuer, keeps the stores,
// ledger and rail) at every step and recovers with SettlePending.
func TestCrashRecovery(t *testing.T) {
	cases := []struct {
		name   string
		inject func(w *paytest.World, f *paytest.FaultHolds, cr *paytest.CrashRail, holdID string)
	}{
		{"before commit", func(w *paytest.World, f *paytest.FaultHolds, _ *paytest.CrashRail, _ string) { f.FailBeforeCommit = 1 }},
		{"after commit", func(w *paytest.World, f *paytest.FaultHolds, _ *paytest.CrashRail, _ string) { f.FailAfterCommit = 1 }},
		{"after charge", func(w *paytest.World, _ *paytest.FaultHolds, cr *paytest.CrashRail, _ string) { cr.Crashes = 1 }},
		{"before reverse", func(w *paytest.World, f *paytest.FaultHolds, _ *paytest.CrashRail, id string) {
			f.FailReverse = 1
			w.Rail.Refuse(id)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := paytest.NewWorld(t)
			f := &paytest.FaultHolds{Holds: w.Ledger}
			cr := &paytest.CrashRail{MemoryRail: w.Rail}
			w.Holds = f
			iss, err := issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), f, &issuer.IssuerOptions{Rail: cr, Store: w.Store, Now: w.Clock.Now, Logger: paytest.QuietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			w.Issuer = iss
			m := w.Mint(900)
			tc.inject(w, f, cr, m.Claims.HoldID)
			_, _ = w.Issuer.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(600))

			// Crash: a new process with the same durable state.
			w.Issuer, err = issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), f, &issuer.IssuerOptions{Rail: w.Rail, Store: w.Store, Now: w.Clock.Now, Logger: paytest.QuietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			w.SettleAll()
			w.Consistent(m.Claims.HoldID)
			r := w.Record(m.Claims.HoldID)
			if tc.name == "before reverse" {
				if r.State != payment.StateReversed {
					t.Fatalf("state %s", r.State)
				}
			} else if r.State != payment.StateSettled || r.Amount != budget.USD(600) {
				t.Fatalf("state %s amount %v", r.State, r.Amount)
			}
			// The provider retrying after the crash gets the outcome, not a new charge.
			_, err = w.Issuer.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(600))
			if tc.name == "before reverse" {
				paytest.WantCode(t, err, payment.ErrSettlementRefused)
			} else if err != nil {
				t.Fatal(err)
			}
			w.Consistent(m.Claims.HoldID)
		})
	}
}

func TestRevokeReleaseRetried(t *testing.T) {
	w := paytest.NewWorld(t)
	f := &paytest.FaultHolds{Holds: w.Ledger, FailRelease: 1}
	w.Holds = f
	w.Restart()
	m := w.Mint(300)
	if err := w.Issuer.Revoke(context.Background(), m.Claims.HoldID, "user"); err == nil {
		t.Fatal("release fault not reported")
	}
	if r := w.Record(m.Claims.HoldID); r.State != payment.StateRevoking {
		t.Fatalf("state %s", r.State)
	}
	_, err := w.Issuer.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(1))
	paytest.WantCode(t, err, payment.ErrTokenRevoked)
	w.SettleAll()
	w.Consistent(m.Claims.HoldID)
	if r := w.Record(m.Claims.HoldID); r.State != payment.StateRevoked {
		t.Fatalf("state %s", r.State)
	}
}

func TestSettlerRunStops(t *testing.T) {
	w := paytest.NewWorld(t)
	s, err := issuer.NewSettler(w.Issuer, &issuer.SettlerOptions{Interval: time.Millisecond})
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
	w := paytest.NewWorld(t)
	rail := &rendezvousRail{met: make(chan struct{})}
	f := &paytest.FaultHolds{Holds: w.Ledger, FailBeforeCommit: 2} // leave both redemptions pending
	iss, err := issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), f, &issuer.IssuerOptions{Rail: rail, Store: w.Store, Now: w.Clock.Now, Logger: paytest.QuietLogger(), SettleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	w.Issuer = iss
	a, b := w.Mint(100), w.Mint(100)
	for _, m := range []*issuer.Minted{a, b} {
		_, err := iss.Redeem(context.Background(), "cloudflare", m.Token, budget.USD(100))
		paytest.WantCode(t, err, payment.ErrRedemptionInFlight)
	}
	w.Clock.Advance(2 * time.Minute) // past the retry backoff, well within the holds' lives
	if _, err := iss.SettlePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*issuer.Minted{a, b} {
		if r := w.Record(m.Claims.HoldID); r.State != payment.StateSettled {
			t.Fatalf("%s: %s", m.Claims.HoldID, r.State)
		}
	}
}
