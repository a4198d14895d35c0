package payment_test

import (
	"context"
	"crypto/ed25519"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// readmeSnippet keeps the README.md snippet compiling; it
// is never run.
func readmeSnippet(ctx context.Context, ed25519PrivateKey ed25519.PrivateKey, myRail issuer.Rail, cfAPIKey string,
	mux *http.ServeMux, orchestratorJWKS *jose.JSONWebKeySet) error {
	ledger, err := budget.NewLedger(budget.NewMemoryStore(nil), nil) // $100/provider/month
	if err != nil {
		return err
	}
	iss, err := issuer.NewIssuer("https://orchestrator.example",
		payment.SigningKey{KeyID: "k1", Key: ed25519PrivateKey}, ledger,
		&issuer.IssuerOptions{
			Rail:         myRail, // or payment.NewMemoryRail(nil) in tests
			Authenticate: issuer.BearerAuthenticator(map[string]string{"cloudflare": cfAPIKey}),
		})
	if err != nil {
		return err
	}
	mux.Handle("/payment/redemptions", iss.RedemptionHandler())
	mux.Handle("/payment/redemptions/", iss.RedemptionHandler())
	settler, err := issuer.NewSettler(iss, nil)
	if err != nil {
		return err
	}
	go settler.Run(ctx) // the outbox; stops when ctx ends

	minted, err := iss.Mint(ctx, issuer.MintRequest{
		Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain",
		MaxAmount: budget.USD(2000), IdempotencyKey: "order-42",
	})
	if err != nil {
		return err // errors.Is(err, payment.ErrCapExceeded) when the budget refuses
	}
	token := minted.Token // handed to the agent, which presents it to the provider

	// Provider:
	redeemer, err := paywall.NewRedeemer("https://orchestrator.example/payment/redemptions",
		&paywall.RedeemerOptions{APIKey: cfAPIKey, Keys: orchestratorJWKS, Issuer: "https://orchestrator.example"})
	if err != nil {
		return err
	}
	receipt, err := redeemer.Redeem(ctx, token, budget.USD(1299), "redeem-order-42")
	// receipt.Signed is the orchestrator-signed evidence; receipt.State is "settled"
	// or "settling" (poll redeemer.Status(ctx, receipt.HoldID)).
	_, _ = receipt, err
	// Had the work failed instead: give the user's hold back now.
	// err = redeemer.Release(ctx, token)
	return nil
}

var _ = readmeSnippet
