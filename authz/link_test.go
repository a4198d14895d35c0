package authz_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/internal/authztesting"
	"github.com/agentprov/agentprov/internal/clock"
)

// linkEnv is an orchestrator with a Linker in front of a real Provisioner
// over HTTP, sharing a fake clock that the Linker's Sleep advances.
type linkEnv struct {
	o      *orchestrator
	p      *authztesting.Provider
	clock  *clock.Fake
	linker *vault.Linker
	logs   *bytes.Buffer
	// onSleep runs after every device-flow wait, with the number of waits
	// so far: the simulated human acts there.
	onSleep func(n int)
	sleeps  atomic.Int32
}

func newLinkEnv(t *testing.T) *linkEnv {
	t.Helper()
	e := &linkEnv{o: newOrchestrator(t, authztesting.OrchestratorIssuer), clock: clock.NewFake(time.Now()), logs: &bytes.Buffer{}}
	e.p = authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{e.o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}, Clock: e.clock})
	var err error
	e.linker, err = vault.NewLinker(e.o.Attester, e.o.vlt, &vault.LinkerOptions{
		HTTPClient: e.p.Server.Client(),
		Logger:     slog.New(slog.NewTextHandler(e.logs, nil)),
		Clock:      e.clock.Now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.clock.Advance(d)
			n := int(e.sleeps.Add(1))
			if e.onSleep != nil {
				e.onSleep(n)
			}
			return ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *linkEnv) request(t *testing.T, u authztesting.User, withConsent bool) vault.LinkRequest {
	t.Helper()
	req := vault.LinkRequest{
		Project: "proj_1", Service: "acme/dns", Issuer: e.p.Server.URL,
		Subject: u.Sub, Email: u.Email, EmailVerified: u.Verified, Name: "Test " + u.Sub,
		Actor: &authz.Actor{Sub: "agent-7"},
	}
	if withConsent {
		c, err := e.o.Attester.SignConsent(context.Background(), authz.ConsentReceipt{
			Subject: u.Sub, Email: u.Email, Provider: "acme", TermsURL: authztesting.TermsURL, TermsVersion: authztesting.TermsVersion,
			AcceptedAt: time.Now().Add(-time.Minute), Agent: "agent-7", Human: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		req.Consent = c
	}
	return req
}

// startPending seeds an account holding old@example.com and links a new
// identity with that email: the provider answers consent_required and the
// Linker returns the device flow it started.
func (e *linkEnv) startPending(t *testing.T, withConsent bool) *vault.PendingConsent {
	t.Helper()
	ctx := context.Background()
	if err := e.p.Accounts.Seed(ctx, provision.Account{ID: "acct_old", Email: "old@example.com", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, err := e.linker.Link(ctx, e.request(t, authztesting.User{Sub: "u-old", Email: "old@example.com", Verified: true}, withConsent))
	var pending *vault.PendingConsent
	if !errors.As(err, &pending) || !errors.Is(err, authz.ErrConsentRequired) {
		t.Fatalf("Link = %v, want a PendingConsent", err)
	}
	return pending
}

func TestLinkerCreatesAccount(t *testing.T) {
	e := newLinkEnv(t)
	ctx := context.Background()
	u := authztesting.User{Sub: "u-new", Email: "new@example.com", Verified: true}
	res, err := e.linker.Link(ctx, e.request(t, u, true))
	if err != nil {
		t.Fatal(err)
	}
	if res.LinkAction != authz.LinkCreated || res.Credential.AccountID == "" {
		t.Fatalf("result = %+v", res)
	}
	stored, err := e.o.vlt.Get(ctx, "proj_1", "acme/dns")
	if err != nil {
		t.Fatal(err)
	}
	if stored.AccessToken != res.Credential.AccessToken || stored.LinkAction != authz.LinkCreated ||
		!slices.Equal(stored.Scopes, []string{"dns:write", "zones:read"}) || stored.TokenType != "Bearer" {
		t.Fatalf("vault holds %+v", stored)
	}
	if want := e.clock.Now().Add(30 * 24 * time.Hour); !stored.Expiry.Equal(want) {
		t.Fatalf("expiry = %v, want %v", stored.Expiry, want)
	}
	// The token works at the provider's API.
	if code, body, _ := whoami(t, ctx, e.p, e.o, "proj_1", "acme/dns"); code != http.StatusOK || body["account_id"] != stored.AccountID {
		t.Fatalf("whoami = %d %v", code, body)
	}
	// Env the provider returned later survives a token renewal for the
	// same account.
	if _, err := e.o.vlt.Update(ctx, "proj_1", "acme/dns", func(c *vault.Credential) error {
		c.Env = map[string]vault.Secret{"ACME_ZONE": "z1"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	req := e.request(t, u, false)
	req.Scope = "zones:read"
	again, err := e.linker.Link(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.LinkAction != authz.LinkExisting || again.Credential.AccountID != stored.AccountID ||
		again.Credential.AccessToken == stored.AccessToken || again.Credential.Env["ACME_ZONE"] != "z1" ||
		!slices.Equal(again.Credential.Scopes, []string{"zones:read"}) {
		t.Fatalf("second link = %+v", again.Credential)
	}
	if strings.Contains(e.logs.String(), again.Credential.AccessToken.Reveal()) || !strings.Contains(e.logs.String(), "link_action=created") {
		t.Fatalf("logs leak the token or miss the link: %s", e.logs)
	}
}

func TestLinkerConsentThroughDeviceFlow(t *testing.T) {
	e := newLinkEnv(t)
	ctx := context.Background()
	u := authztesting.User{Sub: "u-old", Email: "old@example.com", Verified: true}
	pending := e.startPending(t, true)
	err := error(pending)
	if pending.UserCode == "" || pending.VerificationURI != e.p.Server.URL+"/device" ||
		!strings.Contains(pending.VerificationURIComplete, "user_code=") || pending.Provider != "acme" ||
		!pending.ExpiresAt.After(e.clock.Now()) {
		t.Fatalf("pending = %+v", pending)
	}
	if strings.Contains(err.Error(), pending.UserCode) {
		t.Fatalf("error text shows the user code: %v", err)
	}
	if _, err := e.o.vlt.Get(ctx, "proj_1", "acme/dns"); !errors.Is(err, vault.ErrCredentialNotFound) {
		t.Fatalf("vault before approval: %v", err)
	}
	// The human signs in at the provider and approves after the agent's
	// second poll; the Linker keeps polling through authorization_pending.
	e.onSleep = func(n int) {
		if n == 3 {
			if err := e.p.Provisioner.ApproveDevice(ctx, pending.UserCode, "acct_old"); err != nil {
				t.Error(err)
			}
		}
	}
	res, err := pending.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.LinkAction != authz.LinkExisting || res.Credential.AccountID != "acct_old" || e.sleeps.Load() != 3 {
		t.Fatalf("result = %+v after %d polls", res, e.sleeps.Load())
	}
	if c, err := e.o.vlt.Get(ctx, "proj_1", "acme/dns"); err != nil || c.AccountID != "acct_old" || c.LinkAction != authz.LinkExisting {
		t.Fatalf("vault = %+v, %v", c, err)
	}
	// Decided: Wait again answers the same without polling.
	if again, err := pending.Wait(ctx); err != nil || again != res || e.sleeps.Load() != 3 {
		t.Fatalf("second Wait = %v, %v", again, err)
	}
	// From now on the identity is linked: no consent needed.
	res, err = e.linker.Link(ctx, e.request(t, u, false))
	if err != nil || res.LinkAction != authz.LinkExisting || res.Credential.AccountID != "acct_old" {
		t.Fatalf("later Link = %+v, %v", res, err)
	}
}

func TestLinkerDeviceFlowRefusals(t *testing.T) {
	ctx := context.Background()
	start := func(t *testing.T) (*linkEnv, *vault.PendingConsent) {
		e := newLinkEnv(t)
		return e, e.startPending(t, false)
	}
	t.Run("denied", func(t *testing.T) {
		e, pending := start(t)
		if err := e.p.Provisioner.DenyDevice(ctx, pending.UserCode); err != nil {
			t.Fatal(err)
		}
		if _, err := pending.Wait(ctx); !errors.Is(err, authz.ErrAccessDenied) {
			t.Fatalf("Wait = %v", err)
		}
		if _, err := pending.Wait(ctx); !errors.Is(err, authz.ErrAccessDenied) {
			t.Fatalf("second Wait = %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		_, pending := start(t)
		if _, err := pending.Wait(ctx); !errors.Is(err, authz.ErrDeviceCodeExpired) {
			t.Fatalf("Wait = %v", err)
		}
	})
	t.Run("cancelled then resumed", func(t *testing.T) {
		e, pending := start(t)
		cctx, cancel := context.WithCancel(ctx)
		e.onSleep = func(int) { cancel() }
		if _, err := pending.Wait(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v", err)
		}
		e.onSleep = nil
		if err := e.p.Provisioner.ApproveDevice(ctx, pending.UserCode, "acct_old"); err != nil {
			t.Fatal(err)
		}
		if res, err := pending.Wait(ctx); err != nil || res.Credential.AccountID != "acct_old" {
			t.Fatalf("resumed Wait = %v, %v", res, err)
		}
	})
}

func TestLinkerProvisioningErrors(t *testing.T) {
	e := newLinkEnv(t)
	ctx := context.Background()
	_, err := e.linker.Link(ctx, e.request(t, authztesting.User{Sub: "u1", Email: "a@example.com", Verified: true}, false))
	if !errors.Is(err, authz.ErrTermsNotAccepted) || authz.AsError(err).Status != http.StatusBadRequest {
		t.Fatalf("no consent: %v", err)
	}
	_, err = e.linker.Link(ctx, e.request(t, authztesting.User{Sub: "u2", Email: "b@example.com"}, true))
	if !errors.Is(err, authz.ErrEmailNotVerified) {
		t.Fatalf("unverified email: %v", err)
	}
	req := e.request(t, authztesting.User{Sub: "u3", Email: "c@example.com", Verified: true}, true)
	req.Scope = "admin"
	if _, err = e.linker.Link(ctx, req); !errors.Is(err, authz.ErrInvalidScope) {
		t.Fatalf("bad scope: %v", err)
	}
	req = e.request(t, authztesting.User{Sub: "u3", Email: "c@example.com", Verified: true}, true)
	req.Service = "acme"
	if _, err = e.linker.Link(ctx, req); !errors.Is(err, authz.ErrInvalidRequest) {
		t.Fatalf("bad service ref: %v", err)
	}
	req.Service, req.Issuer = "acme/dns", ""
	if _, err = e.linker.Link(ctx, req); !errors.Is(err, authz.ErrInvalidRequest) {
		t.Fatalf("no issuer: %v", err)
	}
	req.Server = &authz.AuthorizationServerMetadata{Issuer: "http://acme.example", TokenEndpoint: "http://acme.example/oauth/token"}
	if _, err = e.linker.Link(ctx, req); !errors.Is(err, authz.ErrInvalidMetadata) {
		t.Fatalf("plain http endpoint: %v", err)
	}
	if _, err := vault.NewLinker(nil, e.o.vlt, nil); err == nil {
		t.Fatal("NewLinker accepted a nil attester")
	}
}

// fakeTokenEndpoint answers each request with the next scripted answer.
func fakeTokenEndpoint(t *testing.T, answers ...func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(answers) {
			i = len(answers) - 1
		}
		answers[i](w)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func jsonAnswer(status int, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestLinkerRejectsBadAnswers(t *testing.T) {
	ctx := context.Background()
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	good := `{"access_token":"t","token_type":"Bearer","expires_in":60,"account_id":"a1","link_action":"created"}`
	for name, tc := range map[string]struct {
		answer func(w http.ResponseWriter)
		want   *authz.Error
	}{
		"mac token":        {jsonAnswer(200, strings.Replace(good, "Bearer", "mac", 1)), vault.ErrInvalidResponse},
		"no link action":   {jsonAnswer(200, strings.Replace(good, `"created"`, `"maybe"`, 1)), vault.ErrInvalidResponse},
		"trailing data":    {jsonAnswer(200, good+"{}"), vault.ErrInvalidResponse},
		"not json":         {func(w http.ResponseWriter) { _, _ = w.Write([]byte(good)) }, vault.ErrInvalidResponse},
		"huge body":        {jsonAnswer(200, `{"access_token":"`+strings.Repeat("a", vault.MaxLinkResponseBytes)+`"}`), vault.ErrInvalidResponse},
		"html error":       {func(w http.ResponseWriter) { http.Error(w, "<h1>oops</h1>", 502) }, vault.ErrInvalidResponse},
		"redirect":         {func(w http.ResponseWriter) { w.Header().Set("Location", "https://evil.example/"); w.WriteHeader(307) }, vault.ErrInvalidResponse},
		"no device flow":   {jsonAnswer(401, `{"error":"consent_required"}`), authz.ErrConsentRequired},
		"provider refusal": {jsonAnswer(400, `{"error":"invalid_grant","error_description":"bad \u001b[31mthing"}`), authz.ErrInvalidGrant},
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := fakeTokenEndpoint(t, tc.answer)
			l, err := vault.NewLinker(o.Attester, o.vlt, &vault.LinkerOptions{HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Link(ctx, vault.LinkRequest{Project: "p1", Service: "acme/dns", Subject: "s1",
				Server: &authz.AuthorizationServerMetadata{Issuer: srv.URL, TokenEndpoint: srv.URL + "/token"}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Link = %v, want %s", err, tc.want.Code)
			}
			var pending *vault.PendingConsent
			if errors.As(err, &pending) {
				t.Fatalf("a PendingConsent without a device flow: %v", err)
			}
			if strings.ContainsRune(err.Error(), 0x1b) {
				t.Fatalf("control characters reached the error: %q", err)
			}
			if _, err := o.vlt.Get(ctx, "p1", "acme/dns"); !errors.Is(err, vault.ErrCredentialNotFound) {
				t.Fatalf("vault written after a bad answer: %v", err)
			}
		})
	}
}

func TestLinkerSlowDown(t *testing.T) {
	ctx := context.Background()
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	var devURL string
	srv, calls := fakeTokenEndpoint(t,
		jsonAnswer(401, `{"error":"consent_required"}`),
		func(w http.ResponseWriter) {
			jsonAnswer(200, `{"device_code":"dc","user_code":"BCDF-GHJK","verification_uri":"`+devURL+`","expires_in":600,"interval":2}`)(w)
		},
		jsonAnswer(400, `{"error":"authorization_pending"}`),
		jsonAnswer(400, `{"error":"slow_down","interval":2}`),
		jsonAnswer(200, `{"access_token":"t","token_type":"bearer","expires_in":60,"account_id":"a1","link_action":"linked_existing"}`),
	)
	devURL = srv.URL + "/device"
	var waits []time.Duration
	l, err := vault.NewLinker(o.Attester, o.vlt, &vault.LinkerOptions{HTTPClient: srv.Client(),
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Link(ctx, vault.LinkRequest{Project: "p1", Service: "acme/dns", Subject: "s1",
		Server: &authz.AuthorizationServerMetadata{Issuer: srv.URL, TokenEndpoint: srv.URL + "/token", DeviceAuthorizationEndpoint: srv.URL + "/device_authorization"}})
	var pending *vault.PendingConsent
	if !errors.As(err, &pending) {
		t.Fatalf("Link = %v", err)
	}
	res, err := pending.Wait(ctx)
	if err != nil || res.Credential.AccountID != "a1" || calls.Load() != 5 {
		t.Fatalf("Wait = %+v, %v after %d calls", res, err, calls.Load())
	}
	if want := []time.Duration{2 * time.Second, 2 * time.Second, 7 * time.Second}; !slices.Equal(waits, want) {
		t.Fatalf("waits = %v, want %v", waits, want)
	}
}

func TestLinkerRefusesUnsafeVerificationURI(t *testing.T) {
	ctx := context.Background()
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	srv, _ := fakeTokenEndpoint(t,
		jsonAnswer(401, `{"error":"consent_required"}`),
		jsonAnswer(200, `{"device_code":"dc","user_code":"BCDF-GHJK","verification_uri":"javascript:alert(1)","expires_in":600}`),
	)
	l, err := vault.NewLinker(o.Attester, o.vlt, &vault.LinkerOptions{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Link(ctx, vault.LinkRequest{Project: "p1", Service: "acme/dns", Subject: "s1",
		Server: &authz.AuthorizationServerMetadata{Issuer: srv.URL, TokenEndpoint: srv.URL + "/token", DeviceAuthorizationEndpoint: srv.URL + "/device_authorization"}})
	if !errors.Is(err, vault.ErrInvalidResponse) {
		t.Fatalf("Link = %v", err)
	}
}

func TestSignConsentTermsURLOnLoopback(t *testing.T) {
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	sign := func(u string) error {
		_, err := o.Attester.SignConsent(context.Background(), authz.ConsentReceipt{
			Subject: "s1", Provider: "acme", TermsURL: u, TermsVersion: "1",
			AcceptedAt: time.Now().Add(-time.Minute), Human: true,
		})
		return err
	}
	for _, u := range []string{"https://acme.example/terms", "http://127.0.0.1:8080/terms", "http://localhost/terms", "http://[::1]:9/terms"} {
		if err := sign(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://acme.example/terms", "ftp://127.0.0.1/terms", "https://user@acme.example/terms", "/terms", "http://127.0.0.1.evil.example/terms"} {
		if err := sign(u); !errors.Is(err, authz.ErrInvalidRequest) {
			t.Errorf("%s: %v, want invalid_request", u, err)
		}
	}
}

func TestLinkerChecksResourceMetadata(t *testing.T) {
	ctx := context.Background()
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	var base string
	srv, calls := fakeTokenEndpoint(t,
		func(w http.ResponseWriter) {
			jsonAnswer(401, `{"error":"consent_required","resource_metadata":"`+base+`/.well-known/oauth-protected-resource"}`)(w)
		},
		func(w http.ResponseWriter) {
			jsonAnswer(200, `{"resource":"`+base+`","authorization_servers":["https://evil.example"]}`)(w)
		},
	)
	base = srv.URL
	l, err := vault.NewLinker(o.Attester, o.vlt, &vault.LinkerOptions{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Link(ctx, vault.LinkRequest{Project: "p1", Service: "acme/dns", Subject: "s1",
		Server: &authz.AuthorizationServerMetadata{Issuer: srv.URL, TokenEndpoint: srv.URL + "/token", DeviceAuthorizationEndpoint: srv.URL + "/device_authorization"}})
	if !errors.Is(err, authz.ErrInvalidMetadata) || calls.Load() != 2 {
		t.Fatalf("Link = %v after %d calls; want invalid_metadata before any device request", err, calls.Load())
	}
}

func TestPendingConsentHidesDeviceCode(t *testing.T) {
	e := newLinkEnv(t)
	ctx := context.Background()
	pending := e.startPending(t, false)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, pending)
		if strings.Contains(out, pending.UserCode) || strings.Contains(out, "device_code") || !strings.Contains(out, "consent_required") {
			t.Fatalf("%s prints %q", verb, out)
		}
	}
	// Zero value: no panic, a clear error.
	if _, err := new(vault.PendingConsent).Wait(ctx); !errors.Is(err, authz.ErrInvalidRequest) {
		t.Fatalf("zero PendingConsent: %v", err)
	}
}

func TestLinkerConcurrentLinks(t *testing.T) {
	e := newLinkEnv(t)
	ctx := context.Background()
	u := authztesting.User{Sub: "u-par", Email: "par@example.com", Verified: true}
	const n = 8
	reqs := make([]vault.LinkRequest, n)
	for i := range reqs {
		reqs[i] = e.request(t, u, true)
	}
	results := make([]*vault.LinkResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = e.linker.Link(ctx, reqs[i]) })
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("link %d: %v", i, errs[i])
		}
		if results[i].LinkAction == authz.LinkCreated {
			created++
		}
		if results[i].Credential.AccountID != results[0].Credential.AccountID {
			t.Fatalf("links ended on different accounts: %s, %s", results[i].Credential.AccountID, results[0].Credential.AccountID)
		}
	}
	list, err := e.o.vlt.List(ctx, "proj_1", "acme")
	if err != nil || len(list) != 1 || created != 1 {
		t.Fatalf("vault holds %d credentials (%v); %d links created an account", len(list), err, created)
	}
}
