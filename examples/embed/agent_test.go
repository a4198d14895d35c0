package embed_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
)

// An agent's client: the vault's bearer token on every request, and 402
// challenges paid under the caps, by a VaultTransport over the payment
// Transport. The paid handler sees the bearer token, not the Payment
// credential.
func TestVaultTransportOverPaymentTransport(t *testing.T) {
	orchMux, provMux := http.NewServeMux(), http.NewServeMux()
	orch, prov := httptest.NewServer(orchMux), httptest.NewServer(provMux)
	defer orch.Close()
	defer prov.Close()
	issuer, payClient, err := orchestrator(orchMux, prov.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := newExampleProvider(prov.URL, paywallOptions(issuer, orch.URL))
	p.Mount(provMux)
	var sawAuth []string
	provMux.Handle("GET /agentprov/infer", p.Charged("acme/dns", budget.USD(100))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sawAuth = r.Header.Values("Authorization")
			io.WriteString(w, "done")
		})))

	vlt, _ := vault.NewVault(vault.NewMemoryVaultStore(), nil)
	if err := vlt.Put(context.Background(), vault.Credential{Project: "blog", Provider: "acme", Service: "dns", AccessToken: "acme-token"}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &vault.VaultTransport{Vault: vlt, Project: "blog", Ref: "acme/dns", Base: payClient.Transport}}
	resp, err := client.Get(prov.URL + "/agentprov/infer")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "done" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if len(sawAuth) != 1 || sawAuth[0] != "Bearer acme-token" {
		t.Errorf("handler saw Authorization %q, want the bearer token alone", sawAuth)
	}
}
