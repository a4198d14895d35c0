package paywire

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/signkey"
	"github.com/agentprov/agentprov/internal/wireid"
)

// AllowedAlgs is the JOSE algorithm allow-list: asymmetric only.
var AllowedAlgs = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

// ResolveKey fills k's kid and algorithm and checks that payment may sign
// with it.
func ResolveKey(k signkey.Key) (signkey.Key, error) {
	r, err := k.Resolve(AllowedAlgs)
	if err != nil {
		return k, fmt.Errorf("payment: %w", err)
	}
	return r, nil
}

// SignerFor builds a go-jose signer for typ with a resolved key. Signers
// are cheap; one is built per Issuer and typ.
func SignerFor(k signkey.Key, typ string) (jose.Signer, error) {
	k, err := ResolveKey(k)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader(jose.HeaderKey("kid"), k.KeyID)
	return jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: k.SigningValue()}, opts)
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// ValidProvider reports whether s is a provider id (§2.5).
func ValidProvider(s string) bool { return wireid.ProviderID(s) }

// ValidProject reports whether s is a project id.
func ValidProject(s string) bool { return wireid.ProjectID(s) }

// SplitRef parses a service ref strictly (§2.5).
func SplitRef(ref string) (provider, service string, err error) {
	p, s, ok := strings.Cut(ref, "/")
	if !ok || !wireid.ProviderID(p) || !wireid.ServiceID(s) {
		return "", "", fmt.Errorf("service ref %q is not provider/service_id", ref)
	}
	return p, s, nil
}

// MajorOK reports whether protocol version v is of major version 0, the
// one this module implements.
func MajorOK(v string) bool {
	major, _, ok := strings.Cut(v, ".")
	return ok && major == "0"
}

// CheckMoney refuses an amount that is negative or whose currency is not
// an upper-case ISO 4217 code.
func CheckMoney(m budget.Money) error {
	if !currencyRE.MatchString(m.Currency) {
		return fmt.Errorf("currency %q is not an upper-case ISO 4217 code", m.Currency)
	}
	if m.Amount < 0 {
		return fmt.Errorf("amount is negative (%s)", m)
	}
	return nil
}

// DefaultLeeway is payment.DefaultLeeway (payment's tests check that the
// two agree).
const DefaultLeeway = 30 * time.Second

// Leeway is the clock leeway to apply for a configured d: DefaultLeeway
// when d is not positive, and never more than a minute.
func Leeway(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultLeeway
	}
	return min(d, time.Minute)
}
