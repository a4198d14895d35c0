package authz_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/agentprov/agentprov/authz"
)

// keysFromJWKS turns JWKS JSON into crypto public keys by hand, following
// RFC 7517/7518/8037 only: no go-jose involved on the verifying side.
func keysFromJWKS(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var doc struct {
		Keys []struct {
			Kty, Crv, Kid, X, Y, Alg, Use string
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range doc.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case k.Kty == "OKP" && k.Crv == "Ed25519":
			out[k.Kid] = ed25519.PublicKey(x)
		case k.Kty == "EC" && k.Crv == "P-256":
			y, err := base64.RawURLEncoding.DecodeString(k.Y)
			if err != nil || len(x) != 32 || len(y) != 32 {
				t.Fatalf("bad EC coordinates in %s", k.Kid)
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				t.Fatal(err)
			}
			out[k.Kid] = pub
		default:
			t.Fatalf("unexpected key %+v", k)
		}
	}
	return out
}

// TestInteropGolangJWT verifies our attestations with github.com/golang-jwt/jwt,
// given only the JWKS bytes our handler serves.
func TestInteropGolangJWT(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	k2, _ := authz.GenerateSigningKey("k2", jose.ES256)
	if err := e.att.AddKey(k2); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	e.att.JWKSHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	keys := keysFromJWKS(t, rec.Body.Bytes())

	for _, kid := range []string{"k1", "k2"} {
		t.Run(kid, func(t *testing.T) {
			if err := e.att.SetActiveKey(kid); err != nil {
				t.Fatal(err)
			}
			tok := e.attest(t, idRequest())
			parsed, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) {
				if tk.Header["typ"] != authz.TypeAttestation {
					return nil, fmt.Errorf("typ %v", tk.Header["typ"])
				}
				k, ok := keys[fmt.Sprint(tk.Header["kid"])]
				if !ok {
					return nil, fmt.Errorf("unknown kid %v", tk.Header["kid"])
				}
				return k, nil
			},
				jwt.WithValidMethods([]string{"EdDSA", "ES256"}),
				jwt.WithAudience(idAudience),
				jwt.WithIssuer(idIssuer),
				jwt.WithExpirationRequired(),
				jwt.WithIssuedAt(),
				jwt.WithTimeFunc(e.clock.Now),
			)
			if err != nil {
				t.Fatalf("golang-jwt rejects our %s attestation: %v", kid, err)
			}
			claims := parsed.Claims.(jwt.MapClaims)
			if claims["sub"] != "pairwise-subject-1" || claims["email"] != "ada@example.com" || parsed.Method.Alg() != map[string]string{"k1": "EdDSA", "k2": "ES256"}[kid] {
				t.Fatalf("claims %v, alg %s", claims, parsed.Method.Alg())
			}
			// And the independent verifier notices tampering.
			if _, err := jwt.Parse(tok[:len(tok)-4]+"AAAA", func(*jwt.Token) (any, error) { return keys[kid], nil }, jwt.WithTimeFunc(e.clock.Now)); err == nil {
				t.Fatal("golang-jwt accepted a tampered signature")
			}
		})
	}
}
