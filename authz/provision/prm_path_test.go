package provision_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
)

// TestResourceMetadataPathInsertion: a 401 from a protected path below the
// origin points at the path-inserted RFC 9728 document of that path, whose
// resource is exactly the URL requested (the §3.3 check a strict client
// such as oauth4webapi makes), and path-insertion discovery from a resource
// identifier (§3.1) answers instead of 404.
func TestResourceMetadataPathInsertion(t *testing.T) {
	ctx := t.Context()
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	client := p.Server.Client()

	resp, err := client.Get(p.Server.URL + "/v1/whoami?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	prmURL, err := authz.ResourceMetadataURL(resp.Header)
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Server.URL + authz.PathResourceMetadata + "/v1/whoami"; prmURL != want {
		t.Fatalf("resource_metadata = %q, want %q", prmURL, want)
	}
	prm, err := authz.FetchResourceMetadata(ctx, client, prmURL, p.Server.URL+"/v1/whoami")
	if err != nil {
		t.Fatalf("strict §3.3 check against the requested URL: %v", err)
	}
	if len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != p.Server.URL {
		t.Fatalf("authorization_servers = %v", prm.AuthorizationServers)
	}

	// §3.1 discovery built from a resource identifier, and the origin's own.
	for _, id := range []string{p.Server.URL + "/v1/resources", p.Server.URL + "/v1/resources/res_1", p.Server.URL} {
		u := strings.Replace(id, p.Server.URL, p.Server.URL+authz.PathResourceMetadata, 1)
		m, err := authz.FetchResourceMetadata(ctx, client, u, id)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		if m.Resource != id {
			t.Errorf("%s: resource %q, want %q", u, m.Resource, id)
		}
	}

	// Paths that would let one document describe another URL are refused.
	for _, bad := range []string{"/v1%2Fresources", "/" + strings.Repeat("a", 2000)} {
		resp, err := client.Get(p.Server.URL + authz.PathResourceMetadata + bad)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", bad, resp.StatusCode)
		}
	}
}

// TestResourceMetadataURLForBelowResource: with a Resource below the
// origin, only paths at or below it get a document of their own; the
// request path is read before any http.StripPrefix.
func TestResourceMetadataURLForBelowResource(t *testing.T) {
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := provision.NewProvisioner(v, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer: "https://acme.example", Resource: "https://acme.example/api", TermsVersion: "1", TermsURL: "https://acme.example/terms",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/api":          "https://acme.example/.well-known/oauth-protected-resource/api",
		"/api/v1/x?q=1": "https://acme.example/.well-known/oauth-protected-resource/api/v1/x",
		"/other":        "",
		"/apix":         "",
		"/api/../other": "",
	} {
		r := httptest.NewRequest(http.MethodGet, "https://acme.example"+path, nil)
		if got := prov.ResourceMetadataURLFor(r); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	// Behind StripPrefix the original request URI still decides.
	var got string
	h := http.StripPrefix("/api", http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = prov.ResourceMetadataURLFor(r) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "https://acme.example/api/v1/x", nil))
	if want := "https://acme.example/.well-known/oauth-protected-resource/api/v1/x"; got != want {
		t.Errorf("behind StripPrefix: %q, want %q", got, want)
	}

	rec := httptest.NewRecorder()
	prov.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://acme.example"+authz.PathResourceMetadata+"/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("document for a path outside Resource: %d, want 404", rec.Code)
	}
	rec = httptest.NewRecorder()
	prov.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://acme.example"+authz.PathResourceMetadata+"/api/v1", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"resource":"https://acme.example/api/v1"`) {
		t.Errorf("document below Resource: %d %s", rec.Code, rec.Body.String())
	}
}

// FuzzResourceMetadataPath: whatever path a client asks for, the metadata
// handler answers 200 only with a resource at or below Resource whose own
// path-inserted URL is the one asked for, and 404 otherwise; never 5xx.
func FuzzResourceMetadataPath(f *testing.F) {
	for _, s := range []string{"", "/", "/v1", "/v1/resources", "/v1%2Fx", "/a/../b", "/%zz", "/a?b", "/a#b", "/é"} {
		f.Add(s)
	}
	o := authztesting.NewOrchestrator(f, authztesting.OrchestratorIssuer)
	v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		f.Fatal(err)
	}
	prov, err := provision.NewProvisioner(v, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer: "https://acme.example", Resource: "https://acme.example/api", TermsVersion: "1", TermsURL: "https://acme.example/terms",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	h := prov.ResourceMetadataHandler()
	f.Fuzz(func(t *testing.T, path string) {
		r := httptest.NewRequest(http.MethodGet, "https://acme.example/", nil)
		r.RequestURI = authz.PathResourceMetadata + "/api" + path
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		switch rec.Code {
		case http.StatusNotFound:
			return
		case http.StatusOK:
		default:
			t.Fatalf("%q: status %d", path, rec.Code)
		}
		var m authz.ProtectedResourceMetadata
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m.Resource != "https://acme.example/api" && !strings.HasPrefix(m.Resource, "https://acme.example/api/") {
			t.Fatalf("%q: resource %q outside Resource", path, m.Resource)
		}
		u, err := url.Parse(m.Resource)
		if err != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q: resource %q is not a plain URL", path, m.Resource)
		}
		if u.Host != "acme.example" || strings.Contains(u.EscapedPath(), "/../") || strings.HasSuffix(u.EscapedPath(), "/..") {
			t.Fatalf("%q: resource %q escapes", path, m.Resource)
		}
	})
}
