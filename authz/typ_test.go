package authz_test

import (
	"context"
	"crypto/ed25519"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/authztesting"
)

// typ is a media type (RFC 7515 §4.1.9): any case and an optional
// "application/" prefix are accepted; another type is still refused.
func TestVerifyTypSpelling(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	key := e.key.Key.(ed25519.PrivateKey)
	for i, tc := range []struct {
		typ string
		ok  bool
	}{
		{"APPLICATION/AGENTPROV-ATTESTATION+JWT", true},
		{"Agentprov-Attestation+JWT", true},
		{"application/" + authz.TypeAttestation, true},
		{"APPLICATION/AGENTPROV-PAYMENT+JWT", false},
		{"application/" + authz.TypeRevocation, false},
		{"application/JWT", false},
	} {
		tok := craft(t, key, with(goodHeader(), "typ", tc.typ), with(goodClaims(), "jti", "typ-"+string(rune('a'+i))))
		_, err := e.ver.Verify(context.Background(), tok)
		if tc.ok {
			if err != nil {
				t.Errorf("typ %q refused: %v", tc.typ, err)
			}
			continue
		}
		authztesting.WantErr(t, err, authz.ErrWrongTokenType)
	}
}
