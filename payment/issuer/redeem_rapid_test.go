package issuer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// tokenModel is what the model knows of one minted token.
type tokenModel struct {
	m        *issuer.Minted
	redeemed int64 // amount of the first accepted redemption, 0 if none
	revoked  bool
	refused  bool
}

// TestRedemptionStateMachine drives random interleavings of mint, redeem,
// retry, rail faults, refusals, revocation, sweeps, crashes and clock moves
// against a model, checking after every step that no money is created or
// lost and that each token is charged at most once.
func TestRedemptionStateMachine(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(rt)
		w.settleTimeout = 5 * time.Millisecond
		f := &faultHolds{Holds: w.ledger}
		w.holds = f
		w.restart()
		ctx := context.Background()
		var toks []*tokenModel
		pick := func() *tokenModel {
			return toks[rapid.IntRange(0, len(toks)-1).Draw(rt, "tok")]
		}
		rt.Repeat(map[string]func(*rapid.T){
			"mint": func(rt *rapid.T) {
				if len(toks) >= 6 {
					rt.Skip("enough tokens")
				}
				m, err := w.iss.Mint(ctx, issuer.MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain",
					MaxAmount: budget.USD(1000), IdempotencyKey: fmt.Sprint("m", len(toks))})
				if err != nil {
					rt.Fatal(err)
				}
				toks = append(toks, &tokenModel{m: m})
			},
			"redeem": func(rt *rapid.T) {
				if len(toks) == 0 {
					rt.Skip("no token")
				}
				tm := pick()
				amt := int64(rapid.SampledFrom([]int64{100, 250, 1000, 1001}).Draw(rt, "amount"))
				rc, err := w.iss.Redeem(ctx, "cloudflare", tm.m.Token, budget.USD(amt))
				rec := w.record(tm.m.Claims.HoldID)
				switch {
				case err == nil:
					if tm.revoked || (tm.redeemed != 0 && tm.redeemed != amt) || amt > 1000 {
						rt.Fatalf("redeem %d accepted: model %+v", amt, *tm)
					}
					if rc.Amount.Amount != amt || rc.Signed == "" {
						rt.Fatalf("receipt %+v", rc)
					}
					tm.redeemed = amt
				case errors.Is(err, payment.ErrAlreadyRedeemed):
					if tm.redeemed == 0 || tm.redeemed == amt {
						rt.Fatalf("already_redeemed with model %+v amount %d", *tm, amt)
					}
				case errors.Is(err, payment.ErrAmountExceedsMax):
					if amt <= 1000 {
						rt.Fatal("amount_exceeds_max for", amt)
					}
				case errors.Is(err, payment.ErrTokenRevoked), errors.Is(err, payment.ErrTokenExpired):
					if rec.State != payment.StateRevoking && rec.State != payment.StateRevoked && rec.State != payment.StateVoid && rec.State != payment.StateIssued {
						rt.Fatalf("%v with record %s", err, rec.State)
					}
				case errors.Is(err, payment.ErrSettlementRefused):
					if !tm.refused {
						rt.Fatal("refused without a refusal")
					}
					tm.redeemed = amt
				case errors.Is(err, payment.ErrRedemptionInFlight):
					if rec.State != payment.StatePending {
						rt.Fatalf("in flight with %s", rec.State)
					}
					tm.redeemed = amt
				default:
					rt.Fatalf("redeem: %v", err)
				}
			},
			"railFails": func(rt *rapid.T) { w.rail.FailNext(rapid.IntRange(1, 3).Draw(rt, "n")) },
			"railSlow":  func(rt *rapid.T) { w.rail.DelayNext(1, time.Second) },
			"refuse": func(rt *rapid.T) {
				if len(toks) == 0 {
					rt.Skip("no token")
				}
				tm := pick()
				if tm.redeemed != 0 {
					rt.Skip("already redeemed")
				}
				tm.refused = true
				w.rail.Refuse(tm.m.Claims.HoldID)
			},
			"commitFault": func(rt *rapid.T) {
				f.mu.Lock()
				if rapid.Bool().Draw(rt, "after") {
					f.commitAfter = 1
				} else {
					f.commitBefore = 1
				}
				f.mu.Unlock()
			},
			"revoke": func(rt *rapid.T) {
				if len(toks) == 0 {
					rt.Skip("no token")
				}
				tm := pick()
				err := w.iss.Revoke(ctx, tm.m.Claims.HoldID, "test")
				switch {
				case err == nil:
					if tm.redeemed != 0 {
						rt.Fatal("revoked a redeemed token")
					}
					tm.revoked = true
				case errors.Is(err, payment.ErrAlreadyRedeemed):
					if tm.redeemed == 0 && !w.record(tm.m.Claims.HoldID).State.Final() {
						rt.Fatal("already_redeemed on an unredeemed token")
					}
				default:
					rt.Fatal(err)
				}
			},
			"advance": func(rt *rapid.T) {
				w.clk.Advance(time.Duration(rapid.IntRange(1, 400).Draw(rt, "s")) * time.Second)
			},
			"settle": func(rt *rapid.T) { _, _ = w.iss.SettlePending(ctx) },
			"crash":  func(rt *rapid.T) { w.restart() },
			"": func(rt *rapid.T) {
				charged := map[string]int64{}
				for _, c := range w.rail.Charges() {
					charged[c.HoldID] = c.Amount.Amount
				}
				for _, tm := range toks {
					id := tm.m.Claims.HoldID
					r := w.record(id)
					h := w.hold(id)
					c, isCharged := charged[id]
					switch r.State {
					case payment.StateSettled:
						if !isCharged || c != r.Amount.Amount || h.State != budget.HoldCommitted || h.Committed != r.Amount {
							rt.Fatalf("settled %s: charge %v %d, hold %s %v", id, isCharged, c, h.State, h.Committed)
						}
					case payment.StateIssued, payment.StateRevoking, payment.StateRevoked, payment.StateVoid, payment.StateRefused, payment.StateReversed, payment.StatePending:
						if isCharged {
							rt.Fatalf("%s %s but charged", id, r.State)
						}
					}
					if isCharged && c != tm.redeemed {
						rt.Fatalf("charged %d, model redeemed %d", c, tm.redeemed)
					}
				}
			},
		})
		// Eventually everything is final and consistent.
		f.mu.Lock()
		f.commitAfter, f.commitBefore = 0, 0
		f.mu.Unlock()
		w.rail.FailNext(0)
		w.settleAll()
		ids := make([]string, len(toks))
		for i, tm := range toks {
			ids[i] = tm.m.Claims.HoldID
		}
		w.consistent(ids...)
	})
}
