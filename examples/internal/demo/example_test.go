package demo_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/examples/internal/demo"
)

// An orchestrator and a provider, each on its own server, take a new user
// from no account to a paid domain.
func Example() {
	ctx := context.Background()
	// Both sides name each other, so the servers start before the handlers exist.
	var orchH, provH http.Handler
	orchSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { orchH.ServeHTTP(w, r) }))
	defer orchSrv.Close()
	provSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { provH.ServeHTTP(w, r) }))
	defer provSrv.Close()

	orch, err := demo.NewOrchestrator(demo.OrchestratorConfig{
		Issuer: orchSrv.URL, Key: ed25519.NewKeyFromSeed(make([]byte, 32)), KeyID: "k1",
		User:           demo.User{ID: "u1", Email: "ada@example.com"},
		PairwiseSecret: make([]byte, 32), VaultKey: make([]byte, 32),
		Trust:          []discovery.TrustedProvider{{ID: "registrar", BaseURL: provSrv.URL}},
		RedemptionKeys: map[string]string{"registrar": "registrar-redemption-key"},
	})
	if err != nil {
		log.Fatal(err)
	}
	orchH = orch.Handler()
	prov, err := demo.NewProvider(demo.ProviderConfig{
		Profile: demo.Registrar(), BaseURL: provSrv.URL, OrchestratorIssuer: orchSrv.URL,
		RedemptionKey: "registrar-redemption-key",
	})
	if err != nil {
		log.Fatal(err)
	}
	provH = prov.Handler()

	if _, err := orch.Refresh(ctx); err != nil {
		log.Fatal(err)
	}
	conn, err := orch.Connect(ctx, demo.ConnectRequest{Project: "p1", Ref: "registrar/registrar:domain", AcceptTerms: true})
	if err != nil {
		log.Fatal(err)
	}
	res, err := orch.Add(ctx, demo.AddRequest{Project: "p1", Ref: "registrar/registrar:domain",
		Config: json.RawMessage(`{"domain":"example.dev"}`)})
	if err != nil {
		log.Fatal(err)
	}
	env, _ := orch.Vault.Env(ctx, "p1", "registrar/registrar:domain")
	fmt.Println(conn.LinkAction, res.Status, res.Charged, env["REGISTRAR_DOMAIN"])
	// Output: created active 12.99 USD example.dev
}
