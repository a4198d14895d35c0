package payment_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/go-jose/go-jose/v4"
)

// testSeed is the fixed Ed25519 seed of the golden vectors.
var testSeed = []byte("agentprov-payment-test-key-seed!") // 32 bytes

func testKey() payment.SigningKey {
	return payment.SigningKey{KeyID: "orch-2026", Key: ed25519.NewKeyFromSeed(testSeed)}
}

var testStart = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

const testIss = "https://orchestrator.example"

// world is one orchestrator: ledger, stores, rail and issuer, on a fake clock.
// tb is what both *testing.T and *rapid.T offer.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

type world struct {
	t      tb
	clk    *clock.Fake
	ledger *budget.Ledger
	holds  issuer.Holds
	store  *issuer.MemoryRedemptionStore
	rail   *issuer.MemoryRail
	iss    *issuer.Issuer

	settleTimeout time.Duration

	mu    sync.Mutex
	final []issuer.Redemption
}

func (w *world) finals() []issuer.Redemption {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]issuer.Redemption(nil), w.final...)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWorld(t tb) *world {
	t.Helper()
	w := &world{t: t, clk: clock.NewFake(testStart), store: issuer.NewMemoryRedemptionStore(), rail: issuer.NewMemoryRail(nil)}
	l, err := budget.NewLedger(budget.NewMemoryStore(nil), &budget.LedgerOptions{Now: w.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	w.ledger, w.holds = l, l
	w.iss = w.restart()
	return w
}

// restart builds a fresh Issuer over the same stores, ledger and rail: what
// survives a crash.
func (w *world) restart() *issuer.Issuer {
	w.t.Helper()
	iss, err := issuer.NewIssuer(testIss, testKey(), w.holds, &issuer.IssuerOptions{
		Rail: w.rail, Store: w.store, Now: w.clk.Now, Logger: quietLogger(), SettleTimeout: w.settleTimeout,
		Authenticate: issuer.BearerAuthenticator(map[string]string{"cloudflare": "cf-key", "neon": "neon-key"}),
		OnFinal: func(_ context.Context, r issuer.Redemption) {
			w.mu.Lock()
			w.final = append(w.final, r)
			w.mu.Unlock()
		},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.iss = iss
	return iss
}

func (w *world) mint(max int64) *issuer.Minted {
	w.t.Helper()
	m, err := w.iss.Mint(context.Background(), issuer.MintRequest{
		Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(max),
	})
	if err != nil {
		w.t.Fatalf("Mint: %v", err)
	}
	return m
}

func (w *world) hold(id string) budget.Hold {
	w.t.Helper()
	h, err := w.ledger.Hold(context.Background(), id)
	if err != nil {
		w.t.Fatalf("Hold(%s): %v", id, err)
	}
	return h.At(w.clk.Now())
}

func (w *world) record(id string) issuer.Redemption {
	w.t.Helper()
	r, err := w.store.Get(context.Background(), id)
	if err != nil {
		w.t.Fatalf("record %s: %v", id, err)
	}
	return r
}

// spent is what the budget counts as committed for the test scope this month.
func (w *world) spent() int64 {
	w.t.Helper()
	u, err := w.ledger.Usage(context.Background(), budget.Scope{Project: "proj-1", Provider: "cloudflare"})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range u.Counters {
		if c.Counter.Window.Period() == budget.Month && c.Counter.Provider == "cloudflare" {
			return c.Committed
		}
	}
	w.t.Fatal("no month counter")
	return 0
}

// consistent asserts the money invariant: for every record, the budget and
// the rail agree with the record's final state.
func (w *world) consistent(ids ...string) {
	w.t.Helper()
	var settled int64
	for _, id := range ids {
		r := w.record(id)
		h := w.hold(id)
		switch r.State {
		case payment.StateSettled:
			settled += r.Amount.Amount
			if h.State != budget.HoldCommitted || h.Committed != r.Amount {
				w.t.Errorf("%s settled but hold is %s/%v", id, h.State, h.Committed)
			}
		case payment.StateReversed:
			if h.State != budget.HoldReversed {
				w.t.Errorf("%s reversed but hold is %s", id, h.State)
			}
		case payment.StateRevoked, payment.StateVoid:
			if h.State == budget.HoldActive || h.State == budget.HoldCommitted {
				w.t.Errorf("%s %s but hold is %s", id, r.State, h.State)
			}
		default:
			w.t.Errorf("%s not final: %s", id, r.State)
		}
	}
	if got := w.rail.Total("USD"); got != settled {
		w.t.Errorf("rail charged %d, settled records sum to %d", got, settled)
	}
	if got := w.spent(); got != settled {
		w.t.Errorf("budget counts %d committed, settled records sum to %d", got, settled)
	}
	seen := map[string]bool{}
	for _, c := range w.rail.Charges() {
		if seen[c.IdempotencyKey] {
			w.t.Errorf("key %s charged twice", c.IdempotencyKey)
		}
		seen[c.IdempotencyKey] = true
	}
}

func wantCode(t tb, err error, want *payment.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want code %s", err, want.Code)
	}
}

// faultHolds wraps Holds to inject failures. "after" faults perform the
// operation and then report an error: a crash between the side effect and
// the record update.
type faultHolds struct {
	issuer.Holds
	mu                                          sync.Mutex
	commitBefore, commitAfter, reverse, release int
	commits                                     int
}

func (f *faultHolds) take(n *int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

var errInjected = errors.New("injected fault")

func (f *faultHolds) Commit(ctx context.Context, id string, m budget.Money) (budget.Hold, error) {
	f.mu.Lock()
	f.commits++
	f.mu.Unlock()
	if f.take(&f.commitBefore) {
		return budget.Hold{}, errInjected
	}
	h, err := f.Holds.Commit(ctx, id, m)
	if err == nil && f.take(&f.commitAfter) {
		return budget.Hold{}, errInjected
	}
	return h, err
}

func (f *faultHolds) Reverse(ctx context.Context, id, reason string) (budget.Hold, error) {
	if f.take(&f.reverse) {
		return budget.Hold{}, errInjected
	}
	return f.Holds.Reverse(ctx, id, reason)
}

func (f *faultHolds) Release(ctx context.Context, id string) (budget.Hold, error) {
	if f.take(&f.release) {
		return budget.Hold{}, errInjected
	}
	return f.Holds.Release(ctx, id)
}

func (f *faultHolds) commitCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commits
}

// crashRail charges through the MemoryRail and then reports an error for
// the next n calls: the charge happened, the caller never heard.
type crashRail struct {
	*issuer.MemoryRail
	mu sync.Mutex
	n  int
}

func (c *crashRail) Charge(ctx context.Context, req issuer.ChargeRequest) (issuer.ChargeResult, error) {
	res, err := c.MemoryRail.Charge(ctx, req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.n > 0 {
		c.n--
		return issuer.ChargeResult{}, errInjected
	}
	return res, err
}

// testSigner is a signer of testKey for typ, the one an Issuer made with
// testKey signs typ with.
func testSigner(t tb, typ string) jose.Signer {
	t.Helper()
	s, err := paywire.SignerFor(testKey(), typ)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

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
