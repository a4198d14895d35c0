package payment_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// authz.KeySet is the resolver providers use; no adapter is needed.
var _ payment.KeyResolver = (*authz.KeySet)(nil)

const rotIssuer = "https://orchestrator.example"

// rotatingOrchestrator serves the JWKS of its current issuer; rotate swaps
// in a new signing key and keeps the old one as retired.
type rotatingOrchestrator struct {
	t      *testing.T
	ledger *budget.Ledger
	rail   *issuer.MemoryRail
	mu     sync.Mutex
	iss    *issuer.Issuer
	old    []jose.JSONWebKey
	srv    *httptest.Server
}

func newRotatingOrchestrator(t *testing.T) *rotatingOrchestrator {
	ledger, err := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &rotatingOrchestrator{t: t, ledger: ledger, rail: issuer.NewMemoryRail(nil)}
	o.rotate("k1")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(o.issuer().JWKS())
	})
	mux.Handle("/redemptions", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { o.issuer().RedemptionHandler().ServeHTTP(w, r) }))
	o.srv = httptest.NewServer(mux)
	t.Cleanup(o.srv.Close)
	return o
}

func (o *rotatingOrchestrator) issuer() *issuer.Issuer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.iss
}

func (o *rotatingOrchestrator) rotate(kid string) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.iss != nil {
		o.old = append(o.old, o.iss.JWKS().Keys...)
	}
	iss, err := issuer.NewIssuer(rotIssuer, payment.SigningKey{KeyID: kid, Key: priv}, o.ledger, &issuer.IssuerOptions{
		Rail: o.rail, RetiredKeys: o.old, Authenticate: issuer.BearerAuthenticator(map[string]string{"acme": "acme-key"}),
	})
	if err != nil {
		o.t.Fatal(err)
	}
	o.iss = iss
}

func (o *rotatingOrchestrator) mint(key string) string {
	m, err := o.issuer().Mint(context.Background(), issuer.MintRequest{
		Project: "proj-1", Provider: "acme", Service: "dns", MaxAmount: budget.USD(100), IdempotencyKey: key,
	})
	if err != nil {
		o.t.Fatal(err)
	}
	return m.Token
}

