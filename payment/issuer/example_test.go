package issuer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// The whole token flow in one process: the orchestrator mints a token
// against a budget hold, the provider checks it locally, does the work,
// redeems the actual amount at the orchestrator's endpoint and verifies the
// signed receipt.
func Example_tokenRedemption() {
	ctx := context.Background()

	// Orchestrator: a ledger with the default $100/month cap, a rail, an issuer.
	ledger, err := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	rail := issuer.NewMemoryRail(nil)
	iss, err := issuer.NewIssuer("https://orchestrator.example", payment.SigningKey{KeyID: "k1", Key: priv}, ledger,
		&issuer.IssuerOptions{
			Rail:         rail,
			Authenticate: issuer.BearerAuthenticator(map[string]string{"cloudflare": "cf-api-key"}),
		})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/payment/redemptions", iss.RedemptionHandler())
	mux.Handle("/payment/redemptions/", iss.RedemptionHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	minted, err := iss.Mint(ctx, issuer.MintRequest{
		Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain",
		MaxAmount: budget.USD(2000), IdempotencyKey: "order-42",
	})
	if err != nil {
		log.Fatal(err)
	}

	// Provider: verify locally, then redeem what the work actually cost.
	verifier, err := payment.NewTokenVerifier("https://orchestrator.example", "cloudflare", iss.JWKS(), nil)
	if err != nil {
		log.Fatal(err)
	}
	claims, err := verifier.Verify(ctx, minted.Token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token for", claims.Service, "up to", claims.MaxAmount)

	redeemer, err := paywall.NewRedeemer(srv.URL+"/payment/redemptions", &paywall.RedeemerOptions{
		APIKey: "cf-api-key", Keys: iss.JWKS(), Issuer: "https://orchestrator.example",
	})
	if err != nil {
		log.Fatal(err)
	}
	receipt, err := redeemer.Redeem(ctx, minted.Token, budget.USD(1299), "redeem-order-42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("redeemed", receipt.Amount, "state", receipt.State)

	// Anyone holding the orchestrator's JWKS can check the receipt.
	checked, err := payment.VerifyReceipt(receipt.Signed, iss.JWKS(), "https://orchestrator.example")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("receipt for hold", checked.HoldID == claims.HoldID, "amount", checked.Amount)
	fmt.Println("charged", rail.Total("USD"))

	// A second redemption of the same token for another amount is refused.
	_, err = redeemer.Redeem(ctx, minted.Token, budget.USD(1500), "another-key")
	fmt.Println(err)
	// Output:
	// token for cloudflare/registrar:domain up to 20.00 USD
	// redeemed 12.99 USD state settled
	// receipt for hold true amount 12.99 USD
	// charged 1299
	// payment: already_redeemed: redeemed before for 12.99 USD
}
