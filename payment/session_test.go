package payment_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// The session tests run orchestrator, provider and agent over loopback
// like the 402 end-to-end tests, with stores that outlive a "crash": a
// crash of the provider replaces its Paywall (cache and all) over the same
// SessionStore, a crash of the orchestrator replaces its Issuer over the
// same ledger, redemption store and rail, a crash of the agent replaces
// its Transport (its session keys die with it).

var sessSecret = []byte("provider-session-secret-0123456789abcdef")

type sessWorld struct {
	t      testing.TB
	clock  *fakeClock
	ledger *budget.Ledger
	rail   *issuer.MemoryRail
	rstore *issuer.MemoryRedemptionStore
	sstore *paywall.MemorySessionStore
	key    payment.SigningKey

	iss     atomic.Pointer[issuer.Issuer]
	paywall atomic.Pointer[paywall.Paywall]
	handler atomic.Pointer[http.Handler]
	orch    *httptest.Server
	prov    *httptest.Server
	tr      *payment.Transport
	client  *http.Client
	payer   *swapPayer

	served atomic.Int64 // successful paid handler runs
	opens  atomic.Int64
	cap    int64
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// swapPayer forwards to the payer of the current orchestrator and counts
// session openings.
type swapPayer struct {
	w  *sessWorld
	sp atomic.Pointer[payment.SessionPayer]
}

func (p *swapPayer) Pay(ctx context.Context, r *payment.PayRequest) (string, error) {
	return (*p.sp.Load()).Pay(ctx, r)
}

func (p *swapPayer) OpenSession(ctx context.Context, r *payment.SessionRequest) (*payment.SessionGrant, error) {
	p.w.opens.Add(1)
	return (*p.sp.Load()).OpenSession(ctx, r)
}

func newSessWorld(t testing.TB, capCents int64) *sessWorld {
	t.Helper()
	w := &sessWorld{t: t, clock: &fakeClock{t: time.Now().Truncate(time.Second)}, cap: capCents}
	var err error
	w.ledger, err = budget.NewLedger(budget.NewMemoryStore(nil), &budget.LedgerOptions{
		DefaultProviderCap: budget.USD(capCents), Now: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	w.rail = issuer.NewMemoryRail(nil)
	w.rstore = issuer.NewMemoryRedemptionStore()
	w.sstore = paywall.NewMemorySessionStore()
	w.key = payment.SigningKey{KeyID: "orch-sess", Key: ed25519.NewKeyFromSeed([]byte("agentprov-session-test-key-seed!"))}
	w.orch = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.iss.Load().RedemptionHandler().ServeHTTP(rw, r)
	}))
	t.Cleanup(w.orch.Close)
	w.prov = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		(*w.handler.Load()).ServeHTTP(rw, r)
	}))
	t.Cleanup(w.prov.Close)
	w.payer = &swapPayer{w: w}
	w.crashOrchestrator()
	w.crashProvider()
	w.crashAgent()
	return w
}

