package readme

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/payment/issuer"
)

// TestSnippetsRun runs the README's code: a provider mounted with
// mountProvider, an orchestrator from newOrchestrator, and one paid call
// through agentClient.
func TestSnippetsRun(t *testing.T) {
	ctx := context.Background()
	orchMux, provMux := http.NewServeMux(), http.NewServeMux()
	orchSrv := httptest.NewServer(orchMux)
	defer orchSrv.Close()
	provSrv := httptest.NewServer(provMux)
	defer provSrv.Close()

	_, orchKey, _ := ed25519.GenerateKey(rand.Reader)
	_, catKey, _ := ed25519.GenerateKey(rand.Reader)
	o, err := newOrchestrator(orchMux, OrchestratorSetup{
		Issuer: orchSrv.URL, Key: orchKey, VaultKey: make([]byte, 32),
		Trust:          []discovery.TrustedProvider{{ID: "cloud", BaseURL: provSrv.URL}},
		RedemptionKeys: map[string]string{"cloud": "cloud-redemption-key"},
		Rail:           issuer.NewMemoryRail(nil),
	})
	if err != nil {
		t.Fatal(err)
	}

	base := provSrv.URL
	meta := &catalogschema.ProviderMetadata{
		ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "cloud", Name: "Cloud",
		TermsOfService: catalogschema.Terms{URL: "https://cloud.example/terms", Version: "2026-04"},
		JWKSURI:        base + "/.well-known/jwks.json", CatalogURI: base + "/catalog",
		CatalogSigning: catalogschema.SigningJWS, AuthorizationServer: base,
		AccountProvisioningEndpoint: base + provision.PathToken, PaymentEndpoint: base + "/v1",
		AuthModes:      []catalogschema.AuthMode{catalogschema.AuthAttestation},
		PaymentMethods: []string{catalogschema.PaymentMethodAgentprovToken},
	}
	cat := &catalogschema.Catalog{ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "cloud", ProviderName: "Cloud",
		UpdatedAt: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Services: []*catalogschema.Service{{
			ServiceID: "api:inference", Description: "Inference.", Kind: catalogschema.KindDeployable, Scope: catalogschema.ScopeProject,
			Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
			Prices:  []catalogschema.Price{{Amount: 250, Currency: "USD", Basis: catalogschema.BasisMetered, Unit: "request"}},
		}}}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "42") })
	if err := mountProvider(provMux, ProviderSetup{
		Metadata: meta, Catalog: cat, CatalogKey: catKey, Orchestrator: orchSrv.URL,
		HTTPClient: orchSrv.Client(), RedemptionKey: "cloud-redemption-key", PaywallSecret: make([]byte, 32),
	}, ok, ok); err != nil {
		t.Fatal(err)
	}

	// Discovery: the signed catalog verifies with the keys at jwks_uri.
	for _, r := range o.Catalogs.Refresh(ctx).Results {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if _, err := o.Catalogs.Lookup("cloud/api:inference"); err != nil {
		t.Fatal(err)
	}

	// Provisioning: attestation with the human's consent → token → vault.
	consent, err := o.Attester.SignConsent(ctx, authz.ConsentReceipt{Subject: "u1", Email: "ada@example.com", Provider: "cloud",
		TermsURL: "https://cloud.example/terms", TermsVersion: "2026-04", AcceptedAt: time.Now(), Human: true})
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := o.Attester.Attest(ctx, authz.AttestRequest{Audience: "cloud", Subject: "u1", Email: "ada@example.com",
		EmailVerified: true, Project: "p1", Service: "cloud/api:inference", Consent: consent})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(base+provision.PathToken, url.Values{"grant_type": {authz.GrantTypeJWTBearer}, "assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	tok := struct {
		AccessToken string `json:"access_token"`
		AccountID   string `json:"account_id"`
	}{}
	if err := jsonUnmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	if err := o.Vault.Put(ctx, vault.Credential{Project: "p1", Provider: "cloud", Service: "api:inference",
		AccessToken: vault.Secret(tok.AccessToken), Expiry: time.Now().Add(time.Hour), AccountID: tok.AccountID}); err != nil {
		t.Fatal(err)
	}

	// The agent's paid call.
	client, err := agentClient(o, "p1", "cloud", base, "cloud/api:inference")
	if err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() {
		if err := callInference(ctx, client, base+"/v1/inference"); err != nil {
			t.Fatal(err)
		}
	})
	if strings.TrimSpace(out) != "paid 250 USD" {
		t.Fatalf("callInference printed %q", out)
	}
	u, err := o.Ledger.Usage(ctx, budget.Scope{Project: "p1", Provider: "cloud"})
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, c := range u.Counters {
		if c.Counter.Provider == "cloud" && c.Counter.Window.Period() == budget.Month {
			committed = c.Committed
		}
	}
	if committed != 250 {
		t.Fatalf("committed %d, want 250", committed)
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	f()
	os.Stdout = old
	w.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, r)
	return b.String()
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
