package payment_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// %v, %+v and %#v of the types that hold keys never print them: fmt does
// not reach the redacting methods of unexported fields.
func TestFormatRedactsSecrets(t *testing.T) {
	secret := []byte("SUPERSECRETSUPERSECRETSUPERSECRET!!")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ledger, _ := budget.NewLedger(nil, nil)
	iss, err := issuer.NewIssuer("https://o.example", payment.SigningKey{KeyID: "k", Key: priv}, ledger, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil), Authenticate: issuer.BearerAuthenticator(map[string]string{"p": "SUPERSECRETAPIKEY"})})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := payment.NewTokenVerifier("https://o.example", "p", iss.JWKS(), nil)
	red, _ := paywall.NewRedeemer("https://o.example/r", &paywall.RedeemerOptions{APIKey: "SUPERSECRETAPIKEY"})
	pw, err := paywall.NewPaywall("r", [][]byte{secret}, v, red, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := payment.NewTransport(issuer.IssuerPayer(iss, "p"), map[string]string{"https://a.example": "a"}, budget.USD(1), nil)
	for name, x := range map[string]any{"paywall": pw, "issuer": iss, "transport": tr, "ropts": &paywall.RedeemerOptions{APIKey: "SUPERSECRETAPIKEY"}} {
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			s := fmt.Sprintf(verb, x)
			if strings.Contains(s, "SUPERSECRET") || strings.Contains(s, fmt.Sprint([]byte(secret))) || strings.Contains(s, fmt.Sprint([]byte(priv))[:40]) || strings.Contains(s, "83 85 80 69 82") {
				t.Errorf("%s %s leaks: %.300s", name, verb, s)
			}
		}
	}
}
