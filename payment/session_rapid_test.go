package payment_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentprov/agentprov/payment"
	"pgregory.net/rapid"
)

// TestRapidSessionMoney drives random interleavings of session calls
// (served and failing), provider closes, the passage of time (idle
// sessions and expiry, with the provider's periodic settlement and the
// orchestrator's outbox), and crashes of the provider, the orchestrator
// and the agent, and checks after every step that no session consumed
// more than it authorizes and the budget never exceeds its cap, and at
// the end that every served call was paid exactly once: the budget
// committed, and the rail charged, exactly the served calls, no hold is
// left, and no session redeemed more than its payer authorized.
func TestRapidSessionMoney(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		const capCents = 5000
		w := newSessWorld(t, capCents)
		ctx := context.Background()
		authorized := map[string]int64{} // session id → the payer's own count, taken before agent crashes
		noteSpend := func() {
			for id, m := range w.tr.SessionSpend() {
				authorized[id] = max(authorized[id], m.Amount)
			}
		}
		check := func(where string) {
			held, committed := w.usage()
			if held+committed > capCents {
				rt.Fatalf("%s: held %d + committed %d above the cap %d", where, held, committed, capCents)
			}
			recs, _ := w.sstore.Due(ctx, time.Time{}, w.clock.Now().Add(time.Hour), 0)
			for _, r := range recs {
				if r.Consumed < 0 || r.Consumed > r.Max.Amount || r.Settled > r.Max.Amount {
					rt.Fatalf("%s: session %s consumed %d of %s", where, r.ID, r.Consumed, r.Max)
				}
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"call": func(rt *rapid.T) {
				st, err := w.call("/v1/infer")
				if err != nil && !errors.Is(err, payment.ErrCapExceeded) {
					rt.Fatalf("call: %v", err)
				}
				if err == nil && st != 200 {
					rt.Fatalf("call: HTTP %d", st)
				}
				noteSpend()
				check("call")
			},
			"fail": func(rt *rapid.T) {
				_, _ = w.call("/v1/fail")
				noteSpend()
				check("fail")
			},
			"close": func(rt *rapid.T) {
				if _, err := w.paywall.Load().CloseSessions(ctx); err != nil {
					rt.Fatalf("close: %v", err)
				}
				check("close")
			},
			"tick": func(rt *rapid.T) {
				w.clock.add(time.Duration(rapid.IntRange(1, 30).Draw(rt, "seconds")) * time.Second)
				if _, err := w.paywall.Load().SettleSessions(ctx); err != nil {
					rt.Fatalf("settle: %v", err)
				}
				if _, err := w.iss.Load().SettlePending(ctx); err != nil {
					rt.Fatalf("outbox: %v", err)
				}
				check("tick")
			},
			"crashProvider":     func(*rapid.T) { w.crashProvider() },
			"crashOrchestrator": func(*rapid.T) { w.crashOrchestrator() },
			"crashAgent": func(*rapid.T) {
				noteSpend()
				w.crashAgent()
			},
		})
		noteSpend()
		// Quiet period: the provider closes everything, time passes in
		// steps shorter than the settlement window, the outbox runs.
		w.settleAll()
		for range 40 {
			w.clock.add(30 * time.Second)
			if _, err := w.paywall.Load().SettleSessions(ctx); err != nil {
				rt.Fatal(err)
			}
			if _, err := w.iss.Load().SettlePending(ctx); err != nil {
				rt.Fatal(err)
			}
		}
		held, committed := w.usage()
		served := w.served.Load() * e2ePrice
		if held != 0 || committed != served || w.rail.Total("USD") != served {
			rt.Fatalf("served %d: held %d, committed %d, rail %d", served, held, committed, w.rail.Total("USD"))
		}
		recs, _ := w.sstore.Due(ctx, time.Time{}, w.clock.Now().Add(time.Hour), 0)
		if len(recs) != 0 {
			rt.Fatalf("%d sessions not settled", len(recs))
		}
		for id, a := range authorized {
			r, err := w.sstore.Get(ctx, id)
			if err == nil && r.Settled > a {
				rt.Fatalf("session %s redeemed %d, its payer authorized %d", id, r.Settled, a)
			}
		}
	})
}