// crashOrchestrator replaces the Issuer (and its payer) over the same stores.
func (w *sessWorld) crashOrchestrator() {
	iss, err := issuer.NewIssuer(e2eIssuer, w.key, w.ledger, &issuer.IssuerOptions{
		Rail: w.rail, Store: w.rstore, Logger: quiet(), Now: w.clock.Now,
		Authenticate: issuer.BearerAuthenticator(map[string]string{e2eProvider: "cf-api-key"}),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.iss.Store(iss)
	sp, err := issuer.IssuerSessionPayer(iss, e2eProject, map[string][]byte{e2eProvider: sessSecret}, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.payer.sp.Store(&sp)
}

// crashProvider replaces the Paywall over the same session store.
func (w *sessWorld) crashProvider() {
	iss := w.iss.Load()
	verifier, err := payment.NewTokenVerifier(e2eIssuer, e2eProvider, iss.JWKS(), &payment.TokenVerifierOptions{Now: w.clock.Now})
	if err != nil {
		w.t.Fatal(err)
	}
	red, err := paywall.NewRedeemer(w.orch.URL+"/redeem", &paywall.RedeemerOptions{APIKey: "cf-api-key", Keys: iss.JWKS(), Issuer: e2eIssuer, HTTPClient: w.orch.Client()})
	if err != nil {
		w.t.Fatal(err)
	}
	pw, err := paywall.NewPaywall(e2eRealm, [][]byte{e2eSecret}, verifier, red, &paywall.PaywallOptions{
		Logger: quiet(), Now: w.clock.Now, Sessions: &paywall.SessionOptions{Secret: sessSecret, Store: w.sstore},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.paywall.Store(pw)
	paid := pw.RequireMetered(e2eService, budget.USD(e2ePrice))
	mux := http.NewServeMux()
	mux.Handle("GET /v1/infer", paid(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.Contains(strings.Join(r.Header.Values("Authorization"), ","), payment.SchemeName) {
			w.t.Error("handler sees the payment credential")
		}
		if p, ok := paywall.PaidFromContext(r.Context()); !ok || p.Price != budget.USD(e2ePrice) || p.Claims == nil {
			w.t.Errorf("PaidFromContext = %+v, %v", p, ok)
		}
		w.served.Add(1)
		_, _ = io.WriteString(rw, "inferred")
	})))
	mux.Handle("GET /v1/fail", paid(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, "model down", http.StatusBadGateway)
	})))
	mux.Handle("GET /free", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(rw, "inferred")
	}))
	var h http.Handler = mux
	w.handler.Store(&h)
}

// crashAgent replaces the Transport: its open sessions are forgotten.
func (w *sessWorld) crashAgent() { w.crashAgentWith(nil) }

// crashAgentWith is crashAgent with options (default: sessions of 8 calls).
func (w *sessWorld) crashAgentWith(opts *payment.TransportOptions) {
	o := payment.TransportOptions{SessionCalls: 8}
	if opts != nil {
		o = *opts
	}
	o.Base, o.Now = w.prov.Client().Transport, w.clock.Now
	tr, err := payment.NewTransport(w.payer, map[string]string{w.prov.URL: e2eProvider}, budget.USD(1000), &o)
	if err != nil {
		w.t.Fatal(err)
	}
	w.tr = tr
	w.client = &http.Client{Transport: tr}
}

