package provision_test

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
)

// A provider serves the device-flow verification page next to its OAuth
// endpoints. Its own login says who is signed in; the page does the rest.
func ExampleNewDevicePage() {
	key, _ := authz.GenerateSigningKey("orch-1", jose.EdDSA)
	attester, _ := authz.NewAttester("https://orchestrator.example", key, nil)
	verifier, _ := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: "https://orchestrator.example", Keys: attester.JWKS()}},
		authz.NewMemoryReplayStore(nil), nil)
	srv := httptest.NewServer(nil)
	defer srv.Close()
	prov, err := provision.NewProvisioner(verifier, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer: srv.URL, TermsVersion: "1", TermsURL: srv.URL + "/terms", Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}

	// The provider's session lookup (here: a header set by a test
	// front end; a real provider reads its own session cookie).
	signedIn := func(r *http.Request) (provision.SignedInUser, bool) {
		id := r.Header.Get("X-Test-Account")
		return provision.SignedInUser{AccountID: id, Display: id}, id != ""
	}
	page, err := provision.NewDevicePage(prov, signedIn, &provision.DevicePageOptions{ProviderName: "Acme", SignInURL: "/login"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", prov.Handler())
	mux.Handle("/device", page) // the Provisioner's default VerificationURI
	srv.Config.Handler = mux

	// A person who opens the page signed out is sent to sign in.
	resp, err := http.Get(srv.URL + "/device?user_code=" + url.QueryEscape("BCDF-GHJK"))
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `href="/login?next=`))
	// A POST without the page's CSRF token changes nothing.
	resp, err = http.PostForm(srv.URL+"/device", url.Values{"user_code": {"BCDF-GHJK"}, "action": {"approve"}})
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// 404 true
	// 403
}
