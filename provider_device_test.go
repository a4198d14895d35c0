package agentprov_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov"
	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/catalogschema"
)

// TestProviderServesConsentPage: with SignedIn set and no DevicePage, the
// Provider serves the library's consent page at PathDevicePage. It shows
// the service as the catalog describes it (escaped) with its price in
// major units, and approving there completes the device flow an
// orchestrator started: the next poll gets a token for the approving
// account. Without SignedIn or DevicePage nothing is served there.
func TestProviderServesConsentPage(t *testing.T) {
	ctx := context.Background()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base := srv.URL + "/p/acme"

	key, _ := authz.GenerateSigningKey("", jose.EdDSA)
	att, _ := authz.NewAttester("https://orch.example", key, nil)
	ver, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: "https://orch.example", Keys: att.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	accounts := provision.NewMemoryAccountStore()
	if err := accounts.Seed(ctx, provision.Account{ID: "acct_ada", Email: "ada@example.com"}); err != nil {
		t.Fatal(err)
	}
	prov, err := provision.NewProvisioner(ver, accounts, provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer: base, TermsVersion: "1", TermsURL: srv.URL + "/terms", Logger: slog.New(slog.DiscardHandler),
		ServiceScopes: map[string][]string{"acme/dns": {"dns:write"}}, DeviceInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cat := &catalogschema.Catalog{ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "acme", ProviderName: "Acme",
		UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Services: []*catalogschema.Service{{ServiceID: "dns", Description: "Zones <script>alert(1)</script>", Kind: catalogschema.KindDeployable,
			Scope: catalogschema.ScopeProject, Categories: []string{"dns"}, Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
			Prices: []catalogschema.Price{{Amount: 150, Currency: "USD", Basis: catalogschema.BasisMonthly}}}}}
	signedIn := func(r *http.Request) (provision.SignedInUser, bool) {
		if c, err := r.Cookie("session"); err == nil && c.Value == "ada" {
			return provision.SignedInUser{AccountID: "acct_ada", Display: "ada@example.com"}, true
		}
		return provision.SignedInUser{}, false
	}
	p, err := agentprov.NewProvider(base, catalogschema.ProviderMetadata{ProviderID: "acme", Name: "Acme Cloud",
		TermsOfService: catalogschema.Terms{URL: srv.URL + "/terms", Version: "1"},
		AuthModes:      []catalogschema.AuthMode{catalogschema.AuthAttestation}}, cat, prov, &agentprov.ProviderOptions{SignedIn: signedIn})
	if err != nil {
		t.Fatal(err)
	}
	p.Mount(mux)

	// The orchestrator starts the device flow for an existing account.
	assertion, err := att.Attest(ctx, authz.AttestRequest{Audience: "acme", Subject: "ada-sub", Email: "ada@example.com", EmailVerified: true, Service: "acme/dns"})
	if err != nil {
		t.Fatal(err)
	}
	da, err := prov.StartDevice(ctx, url.Values{"client_id": {"https://orch.example"}, "assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(da.VerificationURI, base+agentprov.PathDevicePage) {
		t.Fatalf("verification URI %q is not the Provider's page", da.VerificationURI)
	}

	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(srv.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "ada", Path: "/"}})
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(base + agentprov.PathDevicePage + "?user_code=" + url.QueryEscape(da.UserCode))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(page)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consent page: %d\n%s", resp.StatusCode, html)
	}
	for _, want := range []string{"Acme Cloud", "https://orch.example", "1.50 USD", "Zones &lt;script&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(html, "<script>alert") {
		t.Error("provider text is not escaped")
	}
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", html)
	}
	req, _ := http.NewRequest(http.MethodPost, base+agentprov.PathDevicePage, strings.NewReader(url.Values{
		"user_code": {da.UserCode}, "action": {"approve"}, "csrf_token": {m[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("approve: %d\n%s", resp.StatusCode, body)
	}
	tr, err := prov.Exchange(ctx, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {"https://orch.example"}, "device_code": {da.DeviceCode}})
	if err != nil {
		t.Fatalf("poll after approval: %v", err)
	}
	if tr.AccountID != "acct_ada" || tr.LinkAction != authz.LinkExisting {
		t.Fatalf("token for %q (%s), want acct_ada linked_existing", tr.AccountID, tr.LinkAction)
	}
}
