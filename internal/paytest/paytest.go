// Package paytest is the shared test harness of payment's packages: an
// orchestrator (ledger, stores, rail and issuer on a fake clock) with the
// assertions and fault injectors their tests use. It is test support for
// this module's own tests, not for users, and only _test.go files import it.
package paytest

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
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// Seed is the fixed Ed25519 seed of the golden vectors.
var Seed = []byte("agentprov-payment-test-key-seed!") // 32 bytes

// Key is the signing key of the golden vectors, made from Seed.
func Key() payment.SigningKey {
	return payment.SigningKey{KeyID: "orch-2026", Key: ed25519.NewKeyFromSeed(Seed)}
}

// Start is the instant every World's fake clock starts at.
var Start = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// IssuerURL is the issuer identifier of every World's Issuer.
const IssuerURL = "https://orchestrator.example"

// TB is what both *testing.T and *rapid.T offer.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// World is one orchestrator: ledger, stores, rail and issuer, on a fake clock.
// Tests may replace Holds, Rail or SettleTimeout and call Restart to build
// an Issuer over them.
type World struct {
	T      TB                            // reports the World's failures
	Clock  *clock.Fake                   // the clock of the ledger and the Issuer
	Ledger *budget.Ledger                // the budget the holds live in
	Holds  issuer.Holds                  // what the Issuer holds through: Ledger unless replaced
	Store  *issuer.MemoryRedemptionStore // the redemption records
	Rail   *issuer.MemoryRail            // the settlement rail
	Issuer *issuer.Issuer                // the current Issuer, replaced by Restart

	// SettleTimeout is the IssuerOptions.SettleTimeout Restart passes.
	SettleTimeout time.Duration

	mu    sync.Mutex
	final []issuer.Redemption
}

// Finals returns the redemptions the Issuer has reported final, in order.
func (w *World) Finals() []issuer.Redemption {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]issuer.Redemption(nil), w.final...)
}

