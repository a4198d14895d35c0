package payment_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/go-jose/go-jose/v4"
)

// mapResolver is a KeyResolver over a fixed set, for tests.
type mapResolver struct{ keys *jose.JSONWebKeySet }

func (m mapResolver) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	if ks := m.keys.Key(kid); len(ks) > 0 {
		return &ks[0], nil
	}
	return nil, errors.New("unknown kid")
}

// FuzzResolvingVerify feeds arbitrary strings to a resolving verifier,
// which reads the untrusted header for its kid before any signature check:
// nothing may panic, errors are typed, and only tokens the static verifier
// also accepts get through.
func FuzzResolvingVerify(f *testing.F) {
	signer, err := paywire.SignerFor(paytest.Key(), payment.TokenType)
	if err != nil {
		f.Fatal(err)
	}
	c := goldenClaims()
	good, err := payment.SignJWT(signer, payment.ClaimsWire(&c))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{good, "", "eyJraWQiOiJvcmNoLTIwMjYifQ.e30.", "e30.e30.e30", good[:len(good)-4] + "AAAA"} {
		f.Add(seed)
	}
	jwk, _ := paytest.Key().PublicJWK()
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}}
	opts := &payment.TokenVerifierOptions{Now: func() time.Time { return c.IssuedAt }}
	static, _ := payment.NewTokenVerifier(paytest.IssuerURL, c.Audience, set, opts)
	resolving, _ := payment.NewResolvingTokenVerifier(paytest.IssuerURL, c.Audience, mapResolver{set}, opts)
	f.Fuzz(func(t *testing.T, tok string) {
		ctx := context.Background()
		c, err := resolving.Verify(ctx, tok)
		if err != nil {
			var pe *payment.Error
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		if sc, serr := static.Verify(ctx, tok); serr != nil || sc.HoldID != c.HoldID {
			t.Fatalf("resolving verifier accepted what the static one refuses: %v", serr)
		}
	})
}