func TestResolvingTokenVerifierFollowsRotation(t *testing.T) {
	ctx := context.Background()
	o := newRotatingOrchestrator(t)
	keys, err := authz.NewKeySet(o.srv.URL+"/jwks.json", &authz.KeySetOptions{HTTPClient: o.srv.Client(), MinRefetchInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	v, err := payment.NewResolvingTokenVerifier(rotIssuer, "acme", keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := payment.NewTokenVerifier(rotIssuer, "acme", o.issuer().JWKS(), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := o.mint("a")
	if _, err := v.Verify(ctx, before); err != nil {
		t.Fatalf("k1 token: %v", err)
	}
	o.rotate("k2")
	after := o.mint("b")
	if _, err := pinned.Verify(ctx, after); !errors.Is(err, payment.ErrTokenInvalid) {
		t.Fatalf("pinned verifier accepted a k2 token: %v", err)
	}
	for name, tok := range map[string]string{"k2 token": after, "retired k1 token": before} {
		c, err := v.Verify(ctx, tok)
		if err != nil || c.Audience != "acme" {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// A key the orchestrator never published is refused, with the
	// resolver's reason reachable.
	_, rogueKey, _ := ed25519.GenerateKey(rand.Reader)
	rogue, err := issuer.NewIssuer(rotIssuer, payment.SigningKey{KeyID: "rogue", Key: rogueKey}, o.ledger, &issuer.IssuerOptions{Rail: o.rail})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rogue.Mint(ctx, issuer.MintRequest{Project: "proj-1", Provider: "acme", Service: "dns", MaxAmount: budget.USD(1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(ctx, m.Token)
	if !errors.Is(err, payment.ErrTokenInvalid) || !errors.Is(err, authz.ErrUnknownKey) {
		t.Fatalf("unpublished kid: %v", err)
	}
	if _, err := payment.NewResolvingTokenVerifier(rotIssuer, "acme", nil, nil); err == nil {
		t.Fatal("nil resolver accepted")
	}
}

func TestVerifyReceiptWithResolver(t *testing.T) {
	ctx := context.Background()
	o := newRotatingOrchestrator(t)
	tok := o.mint("r1")
	redeemer, err := paywall.NewRedeemer(o.srv.URL+"/redemptions", &paywall.RedeemerOptions{HTTPClient: o.srv.Client(), APIKey: "acme-key"})
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := redeemer.Redeem(ctx, tok, budget.USD(40), "redeem-r1")
	if err != nil {
		t.Fatal(err)
	}
	o.rotate("k2")
	keys, err := authz.NewKeySet(o.srv.URL+"/jwks.json", &authz.KeySetOptions{HTTPClient: o.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := payment.VerifyReceiptWithResolver(ctx, receipt.Signed, keys, rotIssuer)
	if err != nil || got.Amount != budget.USD(40) {
		t.Fatalf("receipt signed before rotation: %+v, %v", got, err)
	}
	if _, err := payment.VerifyReceiptWithResolver(ctx, receipt.Signed, keys, "https://other.example"); !errors.Is(err, payment.ErrTokenInvalid) {
		t.Fatalf("wrong issuer: %v", err)
	}
	if _, err := payment.VerifyReceiptWithResolver(ctx, "e30.e30.e30", keys, rotIssuer); !errors.Is(err, payment.ErrTokenInvalid) {
		t.Fatalf("no kid: %v", err)
	}
}

// A Redeemer with a KeyResolver verifies receipts signed after a rotation
// (a pinned JWKS would refuse them) and refuses one whose kid the
// orchestrator does not publish.
func TestRedeemerKeyResolverFollowsRotation(t *testing.T) {
	ctx := context.Background()
	o := newRotatingOrchestrator(t)
	keys, err := authz.NewKeySet(o.srv.URL+"/jwks.json", &authz.KeySetOptions{HTTPClient: o.srv.Client(), MinRefetchInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	pinnedJWKS := o.issuer().JWKS()
	resolving, err := paywall.NewRedeemer(o.srv.URL+"/redemptions", &paywall.RedeemerOptions{
		HTTPClient: o.srv.Client(), APIKey: "acme-key", Issuer: rotIssuer, KeyResolver: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := paywall.NewRedeemer(o.srv.URL+"/redemptions", &paywall.RedeemerOptions{
		HTTPClient: o.srv.Client(), APIKey: "acme-key", Issuer: rotIssuer, Keys: pinnedJWKS,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resolving.Redeem(ctx, o.mint("k1"), budget.USD(10), "redeem-k1"); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	o.rotate("k2")
	if _, err := pinned.Redeem(ctx, o.mint("pinned"), budget.USD(10), "redeem-pinned"); !errors.Is(err, payment.ErrBadGateway) {
		t.Fatalf("pinned redeemer accepted a k2 receipt: %v", err)
	}
	rc, err := resolving.Redeem(ctx, o.mint("k2"), budget.USD(20), "redeem-k2")
	if err != nil || rc.Amount != budget.USD(20) {
		t.Fatalf("after rotation: %+v, %v", rc, err)
	}

	// An orchestrator signing with a key it does not publish is refused.
	rogueSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.issuer().RedemptionHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(rogueSrv.Close)
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(empty.Close)
	emptyKeys, err := authz.NewKeySet(empty.URL, &authz.KeySetOptions{HTTPClient: empty.Client()})
	if err != nil {
		t.Fatal(err)
	}
	unpublished, err := paywall.NewRedeemer(rogueSrv.URL, &paywall.RedeemerOptions{
		HTTPClient: rogueSrv.Client(), APIKey: "acme-key", Issuer: rotIssuer, KeyResolver: emptyKeys,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unpublished.Redeem(ctx, o.mint("rogue"), budget.USD(5), "redeem-rogue"); !errors.Is(err, payment.ErrBadGateway) {
		t.Fatalf("receipt under an unpublished kid accepted: %v", err)
	}
}

// A Redeemer that verifies receipts refuses a committed redemption that
// comes without one: it would be a payment nobody can check.
func TestRedeemerRequiresReceiptWhenVerifying(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"protocol_version":"0.1","hold_id":"h1","state":"settled","amount":{"amount":10,"currency":"USD"},"provider":"acme","service":"acme/dns","project":"p"}`))
	}))
	t.Cleanup(srv.Close)
	o := newRotatingOrchestrator(t)
	keys, err := authz.NewKeySet(o.srv.URL+"/jwks.json", &authz.KeySetOptions{HTTPClient: o.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]*paywall.RedeemerOptions{
		"resolver": {HTTPClient: srv.Client(), Issuer: rotIssuer, KeyResolver: keys},
		"pinned":   {HTTPClient: srv.Client(), Issuer: rotIssuer, Keys: o.issuer().JWKS()},
	} {
		red, err := paywall.NewRedeemer(srv.URL, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := red.Redeem(context.Background(), "t", budget.USD(10), "k"); !errors.Is(err, payment.ErrBadGateway) {
			t.Errorf("%s: receiptless settlement accepted: %v", name, err)
		}
	}
	// Without verification configured the answer is taken as it is.
	red, _ := paywall.NewRedeemer(srv.URL, &paywall.RedeemerOptions{HTTPClient: srv.Client()})
	if rc, err := red.Redeem(context.Background(), "t", budget.USD(10), "k"); err != nil || rc.State != payment.StateSettled {
		t.Errorf("unverified: %+v %v", rc, err)
	}
}
