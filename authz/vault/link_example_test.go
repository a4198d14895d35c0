package vault_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/vault"
)

// An orchestrator links its user at a provider: a new account when the
// human accepted the terms, or, for an email the provider already knows,
// the device flow approved by the account holder.
func ExampleLinker() {
	ctx := context.Background()
	key, err := authz.GenerateSigningKey("orch-2026", jose.EdDSA)
	if err != nil {
		log.Fatal(err)
	}
	attester, err := authz.NewAttester("https://orchestrator.example", key, nil)
	if err != nil {
		log.Fatal(err)
	}

	// The provider, as its own service would run it.
	verifier, err := authz.NewVerifier("acme",
		[]authz.TrustedIssuer{{Issuer: "https://orchestrator.example", Keys: attester.JWKS()}},
		authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	accounts := provision.NewMemoryAccountStore()
	_ = accounts.Seed(ctx, provision.Account{ID: "acct_grace", Email: "grace@example.com", CreatedAt: time.Now()})
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	defer srv.Close()
	prov, err := provision.NewProvisioner(verifier, accounts, provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer: srv.URL, TermsVersion: "2026-04", TermsURL: srv.URL + "/terms",
		ServiceScopes: map[string][]string{"acme/dns": {"dns:write"}}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = prov.Handler()

	// The orchestrator.
	vlt, err := vault.NewVault(vault.NewMemoryVaultStore(), nil)
	if err != nil {
		log.Fatal(err)
	}
	linker, err := vault.NewLinker(attester, vlt, &vault.LinkerOptions{
		HTTPClient: srv.Client(), Logger: slog.New(slog.DiscardHandler),
		// Only so that this example runs at once: the human below
		// approves before the first poll.
		Sleep: func(context.Context, time.Duration) error { return nil },
	})
	if err != nil {
		log.Fatal(err)
	}

	// Ada is new at Acme and accepted its terms (http on loopback is
	// allowed for terms URLs in tests).
	consent, err := attester.SignConsent(ctx, authz.ConsentReceipt{
		Subject: "sub-ada", Email: "ada@example.com", Provider: "acme", TermsURL: srv.URL + "/terms",
		TermsVersion: "2026-04", AcceptedAt: time.Now().Add(-time.Minute), Human: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := linker.Link(ctx, vault.LinkRequest{
		Project: "proj_site", Service: "acme/dns", Issuer: srv.URL,
		Subject: "sub-ada", Email: "ada@example.com", EmailVerified: true, Consent: consent,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ada:", res.LinkAction, res.Credential.Scopes)

	// Grace already has an Acme account: her approval is needed.
	_, err = linker.Link(ctx, vault.LinkRequest{
		Project: "proj_blog", Service: "acme/dns", Issuer: srv.URL,
		Subject: "sub-grace", Email: "grace@example.com", EmailVerified: true,
	})
	var pending *vault.PendingConsent
	if !errors.As(err, &pending) {
		log.Fatal(err)
	}
	fmt.Println("grace: open", pending.VerificationURI == srv.URL+"/device", "and enter the code")
	// … Grace signs in at Acme, which approves for her account …
	if err := prov.ApproveDevice(ctx, pending.UserCode, "acct_grace"); err != nil {
		log.Fatal(err)
	}
	res, err = pending.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cred, _ := vlt.Get(ctx, "proj_blog", "acme/dns")
	fmt.Println("grace:", res.LinkAction, cred.AccountID)
	// Output:
	// ada: created [dns:write]
	// grace: open true and enter the code
	// grace: linked_existing acct_grace
}
