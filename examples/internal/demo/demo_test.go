package demo

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/payment"
)

type pair struct {
	orch  *Orchestrator
	cloud *Provider
}

func newPair(t testing.TB) pair {
	t.Helper()
	var orchH, provH http.Handler
	orchSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { orchH.ServeHTTP(w, r) }))
	t.Cleanup(orchSrv.Close)
	provSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { provH.ServeHTTP(w, r) }))
	t.Cleanup(provSrv.Close)
	orch, err := NewOrchestrator(OrchestratorConfig{
		Issuer: orchSrv.URL, Key: ed25519.NewKeyFromSeed(make([]byte, 32)), KeyID: "k1",
		User:           User{ID: "u1", Email: "ada@example.com"},
		PairwiseSecret: make([]byte, 32), VaultKey: make([]byte, 32),
		Trust:          []discovery.TrustedProvider{{ID: "cloud", BaseURL: provSrv.URL}},
		RedemptionKeys: map[string]string{"cloud": "cloud-redemption-key"},
	})
	if err != nil {
		t.Fatal(err)
	}
	orchH = orch.Handler()
	cloud, err := NewProvider(ProviderConfig{Profile: Cloud(), BaseURL: provSrv.URL, OrchestratorIssuer: orchSrv.URL,
		RedemptionKey: "cloud-redemption-key", DeviceInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	provH = cloud.Handler()
	if _, err := orch.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return pair{orch, cloud}
}

func TestNoTermsNoAccount(t *testing.T) {
	p, ctx := newPair(t), context.Background()
	_, err := p.orch.Connect(ctx, ConnectRequest{Project: "p", Ref: "cloud/compute:small"})
	var te *TermsError
	if !errors.As(err, &te) || !errors.Is(err, ErrNeedsHuman) || te.Version != "2026-04" {
		t.Fatalf("err = %v", err)
	}
	if _, err := p.cloud.accounts.FindByEmail(ctx, "ada@example.com"); err == nil {
		t.Fatal("an account was created without the human's acceptance")
	}
	if _, err := p.orch.Vault.Get(ctx, "p", "cloud/compute:small"); err == nil {
		t.Fatal("a credential was stored")
	}
}

func TestExistingAccountNeedsHolder(t *testing.T) {
	p, ctx := newPair(t), context.Background()
	if _, err := p.cloud.SeedAccount(ctx, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	// Accepting terms does not open someone's existing account.
	_, err := p.orch.Connect(ctx, ConnectRequest{Project: "p", Ref: "cloud/compute:small", AcceptTerms: true})
	if !errors.Is(err, ErrNeedsHuman) {
		t.Fatalf("err = %v", err)
	}
	// A denied link yields nothing.
	_, err = p.orch.Connect(ctx, ConnectRequest{Project: "p", Ref: "cloud/compute:small",
		OnDevice: func(ctx context.Context, l DeviceLink) error { return p.cloud.Provisioner.DenyDevice(ctx, l.UserCode) }})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "access_denied" {
		t.Fatalf("err = %v", err)
	}
}

func TestAddRefusesBadInputBeforePaying(t *testing.T) {
	p, ctx := newPair(t), context.Background()
	if _, err := p.orch.Add(ctx, AddRequest{Project: "p", Ref: "cloud/nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := p.orch.Connect(ctx, ConnectRequest{Project: "p", Ref: "cloud/compute:small", AcceptTerms: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.orch.Add(ctx, AddRequest{Project: "p", Ref: "cloud/compute:small", Name: "vm"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.orch.Add(ctx, AddRequest{Project: "p", Ref: "cloud/compute:small", Name: "vm"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	spent := func() int64 {
		s, err := p.orch.Spend(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		return s[0].Committed + s[0].Held
	}
	if got := spent(); got != 700 {
		t.Fatalf("spent %d, want 700", got)
	}
	_, err := p.orch.Add(ctx, AddRequest{Project: "p", Ref: "cloud/compute:small", Name: "vm2", Config: json.RawMessage(`{"region":"mars"}`)})
	var ve *catalogschema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("bad config: %v", err)
	}
	if got := spent(); got != 700 {
		t.Fatalf("a refused add spent: %d", got)
	}
}

func TestRotateRevokesOldToken(t *testing.T) {
	p, ctx := newPair(t), context.Background()
	ref := "cloud/compute:small"
	if _, err := p.orch.Connect(ctx, ConnectRequest{Project: "p", Ref: ref, AcceptTerms: true}); err != nil {
		t.Fatal(err)
	}
	old, _ := p.orch.Vault.Get(ctx, "p", ref)
	if _, err := p.orch.Rotate(ctx, "p", ref); err != nil {
		t.Fatal(err)
	}
	cur, _ := p.orch.Vault.Get(ctx, "p", ref)
	if cur.AccessToken == old.AccessToken || cur.AccountID != old.AccountID {
		t.Fatal("rotation kept the token or changed the account")
	}
	status := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, p.cloud.BaseURL()+"/v1/resources", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(old.AccessToken.Reveal()); s != http.StatusUnauthorized {
		t.Errorf("old token: %d", s)
	}
	if s := status(cur.AccessToken.Reveal()); s != http.StatusOK {
		t.Errorf("new token: %d", s)
	}
}

func TestMoney(t *testing.T) {
	for in, want := range map[int64]string{0: "0.00 USD", 5: "0.05 USD", 1299: "12.99 USD", -250: "-2.50 USD"} {
		if got := Money(in, "USD"); got != want {
			t.Errorf("Money(%d) = %q, want %q", in, got, want)
		}
	}
	if got := Money(500, "JPY"); got != "500 JPY" {
		t.Errorf("JPY: %q", got)
	}
}

// A provider whose API asks more than its catalog advertised is refused
// before anything is paid: Add's per-call ceiling is the catalog price.
func TestProviderCannotChargeMoreThanCatalog(t *testing.T) {
	ctx := context.Background()
	var orchH, provH http.Handler
	orchSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { orchH.ServeHTTP(w, r) }))
	defer orchSrv.Close()
	provSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { provH.ServeHTTP(w, r) }))
	defer provSrv.Close()
	orch, err := NewOrchestrator(OrchestratorConfig{
		Issuer: orchSrv.URL, Key: ed25519.NewKeyFromSeed(make([]byte, 32)), KeyID: "k1",
		User:           User{ID: "u1", Email: "ada@example.com"},
		PairwiseSecret: make([]byte, 32), VaultKey: make([]byte, 32),
		Trust:          []discovery.TrustedProvider{{ID: "cloud", BaseURL: provSrv.URL}},
		RedemptionKeys: map[string]string{"cloud": "k"},
	})
	if err != nil {
		t.Fatal(err)
	}
	orchH = orch.Handler()
	cfg := ProviderConfig{Profile: Cloud(), BaseURL: provSrv.URL, OrchestratorIssuer: orchSrv.URL, RedemptionKey: "k"}
	real, err := NewProvider(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The catalog it publishes says 5.00; its API charges 7.00.
	cheap := Cloud()
	cheap.Services[0] = &catalogschema.Service{ServiceID: ServiceCompute, Description: "A small VM.", Kind: catalogschema.KindPlan,
		Scope: catalogschema.ScopeAccount, Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
		Prices: []catalogschema.Price{{Amount: 500, Currency: "USD", Basis: catalogschema.BasisMonthly}}}
	cfg.Profile = cheap
	advertised, err := NewProvider(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", real.Handler())
	mux.Handle("GET /.well-known/agent-provisioning", advertised.Handler())
	mux.Handle("GET /catalog", advertised.Handler())
	provH = mux

	if _, err := orch.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := orch.Connect(ctx, ConnectRequest{Project: "p", Ref: "cloud/compute:small", AcceptTerms: true}); err != nil {
		t.Fatal(err)
	}
	_, err = orch.Add(ctx, AddRequest{Project: "p", Ref: "cloud/compute:small"})
	if !errors.Is(err, payment.ErrCallCeiling) {
		t.Fatalf("err = %v, want the call ceiling", err)
	}
	s, err := orch.Spend(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if s[0].Committed != 0 || s[0].Held != 0 {
		t.Fatalf("spent %+v", s[0])
	}
}
