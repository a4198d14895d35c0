package agentprov_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/payment/issuer"
)

// One key, made once, signs for every role: attestations (authz), payment
// tokens and receipts (payment) and a provider's catalog (discovery) all
// take the same SigningKey type, and with no KeyID each publishes the key
// under its RFC 7638 thumbprint.
func Example_oneSigningKey() {
	key := authz.SigningKey{Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}

	attester, err := authz.NewAttester("https://orchestrator.example", key, nil)
	if err != nil {
		panic(err)
	}
	ledger, err := budget.NewLedger(nil, nil)
	if err != nil {
		panic(err)
	}
	iss, err := issuer.NewIssuer("https://orchestrator.example", key, ledger, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil)})
	if err != nil {
		panic(err)
	}
	meta := &catalogschema.ProviderMetadata{
		ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "acme", Name: "Acme",
		TermsOfService: catalogschema.Terms{URL: "https://acme.example/terms", Version: "1"},
		JWKSURI:        "https://acme.example/.well-known/jwks.json", CatalogURI: "https://acme.example/catalog",
		CatalogSigning: catalogschema.SigningJWS, AccountProvisioningEndpoint: "https://acme.example/accounts",
		AuthModes: []catalogschema.AuthMode{catalogschema.AuthAttestation}, PaymentMethods: []string{},
	}
	cat := &catalogschema.Catalog{ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "acme", ProviderName: "Acme",
		UpdatedAt: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Services: []*catalogschema.Service{}}
	h, err := discovery.NewHandler(meta, cat, &discovery.HandlerOptions{Key: &key})
	if err != nil {
		panic(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, meta.JWKSURI, nil))
	var published jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &published); err != nil {
		panic(err)
	}

	kid, _ := authz.KeyThumbprint(key.Key)
	fmt.Println(attester.ActiveKeyID() == kid, iss.JWKS().Keys[0].KeyID == kid, published.Keys[0].KeyID == kid)
	// Output: true true true
}
