// Package readme holds the embedding guide's code: README.md
// shows the text between each "readme:NAME" marker pair verbatim, and
// TestREADMEInSync fails when the two drift apart. The code compiles (and
// runs, in the test), so the README never shows code that does not.
package readme

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// ProviderSetup is what a provider brings.
type ProviderSetup struct {
	Metadata      *catalogschema.ProviderMetadata // issuer = Metadata.AuthorizationServer
	Catalog       *catalogschema.Catalog
	CatalogKey    ed25519.PrivateKey
	Orchestrator  string       // the trusted orchestrator's issuer URL
	HTTPClient    *http.Client // for the orchestrator's JWKS and redemption endpoint; nil for http.DefaultClient
	RedemptionKey string       // the API key it registered for this provider
	PaywallSecret []byte       // at least 32 random bytes
}

// readme:provider:begin
func mountProvider(mux *http.ServeMux, s ProviderSetup, deploy, infer http.Handler) error {
	// Discovery: metadata and a signed catalog.
	docs, err := discovery.NewHandler(s.Metadata, s.Catalog, &discovery.HandlerOptions{
		SigningKey: &jose.SigningKey{Algorithm: jose.EdDSA, Key: s.CatalogKey}, KeyID: "catalog-1"})
	if err != nil {
		return err
	}
	mux.Handle("GET /.well-known/agent-provisioning", docs)
	mux.Handle("GET /catalog", docs) // the path of Metadata.CatalogURI
	mux.Handle("GET /.well-known/jwks.json", docs)

	// Authorization: accounts from the orchestrator's attestations, the
	// device flow for users who already have one, revocation.
	verifier, err := authz.NewVerifier(s.Metadata.ProviderID,
		[]authz.TrustedIssuer{{Issuer: s.Orchestrator, JWKSURL: s.Orchestrator + "/.well-known/jwks.json"}},
		authz.NewMemoryReplayStore(nil), // authz/sqlstore for several instances
		&authz.VerifierOptions{KeySet: &authz.KeySetOptions{HTTPClient: s.HTTPClient}})
	if err != nil {
		return err
	}
	prov, err := provision.NewProvisioner(verifier, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{
			Issuer:       s.Metadata.AuthorizationServer,
			TermsVersion: s.Metadata.TermsOfService.Version,
			TermsURL:     s.Metadata.TermsOfService.URL,
			ServiceScopes: map[string][]string{
				s.Metadata.ProviderID + "/compute:small": {"deploy"},
				s.Metadata.ProviderID + "/api:inference": {"inference"},
			},
		})
	if err != nil {
		return err
	}
	for _, p := range []string{"/oauth/", "/agentprov/", "GET " + authz.PathResourceMetadata, "GET " + authz.PathResourceMetadata + "/", "GET " + authz.PathServerMetadata} {
		mux.Handle(p, prov.Handler())
	}

	// Payment: verify tokens and receipts locally against the orchestrator's
	// JWKS (refetched when it rotates keys), redeem at the orchestrator.
	orchKeys, err := authz.NewKeySet(s.Orchestrator+"/.well-known/jwks.json",
		&authz.KeySetOptions{HTTPClient: s.HTTPClient})
	if err != nil {
		return err
	}
	tokens, err := payment.NewResolvingTokenVerifier(s.Orchestrator, s.Metadata.ProviderID, orchKeys, nil)
	if err != nil {
		return err
	}
	redeemer, err := paywall.NewRedeemer(s.Orchestrator+"/payment/redemptions", &paywall.RedeemerOptions{
		HTTPClient: s.HTTPClient, APIKey: s.RedemptionKey, Issuer: s.Orchestrator, KeyResolver: orchKeys})
	if err != nil {
		return err
	}
	pw, err := paywall.NewPaywall("api.cloud.example", [][]byte{s.PaywallSecret}, tokens, redeemer, nil)
	if err != nil {
		return err
	}

	// Your API: bearer tokens from the provisioner; paid routes put the
	// Paywall outside, so the bearer check never sees the Payment credential.
	mux.Handle("POST /v1/deployments", prov.Middleware("deploy")(deploy))
	mux.Handle("POST /v1/inference", pw.Require(s.Metadata.ProviderID+"/api:inference", budget.USD(250))(
		prov.Middleware("inference")(infer)))
	return nil
}

// readme:provider:end

// OrchestratorSetup is what an orchestrator brings.
type OrchestratorSetup struct {
	Issuer         string
	Key            ed25519.PrivateKey
	VaultKey       []byte // 32 bytes, from your key management
	Trust          []discovery.TrustedProvider
	RedemptionKeys map[string]string // provider id → API key
	Rail           issuer.Rail       // your payment network
}

// Orchestrator is the assembled orchestrator.
type Orchestrator struct {
	Attester *authz.Attester
	Catalogs *discovery.Aggregator
	Ledger   *budget.Ledger
	Issuer   *issuer.Issuer
	Vault    *vault.Vault
}

// readme:orchestrator:begin
func newOrchestrator(mux *http.ServeMux, s OrchestratorSetup) (*Orchestrator, error) {
	// One key signs attestations, consent receipts, revocation events and
	// payment tokens; providers fetch it from the JWKS.
	attester, err := authz.NewAttester(s.Issuer, authz.SigningKey{Algorithm: jose.EdDSA, Key: s.Key}, nil)
	if err != nil {
		return nil, err
	}
	catalogs, err := discovery.NewAggregator(s.Trust, nil)
	if err != nil {
		return nil, err
	}
	ledger, err := budget.NewLedger(nil, nil) // $100 per provider per month; budget/sqlstore in production
	if err != nil {
		return nil, err
	}
	iss, err := issuer.NewIssuer(s.Issuer, payment.SigningKey{Key: s.Key}, ledger,
		&issuer.IssuerOptions{Rail: s.Rail, Authenticate: issuer.BearerAuthenticator(s.RedemptionKeys)})
	if err != nil {
		return nil, err
	}
	sealed, err := vault.NewEncryptedVaultStore(vault.NewMemoryVaultStore(), map[string][]byte{"v1": s.VaultKey}, "v1")
	if err != nil {
		return nil, err
	}
	vlt, err := vault.NewVault(sealed, nil)
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /.well-known/jwks.json", attester.JWKSHandler())
	mux.Handle("/payment/redemptions", iss.RedemptionHandler())
	mux.Handle("/payment/redemptions/", iss.RedemptionHandler())
	return &Orchestrator{attester, catalogs, ledger, iss, vlt}, nil
}

// readme:orchestrator:end

// readme:agent:begin
// agentClient calls a provider's API for the user: the vault's bearer token
// on every request, 402 challenges paid under the caps, at most 5 USD a call.
func agentClient(o *Orchestrator, project, provider, origin, ref string) (*http.Client, error) {
	pay, err := payment.NewTransport(issuer.IssuerPayer(o.Issuer, project),
		map[string]string{origin: provider}, budget.USD(500), nil)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		tok, err := o.Vault.Token(r.Context(), project, ref)
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		return pay.RoundTrip(r)
	})}, nil
}

func callInference(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if errors.Is(err, payment.ErrCapExceeded) || errors.Is(err, payment.ErrCallCeiling) {
		return fmt.Errorf("refused before anything was paid: %w", err)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	receipt, err := payment.ReceiptFromResponse(resp) // what was charged, signed by the orchestrator
	if err != nil {
		return err
	}
	fmt.Println("paid", receipt.Amount, receipt.Currency)
	return nil
}

// readme:agent:end

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
