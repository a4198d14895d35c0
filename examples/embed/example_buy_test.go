package embed_test

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/agentprov/agentprov"
	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// orchestrator is the user code of a custom orchestrator that pays: a
// budget ledger (default cap $100 per provider per month), an Issuer that
// mints payment tokens and serves the redemption endpoint, and an HTTP
// client that answers 402 challenges of the one provider it trusts.
func orchestrator(mux *http.ServeMux, providerOrigin string) (*issuer.Issuer, *http.Client, error) {
	ledger, err := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	if err != nil {
		return nil, nil, err
	}
	key := payment.SigningKey{KeyID: "pay-2026", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	iss, err := issuer.NewIssuer("https://orchestrator.example", key, ledger, &issuer.IssuerOptions{
		Rail:         issuer.NewMemoryRail(nil),
		Authenticate: issuer.BearerAuthenticator(map[string]string{"acme": "acme-api-key"}),
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, nil, err
	}
	mux.Handle("/redeem", iss.RedemptionHandler())
	tr, err := payment.NewTransport(issuer.IssuerPayer(iss, "blog"),
		map[string]string{providerOrigin: "acme"}, budget.USD(500), nil)
	if err != nil {
		return nil, nil, err
	}
	return iss, &http.Client{Transport: tr}, nil
}

// A provider charges 2.50 USD for a paid route mounted with its Provider;
// a custom orchestrator buys it: the client gets a plain 200 and a receipt.
func Example_buy() {
	orchMux, provMux := http.NewServeMux(), http.NewServeMux()
	orch, prov := httptest.NewServer(orchMux), httptest.NewServer(provMux)
	defer orch.Close()
	defer prov.Close()
	iss, client, err := orchestrator(orchMux, prov.URL)
	if err != nil {
		panic(err)
	}

	// Provider side, with a Paywall redeeming at the orchestrator.
	p := newExampleProvider(prov.URL, paywallOptions(iss, orch.URL))
	p.Mount(provMux)
	provMux.Handle("GET /agentprov/check", p.Charged("acme/dns", budget.USD(250))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "example.dev is free") })))

	resp, err := client.Get(prov.URL + "/agentprov/check")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	receipt, _ := payment.ReceiptFromResponse(resp)
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println("paid", receipt.Amount, receipt.Currency)
	fmt.Println("payment endpoint:", p.Metadata().PaymentEndpoint == prov.URL+"/agentprov")
	// Output:
	// 200 example.dev is free
	// paid 250 USD
	// payment endpoint: true
}

// paywallOptions gives the provider a Paywall that verifies tokens with
// the orchestrator's payment keys and redeems them at its endpoint.
func paywallOptions(iss *issuer.Issuer, orchURL string) *agentprov.ProviderOptions {
	verifier, _ := payment.NewTokenVerifier("https://orchestrator.example", "acme", iss.JWKS(), nil)
	redeemer, _ := paywall.NewRedeemer(orchURL+"/redeem", &paywall.RedeemerOptions{APIKey: "acme-api-key"})
	paywall, err := paywall.NewPaywall("acme.example", [][]byte{[]byte("a 32-byte (or longer) HMAC secret")}, verifier, redeemer,
		&paywall.PaywallOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	return &agentprov.ProviderOptions{Paywall: paywall}
}

// newExampleProvider is the provider of Example, with options.
func newExampleProvider(origin string, opts *agentprov.ProviderOptions) *agentprov.Provider {
	base := origin + "/agentprov"
	attester, _ := authz.NewAttester("https://orchestrator.example", mustKey(), nil)
	verifier, _ := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: "https://orchestrator.example", Keys: attester.JWKS()}},
		authz.NewMemoryReplayStore(nil), nil)
	prov, _ := provision.NewProvisioner(verifier, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{Issuer: base, TermsVersion: "2026-04", TermsURL: origin + "/terms", Logger: slog.New(slog.DiscardHandler)})
	p, err := agentprov.NewProvider(base, catalogschema.ProviderMetadata{
		ProviderID: "acme", Name: "Acme Cloud",
		TermsOfService: catalogschema.Terms{URL: origin + "/terms", Version: "2026-04"},
		AuthModes:      []catalogschema.AuthMode{catalogschema.AuthAttestation},
	}, catalog(), prov, opts)
	if err != nil {
		panic(err)
	}
	return p
}

func mustKey() authz.SigningKey {
	k, err := authz.GenerateSigningKey("orch-2026", "EdDSA")
	if err != nil {
		panic(err)
	}
	return k
}
