package discovery

import (
	"errors"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// A catalog's typ is a media type (RFC 7515 §4.1.9): any case and an
// optional "application/" prefix are accepted; another type is not.
func TestVerifyCatalogTypSpelling(t *testing.T) {
	key := testKey("typ")
	set := publicSet("typ-k1", key)
	for typ, ok := range map[string]bool{
		CatalogJWSType:                      true,
		"APPLICATION/AGENTPROV-CATALOG+JWS": true,
		"application/" + CatalogJWSType:     true,
		"agentprov-payment+jwt":             false,
		"application/agentprov-payment+jwt": false,
		"JWT":                               false,
	} {
		jws := resign(t, "typ-k1", key, jose.EdDSA, typ, nil)(nil)
		_, _, err := VerifyCatalog(jws, set, nil)
		if ok && err != nil {
			t.Errorf("typ %q refused: %v", typ, err)
		}
		if !ok && !errors.Is(err, ErrSignature) {
			t.Errorf("typ %q: err = %v, want ErrSignature", typ, err)
		}
	}
}
