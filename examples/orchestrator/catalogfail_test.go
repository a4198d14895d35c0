package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/agentprov/agentprov/examples/internal/demo"
)

// catalogProviders decodes the per-provider lines of a catalog envelope,
// from data.providers on success or error.details.providers on failure.
func catalogProviders(t *testing.T, env envelope) map[string]map[string]any {
	t.Helper()
	var list any
	if env.OK {
		list = env.Data.(map[string]any)["providers"]
	} else if d, ok := env.Error.Details.(map[string]any); ok {
		list = d["providers"]
	}
	out := map[string]map[string]any{}
	items, _ := list.([]any)
	for _, it := range items {
		m := it.(map[string]any)
		out[m["provider"].(string)] = m
	}
	return out
}

// TestCatalogAllProvidersFail: when every provider fails (an error status,
// a cross-origin redirect, a body that is not metadata), catalog --json is
// ok:false with exit 6, code catalog_unavailable, and each provider's
// status and error code in the details — never ok:true with no services.
func TestCatalogAllProvidersFail(t *testing.T) {
	elsewhere := httptest.NewServer(http.NotFoundHandler())
	defer elsewhere.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) }))
	defer down.Close()
	bounce := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer bounce.Close()
	junk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"provider_id": 7}`))
	}))
	defer junk.Close()

	dir := filepath.Join(t.TempDir(), "p")
	if code, env, out := cliRun(t, "", "init", "--dir", dir, "--email", "ada@example.com",
		"--provider", "down="+down.URL, "--provider", "bounce="+bounce.URL, "--provider", "junk="+junk.URL, "--json"); code != exitOK {
		t.Fatalf("init: %d %+v\n%s", code, env, out)
	}
	code, env, out := cliRun(t, "", "catalog", "--dir", dir, "--json")
	if code != exitProvider || env.OK || env.Error == nil || env.Error.Code != "catalog_unavailable" {
		t.Fatalf("catalog with every provider failing: exit %d %+v\n%s", code, env, out)
	}
	lines := catalogProviders(t, env)
	for _, id := range []string{"down", "bounce", "junk"} {
		l := lines[id]
		if l == nil || l["status"] != "failed" || l["code"] == "" || l["code"] == nil || l["usable"] != false {
			t.Errorf("provider %s: %v", id, l)
		}
	}
}

// TestCatalogOneProviderFails: one provider down and one up lists the
// working one's services, exit 0, and still reports the failed provider
// in data.providers.
func TestCatalogOneProviderFails(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) }))
	defer down.Close()
	var h http.Handler
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer up.Close()
	prov, err := demo.NewProvider(demo.ProviderConfig{Profile: demo.Cloud(), BaseURL: up.URL, OrchestratorIssuer: "http://127.0.0.1:1", RedemptionKey: "rk_test_0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	h = prov.Handler()

	dir := filepath.Join(t.TempDir(), "p")
	if code, env, out := cliRun(t, "", "init", "--dir", dir, "--email", "ada@example.com",
		"--provider", "down="+down.URL, "--provider", up.URL, "--json"); code != exitOK {
		t.Fatalf("init: %d %+v\n%s", code, env, out)
	}
	code, env, out := cliRun(t, "", "catalog", "--dir", dir, "--json")
	if code != exitOK || !env.OK {
		t.Fatalf("catalog: exit %d %+v\n%s", code, env, out)
	}
	if s, _ := env.Data.(map[string]any)["services"].([]any); len(s) == 0 {
		t.Fatalf("no services from the working provider: %v", env.Data)
	}
	lines := catalogProviders(t, env)
	if l := lines["down"]; l == nil || l["status"] != "failed" || l["code"] == nil || l["usable"] != false {
		t.Errorf("failed provider not reported: %v", lines)
	}
	if l := lines["cloud"]; l == nil || l["status"] != "updated" || l["usable"] != true {
		t.Errorf("working provider: %v", lines)
	}
}
