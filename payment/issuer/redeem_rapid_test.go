package issuer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paytest"
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
		w := paytest.NewWorld(rt)
		w.SettleTimeout = 5 * time.Millisecond
		f := &paytest.FaultHolds{Holds: w.Ledger}
		w.Holds = f
		w.Restart()
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
				m, err := w.Issuer.Mint(ctx, issuer.MintRequest{Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain",
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
				rc, err := w.Issuer.Redeem(ctx, "cloudflare", tm.m.Token, budget.USD(amt))
				rec := w.Record(tm.m.Claims.HoldID)
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
			"railFails": func(rt *rapid.T) { w.Rail.FailNext(rapid.IntRange(1, 3).Draw(rt, "n")) },
			"railSlow":  func(rt *rapid.T) { w.Rail.DelayNext(1, time.Second) },
			"refuse": func(rt *rapid.T) {
				if len(toks) == 0 {
					rt.Skip("no token")
				}
				tm := pick()
				if tm.redeemed != 0 {
					rt.Skip("already redeemed")
				}
				tm.refused = true
				w.Rail.Refuse(tm.m.Claims.HoldID)
			},
			"commitFault": func(rt *rapid.T) {
				f.Mu.Lock()
				if rapid.Bool().Draw(rt, "after") {
					f.FailAfterCommit = 1
				} else {
					f.FailBeforeCommit = 1
				}
				f.Mu.Unlock()
			},
			"revoke": func(rt *rapid.T) {
				if len(toks) == 0 {
					rt.Skip("no token")
				}
				tm := pick()
				err := w.Issuer.Revoke(ctx, tm.m.Claims.HoldID, "test")
				switch {
				case err == nil:
					if tm.redeemed != 0 {
						rt.Fatal("revoked a redeemed token")
					}
					tm.revoked = true
				case errors.Is(err, payment.ErrAlreadyRedeemed):
					if tm.redeemed == 0 && !w.Record(tm.m.Claims.HoldID).State.Final() {
						rt.Fatal("already_redeemed on an unredeemed token")
					}
				default:
					rt.Fatal(err)
				}
			},
			"advance": func(rt *rapid.T) {
				w.Clock.Advance(time.Duration(rapid.IntRange(1, 400).Draw(rt, "s")) * time.Second)
			},
			"settle": func(rt *rapid.T) { _, _ = w.Issuer.SettlePending(ctx) },
			"crash":  func(rt *rapid.T) { w.Restart() },
			"": func(rt *rapid.T) {
				charged := map[string]int64{}
				for _, c := range w.Rail.Charges() {
					charged[c.HoldID] = c.Amount.Amount
				}
				for _, tm := range toks {
					id := tm.m.Claims.HoldID
					r := w.Record(id)
					h := w.Hold(id)
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
		f.Mu.Lock()
		f.FailAfterCommit, f.FailBeforeCommit = 0, 0
		f.Mu.Unlock()
		w.Rail.FailNext(0)
		w.SettleAll()
		ids := make([]string, len(toks))
		for i, tm := range toks {
			ids[i] = tm.m.Claims.HoldID
		}
		w.Consistent(ids...)
	})
}
