package authz_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/internal/browsertest"
)

// hostileDescription is provider-supplied text that would run script if
// the page did not escape it.
const hostileDescription = `Managed DNS <script>alert("xss")</script><img src=x onerror="alert('img')"><b id="injected">bold</b>`

// devicePageFixture is a provider serving the verification page, and an
// orchestrator whose Linker waits on it for grace@example.com.
type devicePageFixture struct {
	srv    *httptest.Server
	prov   *provision.Provisioner
	linker *vault.Linker
}

func newDevicePageFixture(t *testing.T) *devicePageFixture {
	t.Helper()
	ctx := context.Background()
	key, err := authz.GenerateSigningKey("orch-1", jose.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	attester, err := authz.NewAttester("https://orchestrator.example", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: "https://orchestrator.example", Keys: attester.JWKS()}},
		authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	accounts := provision.NewMemoryAccountStore()
	if err := accounts.Seed(ctx, provision.Account{ID: "acct_grace", Email: "grace@example.com", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	prov, err := provision.NewProvisioner(verifier, accounts, provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer: srv.URL, TermsVersion: "1", TermsURL: srv.URL + "/terms", DeviceInterval: 200 * time.Millisecond,
		ServiceScopes: map[string][]string{"acme/dns": {"dns:write", "dns:read"}}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The provider's own login: a test cookie naming the account.
	signedIn := func(r *http.Request) (provision.SignedInUser, bool) {
		c, err := r.Cookie("test_session")
		if err != nil || c.Value != "acct_grace" {
			return provision.SignedInUser{}, false
		}
		return provision.SignedInUser{AccountID: c.Value, Display: "grace@example.com"}, true
	}
	page, err := provision.NewDevicePage(prov, signedIn, &provision.DevicePageOptions{
		ProviderName: "Acme", SignInURL: "/test-login", Logger: slog.New(slog.DiscardHandler),
		Service: func(_ context.Context, ref string) (provision.DeviceService, bool) {
			return provision.DeviceService{Title: "Acme DNS", Description: hostileDescription, Price: "$1.50 / month"}, ref == "acme/dns"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", prov.Handler())
	mux.Handle("/device", page)
	mux.HandleFunc("/test-login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "test_session", Value: "acct_grace", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/device", http.StatusSeeOther)
	})
	srv.Config.Handler = mux
	vlt, err := vault.NewVault(vault.NewMemoryVaultStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	linker, err := vault.NewLinker(attester, vlt, &vault.LinkerOptions{HTTPClient: srv.Client(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return &devicePageFixture{srv: srv, prov: prov, linker: linker}
}

// start asks for grace's link and returns the pending consent.
func (f *devicePageFixture) start(t *testing.T) *vault.PendingConsent {
	t.Helper()
	_, err := f.linker.Link(context.Background(), vault.LinkRequest{
		Project: "proj_blog", Service: "acme/dns", Issuer: f.srv.URL,
		Subject: "sub-grace", Email: "grace@example.com", Name: "Grace H.", EmailVerified: true, Scope: "dns:write",
	})
	var pending *vault.PendingConsent
	if !errors.As(err, &pending) {
		t.Fatalf("Link: %v, want a pending consent", err)
	}
	return pending
}

// wait runs the orchestrator's polling in the background.
func wait(p *vault.PendingConsent) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := p.Wait(ctx)
		if err == nil && (res.LinkAction != authz.LinkExisting || res.Credential.AccountID != "acct_grace") {
			err = errors.New("linked, but not to acct_grace: " + string(res.LinkAction))
		}
		done <- err
	}()
	return done
}

func TestDevicePageBrowserApprove(t *testing.T) {
	b := browsertest.New(t, 30*time.Second)
	f := newDevicePageFixture(t)
	pending := f.start(t)
	done := wait(pending)

	// Sign in at the provider, then type the code as a person would:
	// lower case, without the dash.
	typed := strings.ToLower(strings.ReplaceAll(pending.UserCode, "-", ""))
	b.Do(t,
		chromedp.Navigate(f.srv.URL+"/test-login"),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.SendKeys(chromedp.ID("user_code"), typed),
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	)
	shown := browsertest.Eval[string](t, b, `document.getElementById("request").innerText`)
	for _, want := range []string{"https://orchestrator.example", "grace@example.com", "Grace H.", "Acme DNS", "proj_blog", "dns:write", "$1.50 / month", pending.UserCode} {
		if !strings.Contains(shown, want) {
			t.Errorf("page does not show %q:\n%s", want, shown)
		}
	}
	// The hostile description is shown as text, and nothing of it runs
	// or becomes markup.
	if got := browsertest.Eval[string](t, b, `document.getElementById("description").textContent`); got != hostileDescription {
		t.Errorf("description rendered as %q, want the text verbatim", got)
	}
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll("script, img, #injected").length`); n != 0 {
		t.Errorf("%d injected elements in the DOM", n)
	}
	if d := b.Dialogs(); len(d) != 0 {
		t.Errorf("injected script ran: dialogs %q", d)
	}
	if dir := os.Getenv("AGENTPROV_SCREENSHOTS"); dir != "" {
		b.Screenshot(t, filepath.Join(dir, "consent-page.png"))
	}

	b.Do(t, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("message")))
	if msg := browsertest.Eval[string](t, b, `document.getElementById("message").textContent`); !strings.HasPrefix(msg, "Approved.") {
		t.Fatalf("after Approve the page says %q", msg)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("orchestrator's poll after approval: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the orchestrator's poll did not complete")
	}
}

func TestDevicePageBrowserDeny(t *testing.T) {
	b := browsertest.New(t, 30*time.Second)
	f := newDevicePageFixture(t)
	pending := f.start(t)
	done := wait(pending)
	// verification_uri_complete: the code is already filled in.
	b.Do(t,
		chromedp.Navigate(f.srv.URL+"/test-login"),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.Navigate(pending.VerificationURIComplete),
		chromedp.WaitVisible(chromedp.ID("deny")),
		chromedp.Click(chromedp.ID("deny")),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	select {
	case err := <-done:
		if !errors.Is(err, authz.ErrAccessDenied) {
			t.Fatalf("poll after deny: %v, want access_denied", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the orchestrator's poll did not complete")
	}
}

// A page on another origin that posts the approval form without a token
// (a CSRF attack on a signed-in person) is refused; so is a POST carrying
// no token at all.
func TestDevicePageBrowserRefusesCrossSitePost(t *testing.T) {
	b := browsertest.New(t, 30*time.Second)
	f := newDevicePageFixture(t)
	pending := f.start(t)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<form id="f" method="post" action="` + f.srv.URL + `/device">
<input name="user_code" value="` + pending.UserCode + `"><input name="action" value="approve"><input name="csrf_token" value="guess"></form>
<script>document.getElementById("f").submit()</script>`))
	}))
	defer evil.Close()
	b.Do(t,
		chromedp.Navigate(f.srv.URL+"/test-login"),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.Navigate(evil.URL),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	if msg := browsertest.Eval[string](t, b, `document.getElementById("message").textContent`); !strings.Contains(msg, "did not come from this page") {
		t.Errorf("cross-site POST answered %q", msg)
	}
	if _, err := f.prov.PendingDevice(context.Background(), pending.UserCode); err != nil {
		t.Fatalf("the request was decided by a cross-site POST: %v", err)
	}

	// Same origin, signed in, but no token.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/device", strings.NewReader(url.Values{"user_code": {pending.UserCode}, "action": {"approve"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "test_session", Value: "acct_grace"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("token-less POST: HTTP %d, want 403", resp.StatusCode)
	}
	if _, err := f.prov.PendingDevice(context.Background(), pending.UserCode); err != nil {
		t.Fatalf("the request was decided by a token-less POST: %v", err)
	}
}

// A person who is not signed in sees the request but no buttons, and is
// pointed to the sign-in page.
func TestDevicePageBrowserNeedsSignIn(t *testing.T) {
	b := browsertest.New(t, 30*time.Second)
	f := newDevicePageFixture(t)
	pending := f.start(t)
	b.Do(t, chromedp.Navigate(pending.VerificationURIComplete), chromedp.WaitVisible(chromedp.ID("sign-in")))
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll("#approve, #deny").length`); n != 0 {
		t.Errorf("%d decision buttons shown to a person not signed in", n)
	}
	href := browsertest.Eval[string](t, b, `document.querySelector("#sign-in a").getAttribute("href")`)
	if !strings.HasPrefix(href, "/test-login?next=%2Fdevice%3Fuser_code%3D") {
		t.Errorf("sign-in link %q", href)
	}
}