// QuietLogger is a logger that discards everything.
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// NewWorld returns a World with in-memory stores and an Issuer over them.
func NewWorld(t TB) *World {
	t.Helper()
	w := &World{T: t, Clock: clock.NewFake(Start), Store: issuer.NewMemoryRedemptionStore(), Rail: issuer.NewMemoryRail(nil)}
	l, err := budget.NewLedger(budget.NewMemoryStore(nil), &budget.LedgerOptions{Now: w.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	w.Ledger, w.Holds = l, l
	w.Issuer = w.Restart()
	return w
}

// Restart builds a fresh Issuer over the same stores, ledger and rail: what
// survives a crash.
func (w *World) Restart() *issuer.Issuer {
	w.T.Helper()
	iss, err := issuer.NewIssuer(IssuerURL, Key(), w.Holds, &issuer.IssuerOptions{
		Rail: w.Rail, Store: w.Store, Now: w.Clock.Now, Logger: QuietLogger(), SettleTimeout: w.SettleTimeout,
		Authenticate: issuer.BearerAuthenticator(map[string]string{"cloudflare": "cf-key", "neon": "neon-key"}),
		OnFinal: func(_ context.Context, r issuer.Redemption) {
			w.mu.Lock()
			w.final = append(w.final, r)
			w.mu.Unlock()
		},
	})
	if err != nil {
		w.T.Fatal(err)
	}
	w.Issuer = iss
	return iss
}

// Mint mints a token for the test scope with a ceiling of max cents (USD).
func (w *World) Mint(max int64) *issuer.Minted {
	w.T.Helper()
	m, err := w.Issuer.Mint(context.Background(), issuer.MintRequest{
		Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(max),
	})
	if err != nil {
		w.T.Fatalf("Mint: %v", err)
	}
	return m
}

// Hold returns the ledger's hold id as of the World's clock.
func (w *World) Hold(id string) budget.Hold {
	w.T.Helper()
	h, err := w.Ledger.Hold(context.Background(), id)
	if err != nil {
		w.T.Fatalf("Hold(%s): %v", id, err)
	}
	return h.At(w.Clock.Now())
}

// Record returns the redemption record of id.
func (w *World) Record(id string) issuer.Redemption {
	w.T.Helper()
	r, err := w.Store.Get(context.Background(), id)
	if err != nil {
		w.T.Fatalf("record %s: %v", id, err)
	}
	return r
}

// Spent is what the budget counts as committed for the test scope this month.
func (w *World) Spent() int64 {
	w.T.Helper()
	u, err := w.Ledger.Usage(context.Background(), budget.Scope{Project: "proj-1", Provider: "cloudflare"})
	if err != nil {
		w.T.Fatal(err)
	}
	for _, c := range u.Counters {
		if c.Counter.Window.Period() == budget.Month && c.Counter.Provider == "cloudflare" {
			return c.Committed
		}
	}
	w.T.Fatal("no month counter")
	return 0
}

// Consistent asserts the money invariant: for every record, the budget and
// the rail agree with the record's final state.
func (w *World) Consistent(ids ...string) {
	w.T.Helper()
	var settled int64
	for _, id := range ids {
		r := w.Record(id)
		h := w.Hold(id)
		switch r.State {
		case payment.StateSettled:
			settled += r.Amount.Amount
			if h.State != budget.HoldCommitted || h.Committed != r.Amount {
				w.T.Errorf("%s settled but hold is %s/%v", id, h.State, h.Committed)
			}
		case payment.StateReversed:
			if h.State != budget.HoldReversed {
				w.T.Errorf("%s reversed but hold is %s", id, h.State)
			}
		case payment.StateRevoked, payment.StateVoid:
			if h.State == budget.HoldActive || h.State == budget.HoldCommitted {
				w.T.Errorf("%s %s but hold is %s", id, r.State, h.State)
			}
		default:
			w.T.Errorf("%s not final: %s", id, r.State)
		}
	}
	if got := w.Rail.Total("USD"); got != settled {
		w.T.Errorf("rail charged %d, settled records sum to %d", got, settled)
	}
	if got := w.Spent(); got != settled {
		w.T.Errorf("budget counts %d committed, settled records sum to %d", got, settled)
	}
	seen := map[string]bool{}
	for _, c := range w.Rail.Charges() {
		if seen[c.IdempotencyKey] {
			w.T.Errorf("key %s charged twice", c.IdempotencyKey)
		}
		seen[c.IdempotencyKey] = true
	}
}

// WantCode fails t unless err carries want's protocol code.
func WantCode(t TB, err error, want *payment.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want code %s", err, want.Code)
	}
}

// FaultHolds wraps Holds to inject failures. "after" faults perform the
// operation and then report an error: a crash between the side effect and
// the record update.
type FaultHolds struct {
	issuer.Holds
	// Mu guards the fault counts; a test that changes them while the Issuer runs
	// holds it.
	Mu sync.Mutex
	// How many of the next calls fail: Commit before or after committing,
	// Reverse and Release before acting.
	FailBeforeCommit, FailAfterCommit, FailReverse, FailRelease int
	commits                                                     int
}

func (f *FaultHolds) take(n *int) bool {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

var errInjected = errors.New("injected fault")

// Commit commits through Holds, failing as FailBeforeCommit and
// FailAfterCommit say.
func (f *FaultHolds) Commit(ctx context.Context, id string, m budget.Money) (budget.Hold, error) {
	f.Mu.Lock()
	f.commits++
	f.Mu.Unlock()
	if f.take(&f.FailBeforeCommit) {
		return budget.Hold{}, errInjected
	}
	h, err := f.Holds.Commit(ctx, id, m)
	if err == nil && f.take(&f.FailAfterCommit) {
		return budget.Hold{}, errInjected
	}
	return h, err
}

// Reverse reverses through Holds unless FailReverse says to fail.
func (f *FaultHolds) Reverse(ctx context.Context, id, reason string) (budget.Hold, error) {
	if f.take(&f.FailReverse) {
		return budget.Hold{}, errInjected
	}
	return f.Holds.Reverse(ctx, id, reason)
}

// Release releases through Holds unless FailRelease says to fail.
func (f *FaultHolds) Release(ctx context.Context, id string) (budget.Hold, error) {
	if f.take(&f.FailRelease) {
		return budget.Hold{}, errInjected
	}
	return f.Holds.Release(ctx, id)
}

// CommitCalls counts the calls of Commit, failed ones included.
func (f *FaultHolds) CommitCalls() int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.commits
}

// CrashRail charges through the MemoryRail and then reports an error for
// the next Crashes calls: the charge happened, the caller never heard.
type CrashRail struct {
	*issuer.MemoryRail
	mu      sync.Mutex
	Crashes int // how many of the next successful charges report an error
}

// Charge charges through MemoryRail and then fails as Crashes says.
func (c *CrashRail) Charge(ctx context.Context, req issuer.ChargeRequest) (issuer.ChargeResult, error) {
	res, err := c.MemoryRail.Charge(ctx, req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.Crashes > 0 {
		c.Crashes--
		return issuer.ChargeResult{}, errInjected
	}
	return res, err
}

// SettleAll advances the clock past every lease and backoff and runs the
// outbox until nothing is due.
func (w *World) SettleAll() {
	w.T.Helper()
	for range 20 {
		w.Clock.Advance(10 * time.Minute)
		n, _ := w.Issuer.SettlePending(context.Background())
		if n == 0 {
			return
		}
	}
	w.T.Fatal("outbox does not converge")
}
