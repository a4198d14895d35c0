package payment_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
	"github.com/agentprov/agentprov/payment/sqlstore"
	"github.com/go-jose/go-jose/v4"
)

// A provider charges 2.50 USD per call with a Paywall; an agent's
// http.Client pays through a Transport whose Payer is the orchestrator's
// Issuer (in process here). The agent sees a plain 200 with a receipt.
func Example_http402() {
	// Orchestrator: budget ledger ($100/month per provider by default),
	// issuer and redemption endpoint.
	ledger, _ := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	key := payment.SigningKey{KeyID: "k1", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	iss, err := issuer.NewIssuer("https://orchestrator.example", key, ledger, &issuer.IssuerOptions{
		Rail:         issuer.NewMemoryRail(nil),
		Authenticate: issuer.BearerAuthenticator(map[string]string{"cloudflare": "provider-api-key"}),
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	orchestrator := httptest.NewServer(iss.RedemptionHandler())
	defer orchestrator.Close()

	// Provider: verify tokens locally, redeem them at the orchestrator.
	verifier, _ := payment.NewTokenVerifier("https://orchestrator.example", "cloudflare", iss.JWKS(), nil)
	redeemer, _ := paywall.NewRedeemer(orchestrator.URL, &paywall.RedeemerOptions{APIKey: "provider-api-key"})
	paywall, err := paywall.NewPaywall("api.cloudflare.example",
		[][]byte{[]byte("a 32-byte (or longer) HMAC secret")}, verifier, redeemer, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	check := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "example.dev is available")
	})
	provider := httptest.NewServer(paywall.Require("cloudflare/registrar:domain", budget.USD(250))(check))
	defer provider.Close()

	// Agent: pays this provider's origin only, at most 5 USD per call.
	tr, err := payment.NewTransport(issuer.IssuerPayer(iss, "my-project"),
		map[string]string{provider.URL: "cloudflare"}, budget.USD(500), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	client := &http.Client{Transport: tr}

	resp, err := client.Get(provider.URL + "/check?domain=example.dev")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	receipt, _ := payment.ReceiptFromResponse(resp)
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println("paid", receipt.Amount, receipt.Currency, "with", receipt.Method)

	// A stricter ceiling refuses before anything is paid.
	strict, _ := payment.NewTransport(issuer.IssuerPayer(iss, "my-project"),
		map[string]string{provider.URL: "cloudflare"}, budget.USD(100), nil)
	_, err = (&http.Client{Transport: strict}).Get(provider.URL + "/check?domain=example.dev")
	fmt.Println("ceiling refused:", errors.Is(err, payment.ErrCallCeiling))

	u, _ := ledger.Usage(context.Background(), budget.Scope{Project: "my-project", Provider: "cloudflare"})
	for _, c := range u.Counters {
		if c.Counter.Window.Period() == budget.Month {
			fmt.Println("spent this month:", c.Committed)
			break
		}
	}
	// Output:
	// 200 example.dev is available
	// paid 250 USD with agentprov
	// ceiling refused: true
	// spent this month: 250
}

// FormatChallenge and ParseChallenges are the wire layer on their own.
func ExampleParseChallenges() {
	h := `Bearer realm="api", Payment id="abc", realm="api.example.com", method="agentprov", intent="charge", ` +
		`request="eyJhbW91bnQiOiIyNTAiLCJjdXJyZW5jeSI6IlVTRCJ9", expires="2026-11-22T10:05:00Z"`
	cs, err := payment.ParseChallenges([]string{h})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, _ := cs[0].Request.Money()
	fmt.Println(cs[0].Method, cs[0].Intent, m.Amount, m.Currency, cs[0].Expires.Format("15:04"))
	// Output: agentprov charge 250 USD 10:05
}

// readme402 is the snippet of README.md, kept here so that it
// keeps compiling.
func readme402(ctx context.Context, db *sql.DB, mux *http.ServeMux, iss *issuer.Issuer, orchestratorIssuer string, orchestratorJWKS *jose.JSONWebKeySet,
	redemptionURL, apiKey string, secret []byte, checkHandler http.Handler) error {
	// Provider.
	verifier, _ := payment.NewTokenVerifier(orchestratorIssuer, "cloudflare", orchestratorJWKS, nil)
	redeemer, _ := paywall.NewRedeemer(redemptionURL, &paywall.RedeemerOptions{APIKey: apiKey})
	challenges, err := sqlstore.NewChallengeStore(ctx, db, sqlstore.Postgres, nil) // shared by every instance
	if err != nil {
		return err
	}
	paywall, err := paywall.NewPaywall("api.cloudflare.example", [][]byte{secret}, verifier, redeemer,
		&paywall.PaywallOptions{Store: challenges})
	if err != nil {
		return err
	}
	mux.Handle("GET /v1/domains/check", paywall.Require("cloudflare/registrar:domain", budget.USD(250))(checkHandler))

	// Agent.
	tr, err := payment.NewTransport(issuer.IssuerPayer(iss, "my-project"),
		map[string]string{"https://api.cloudflare.example": "cloudflare"}, budget.USD(500), nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tr}
	resp, err := client.Get("https://api.cloudflare.example/v1/domains/check?name=example.dev")
	if errors.Is(err, payment.ErrCallCeiling) || errors.Is(err, payment.ErrCapExceeded) {
		// refused before anything was charged
	}
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

var _ = readme402
