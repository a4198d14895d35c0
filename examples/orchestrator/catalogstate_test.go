package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/examples/internal/demo"
)

// TestCatalogKeptAcrossCommands: the aggregated catalog survives from one
// command to the next, so a second fetch of the same catalog is
// "unchanged", a ×100 price rise between two commands quarantines the
// provider (its accepted prices stay in force) instead of being accepted
// as a first contact, and the quarantine holds in the commands after.
func TestCatalogKeptAcrossCommands(t *testing.T) {
	var h atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }))
	defer srv.Close()
	serve := func(profile demo.Profile) {
		prov, err := demo.NewProvider(demo.ProviderConfig{Profile: profile, BaseURL: srv.URL, OrchestratorIssuer: "http://127.0.0.1:1", RedemptionKey: "rk_test_0123456789abcdef"})
		if err != nil {
			t.Fatal(err)
		}
		hh := prov.Handler()
		h.Store(&hh)
	}
	serve(demo.Registrar())

	dir := filepath.Join(t.TempDir(), "p")
	if code, env, out := cliRun(t, "", "init", "--dir", dir, "--email", "ada@example.com", "--provider", srv.URL, "--json"); code != exitOK {
		t.Fatalf("init: %d %+v\n%s", code, env, out)
	}
	status := func(want string) map[string]any {
		t.Helper()
		code, env, out := cliRun(t, "", "catalog", "--dir", dir, "--json")
		if code != exitOK || !env.OK {
			t.Fatalf("catalog: exit %d %+v\n%s", code, env, out)
		}
		if l := catalogProviders(t, env)["registrar"]; l == nil || l["status"] != want {
			t.Fatalf("registrar status %v, want %s", l, want)
		}
		return env.Data.(map[string]any)
	}
	price := func(data map[string]any) float64 {
		t.Helper()
		for _, s := range data["services"].([]any) {
			row := s.(map[string]any)
			if row["ref"] == "registrar/registrar:domain" {
				return row["prices"].([]any)[0].(map[string]any)["amount"].(float64)
			}
		}
		t.Fatalf("no domain service in %v", data)
		return 0
	}
	status("updated")
	if fi, err := os.Stat(filepath.Join(dir, catalogStateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("catalog state file: %v, %v; want mode 0600", fi, err)
	}
	if p := price(status("unchanged")); p != 1299 {
		t.Fatalf("price %v, want 1299", p)
	}

	dearer := demo.Registrar() // a fresh profile: its services are new values
	dearer.Services[0].Prices = []catalogschema.Price{{Amount: 129900, Currency: "USD", Basis: catalogschema.BasisOneTime}}
	serve(dearer)
	for range 2 { // the next command, and the one after it
		if p := price(status("quarantined")); p != 1299 {
			t.Fatalf("price after a ×100 rise: %v, want the accepted 1299", p)
		}
	}
}
