package paywall_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// A provider verified a token but its work failed: it releases the token,
// and the user's budget hold ends at once instead of at the token's
// expiry. Releasing again is harmless; redeeming afterwards is refused.
func ExampleRedeemer_Release() {
	ctx := context.Background()
	ledger, err := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	key := payment.SigningKey{KeyID: "k1", Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}
	iss, err := issuer.NewIssuer("https://orchestrator.example", key, ledger, &issuer.IssuerOptions{
		Rail:         issuer.NewMemoryRail(nil),
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

	held := func() int64 {
		u, _ := ledger.Usage(ctx, budget.Scope{Project: "proj-1", Provider: "cloudflare"})
		for _, c := range u.Counters {
			if c.Counter.Window.Period() == budget.Month && c.Counter.Provider == "cloudflare" {
				return c.Held
			}
		}
		return 0
	}
	minted, err := iss.Mint(ctx, issuer.MintRequest{
		Project: "proj-1", Provider: "cloudflare", Service: "registrar:domain", MaxAmount: budget.USD(2000),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held after mint:", held())

	redeemer, err := paywall.NewRedeemer(srv.URL+"/payment/redemptions", &paywall.RedeemerOptions{APIKey: "cf-api-key"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("release:", redeemer.Release(ctx, minted.Token))
	fmt.Println("again:", redeemer.Release(ctx, minted.Token))
	fmt.Println("held after release:", held())
	_, err = redeemer.Redeem(ctx, minted.Token, budget.USD(1299), "redeem-1")
	fmt.Println("redeem refused:", errors.Is(err, payment.ErrTokenRevoked))
	// Output:
	// held after mint: 2000
	// release: <nil>
	// again: <nil>
	// held after release: 0
	// redeem refused: true
}