func (w *sessWorld) call(path string) (int, error) {
	resp, err := w.client.Get(w.prov.URL + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusOK && resp.Header.Get(payment.ReceiptHeaderName) == "" {
		w.t.Error("paid answer without Payment-Receipt")
	}
	return resp.StatusCode, nil
}

func (w *sessWorld) usage() (held, committed int64) {
	w.t.Helper()
	u, err := w.ledger.Usage(context.Background(), budget.Scope{Project: e2eProject, Provider: e2eProvider})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range u.Counters {
		if c.Counter.Window.Period() == budget.Month && c.Counter.Provider == e2eProvider {
			return c.Held, c.Committed
		}
	}
	return 0, 0
}

// settleAll closes every session at the provider and drives the
// orchestrator's outbox, as a quiet period would.
func (w *sessWorld) settleAll() {
	w.t.Helper()
	ctx := context.Background()
	if _, err := w.paywall.Load().CloseSessions(ctx); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.iss.Load().SettlePending(ctx); err != nil {
		w.t.Fatal(err)
	}
}

func TestSessionCallsSettleOnce(t *testing.T) {
	w := newSessWorld(t, 10000)
	for i := range 5 {
		if st, err := w.call("/v1/infer"); err != nil || st != 200 {
			t.Fatalf("call %d: %d %v", i, st, err)
		}
	}
	if w.opens.Load() != 1 {
		t.Errorf("opened %d sessions for 5 calls, want 1", w.opens.Load())
	}
	// The whole session maximum is held, nothing spent yet.
	if held, committed := w.usage(); held != 8*e2ePrice || committed != 0 {
		t.Errorf("during the session: held %d committed %d, want %d and 0", held, committed, 8*e2ePrice)
	}
	spend := w.tr.SessionSpend()
	if len(spend) != 1 {
		t.Fatalf("SessionSpend = %v", spend)
	}
	w.settleAll()
	if held, committed := w.usage(); held != 0 || committed != 5*e2ePrice {
		t.Errorf("after settlement: held %d committed %d, want 0 and %d", held, committed, 5*e2ePrice)
	}
	if got := w.rail.Total("USD"); got != 5*e2ePrice {
		t.Errorf("rail charged %d, want %d", got, 5*e2ePrice)
	}
	for id, m := range spend {
		rec, err := w.paywall.Load().Session(context.Background(), id)
		if err != nil || rec.State != paywall.SessionSettled || rec.Settled != m.Amount {
			t.Errorf("session %s: %+v %v; payer authorized %s", id, rec, err, m)
		}
	}
	// Settling again changes nothing.
	w.settleAll()
	if got := w.rail.Total("USD"); got != 5*e2ePrice {
		t.Errorf("second settlement charged again: %d", got)
	}
}

func TestSessionUsedUpOpensAnother(t *testing.T) {
	w := newSessWorld(t, 10000)
	for i := range 20 {
		if st, err := w.call("/v1/infer"); err != nil || st != 200 {
			t.Fatalf("call %d: %d %v", i, st, err)
		}
	}
	if got := w.opens.Load(); got != 3 {
		t.Errorf("opened %d sessions of 8 calls for 20 calls, want 3", got)
	}
	w.settleAll()
	if held, committed := w.usage(); held != 0 || committed != 20*e2ePrice {
		t.Errorf("held %d committed %d, want 0 and %d", held, committed, 20*e2ePrice)
	}
}

func TestSessionStopsAtCap(t *testing.T) {
	w := newSessWorld(t, 10000) // $100, 2.50 a call: 40 calls
	var refused error
	for i := 0; i < 60 && refused == nil; i++ {
		st, err := w.call("/v1/infer")
		switch {
		case err != nil:
			refused = err
		case st != 200:
			t.Fatalf("call %d: HTTP %d", i, st)
		}
		if w.served.Load()*e2ePrice > 10000 {
			t.Fatalf("served %d calls, beyond the cap", w.served.Load())
		}
	}
	if !errors.Is(refused, payment.ErrCapExceeded) {
		t.Fatalf("refusal = %v, want cap_exceeded", refused)
	}
	if got := w.served.Load(); got != 40 {
		t.Errorf("served %d calls under a $100 cap at $2.50, want 40", got)
	}
	w.settleAll()
	if held, committed := w.usage(); held != 0 || committed != 10000 {
		t.Errorf("held %d committed %d, want 0 and 10000", held, committed)
	}
}

func TestSessionFailedCallNotCharged(t *testing.T) {
	w := newSessWorld(t, 10000)
	if st, _ := w.call("/v1/infer"); st != 200 {
		t.Fatal(st)
	}
	if st, _ := w.call("/v1/fail"); st != http.StatusBadGateway {
		t.Fatalf("failing handler: %d", st)
	}
	w.settleAll()
	if _, committed := w.usage(); committed != e2ePrice {
		t.Errorf("committed %d, want one call (%d)", committed, e2ePrice)
	}
}

// sessionCred builds a session call credential by hand.
func (w *sessWorld) sessionCred(t *testing.T) (open func(seq uint64, route string, withToken bool) string) {
	resp, err := w.prov.Client().Get(w.prov.URL + "/v1/infer")
	if err != nil {
		t.Fatal(err)
	}
	payment.Discard(resp)
	chs, err := payment.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	var sc *payment.Challenge
	for i := range chs {
		if chs[i].Intent == payment.IntentSession {
			sc = &chs[i]
		}
	}
	if sc == nil {
		t.Fatal("no session challenge offered")
	}
	g, err := w.payer.OpenSession(context.Background(), &payment.SessionRequest{
		PayRequest: payment.PayRequest{Challenge: sc, Provider: e2eProvider, Service: e2eService, Amount: budget.USD(e2ePrice), IdempotencyKey: "k"},
		MaxAmount:  budget.USD(4 * e2ePrice),
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := sc.Echo()
	ej, _ := payment.JsonNoEscape(e)
	return func(seq uint64, route string, withToken bool) string {
		pl := payment.SessionPayload{Session: g.SessionID, Seq: seq, Amount: "250",
			MAC: payment.SessionMAC(g.Key, &payment.SessionCall{ChallengeID: sc.ID, SessionID: g.SessionID, Seq: seq, Amount: 250, Currency: "USD", Route: route})}
		if withToken {
			pl.Token = g.Token
		}
		v, err := payment.FormatSessionCredential(ej, &pl)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func (w *sessWorld) raw(t *testing.T, authz string) *http.Response {
	req, _ := http.NewRequest(http.MethodGet, w.prov.URL+"/v1/infer", nil)
	req.Header.Set("Authorization", authz)
	resp, err := w.prov.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestSessionRefusals(t *testing.T) {
	w := newSessWorld(t, 10000)
	cred := w.sessionCred(t)

	// Unknown session without its token: the client is told to send it.
	sessProblem(t, w.raw(t, cred(1, "GET /v1/infer", false)), 402, payment.ErrSessionUnknown)
	if resp := w.raw(t, cred(1, "GET /v1/infer", true)); resp.StatusCode != 200 {
		t.Fatalf("first call: %d", resp.StatusCode)
	}
	// The same authorization again: never served twice.
	sessProblem(t, w.raw(t, cred(1, "GET /v1/infer", true)), 409, payment.ErrSessionReplay)
	// An authorization for another route does not buy this one.
	sessProblem(t, w.raw(t, cred(2, "GET /v1/other", false)), 402, payment.ErrVerificationFailed)
	// A forged tag.
	bad := cred(3, "GET /v1/infer", false)
	sessProblem(t, w.raw(t, bad[:len(bad)-8]+"AAAAAAAA"), 402, payment.ErrMalformedCredential)
	// Out of order is fine, each once.
	for _, seq := range []uint64{5, 4} {
		if resp := w.raw(t, cred(seq, "GET /v1/infer", false)); resp.StatusCode != 200 {
			t.Fatalf("seq %d: %d", seq, resp.StatusCode)
		}
	}
	// The session covers 4 calls: a fourth succeeds, a fifth is refused.
	if resp := w.raw(t, cred(6, "GET /v1/infer", false)); resp.StatusCode != 200 {
		t.Fatalf("seq 6: %d", resp.StatusCode)
	}
	sessProblem(t, w.raw(t, cred(7, "GET /v1/infer", false)), 402, payment.ErrSessionExhausted)
	if got := w.served.Load(); got != 4 {
		t.Errorf("served %d, want 4", got)
	}
	// After the last call time, refused; then settled for what was served.
	w.clock.add(10 * time.Minute)
	w.settleAll()
	if held, committed := w.usage(); held != 0 || committed != 4*e2ePrice {
		t.Errorf("held %d committed %d, want 0 and %d", held, committed, 4*e2ePrice)
	}
}

func TestSessionConcurrentCalls(t *testing.T) {
	w := newSessWorld(t, 1<<40)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if st, err := w.call("/v1/infer"); err == nil && st == 200 {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != w.served.Load() {
		t.Errorf("delivered %d, served %d", ok.Load(), w.served.Load())
	}
	w.settleAll()
	if held, committed := w.usage(); held != 0 || committed != w.served.Load()*e2ePrice {
		t.Errorf("held %d committed %d, want 0 and %d (served %d)", held, committed, w.served.Load()*e2ePrice, w.served.Load())
	}
	if ok.Load() < 150 {
		t.Errorf("only %d of 200 calls succeeded", ok.Load())
	}
}

func sessProblem(t *testing.T, resp *http.Response, status int, want *payment.Error) {
	t.Helper()
	defer resp.Body.Close()
	var pd struct{ Code string }
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&pd)
	if resp.StatusCode != status || pd.Code != want.Code {
		t.Fatalf("got %d %q, want %d %q", resp.StatusCode, pd.Code, status, want.Code)
	}
	if status == http.StatusPaymentRequired {
		chs, err := payment.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		if err != nil || len(chs) != 2 || chs[0].Intent != payment.IntentCharge || chs[1].Intent != payment.IntentSession {
			t.Errorf("402 without fresh charge and session challenges: %v %v", chs, err)
		}
	}
}
