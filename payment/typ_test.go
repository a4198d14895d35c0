package payment_test

import (
	"testing"

	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/payment"
	jose "github.com/go-jose/go-jose/v4"
)

// typ is a media type (RFC 7515 §4.1.9): tokens and receipts accept any
// case and an optional "application/" prefix, and still refuse another type.
func TestVerifyJWSTypSpelling(t *testing.T) {
	jwk, _ := paytest.Key().PublicJWK()
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}}
	for _, want := range []string{payment.TokenType, payment.ReceiptType} {
		for typ, ok := range map[string]bool{
			want:                                    true,
			"APPLICATION/AGENTPROV-PAYMENT+JWT":     want == payment.TokenType,
			"Application/Agentprov-Receipt+JWT":     want == payment.ReceiptType,
			"application/agentprov-attestation+jwt": false,
			"agentprov-attestation+jwt":             false,
			"JWT":                                   false,
			"":                                      false,
		} {
			hdr := map[string]any{"alg": "EdDSA", "kid": "orch-2026", "typ": typ}
			_, err := payment.VerifyJWS(forge(t, hdr, true), want, set)
			if ok != (err == nil) {
				t.Errorf("verifyJWS(typ %q, want %q): err = %v", typ, want, err)
			}
		}
	}
}
