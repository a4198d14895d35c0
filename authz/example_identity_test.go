package authz_test

import (
	"context"
	"fmt"
	"log"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
)

// The orchestrator attests its user to a provider; the provider verifies
// the attestation against the orchestrator's published keys.
func ExampleAttester() {
	ctx := context.Background()

	// Orchestrator side.
	key, err := authz.GenerateSigningKey("2026-05", jose.EdDSA)
	if err != nil {
		log.Fatal(err)
	}
	attester, err := authz.NewAttester("https://orchestrator.example", key, nil)
	if err != nil {
		log.Fatal(err)
	}
	pairwise := []byte("an orchestrator-wide secret of at least 32 bytes!!")
	token, err := attester.Attest(ctx, authz.AttestRequest{
		Audience:      "neon",
		Subject:       authz.PairwiseSubject(pairwise, "user-123", "neon"),
		Email:         "ada@example.com",
		EmailVerified: true,
		Actor:         &authz.Actor{Sub: "agent-7", ClientID: "claude-code"},
		Project:       "proj_1",
		Service:       "neon/postgres",
	})
	if err != nil {
		log.Fatal(err)
	}

	// Provider side. In production the keys come from the orchestrator's
	// JWKS URL (TrustedIssuer.JWKSURL); here they are pinned.
	verifier, err := authz.NewVerifier("neon",
		[]authz.TrustedIssuer{{Issuer: "https://orchestrator.example", Keys: attester.JWKS()}},
		authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	a, err := verifier.Verify(ctx, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Email, a.EmailVerified, a.Actor.ClientID, a.Service, a.Expiry.Sub(a.IssuedAt))

	// An attestation is single use.
	_, err = verifier.Verify(ctx, token)
	fmt.Println(authz.AsError(err).Code)
	// Output:
	// ada@example.com true claude-code neon/postgres 5m0s
	// token_replayed
}
