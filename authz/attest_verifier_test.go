package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/authztesting"
)

// craft builds a compact JWS by hand so tests can produce what a correct
// signer never would: alg none, HMAC keyed with the public key, injected
// headers, bad claims. The signature is real Ed25519 unless alg says
// otherwise.
func craft(t testing.TB, key ed25519.PrivateKey, header map[string]any, claims any) string {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	var sig []byte
	switch header["alg"] {
	case "none":
	case "HS256":
		// The classic confusion attack: HMAC keyed with the public key.
		m := hmac.New(sha256.New, key.Public().(ed25519.PublicKey))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	default:
		sig = ed25519.Sign(key, []byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func goodHeader() map[string]any {
	return map[string]any{"alg": "EdDSA", "kid": "k1", "typ": authz.TypeAttestation}
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss": idIssuer, "sub": "s1", "aud": idAudience, "jti": "id-1",
		"iat": idT0.Unix(), "nbf": idT0.Unix(), "exp": idT0.Add(5 * time.Minute).Unix(),
		"email": "ada@example.com", "email_verified": true,
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestVerifyRejects(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	key := e.key.Key.(ed25519.PrivateKey)
	other, _ := authz.GenerateSigningKey("k1", jose.EdDSA)
	pubJWK, _ := json.Marshal(e.att.JWKS().Keys[0])
	var jwk map[string]any
	_ = json.Unmarshal(pubJWK, &jwk)

	h, c := goodHeader(), goodClaims()
	cases := []struct {
		name  string
		token string
		want  *authz.Error
	}{
		{"control: valid", craft(t, key, h, c), nil},
		{"oversized", strings.Repeat("a", 9000), authz.ErrTokenTooLarge},
		{"oversized but valid-looking", craft(t, key, h, with(c, "name", strings.Repeat("n", 9000))), authz.ErrTokenTooLarge},
		{"garbage", "not a token", authz.ErrMalformedToken},
		{"two parts", "eyJhbGciOiJFZERTQSJ9.e30", authz.ErrMalformedToken},
		{"four parts", craft(t, key, h, c) + ".x", authz.ErrMalformedToken},
		{"header not base64", "!!!." + strings.SplitN(craft(t, key, h, c), ".", 2)[1], authz.ErrMalformedToken},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".e30.AA", authz.ErrMalformedToken},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, authz.ErrMalformedToken},
		{"no alg", craft(t, key, with(h, "alg", nil), c), authz.ErrMalformedToken},
		{"alg none", craft(t, key, with(h, "alg", "none"), c), authz.ErrAlgorithmNotAllowed},
		{"alg None", craft(t, key, with(h, "alg", "None"), c), authz.ErrAlgorithmNotAllowed},
		{"HS256 keyed with the public key", craft(t, key, with(h, "alg", "HS256"), c), authz.ErrAlgorithmNotAllowed},
		{"RS256", craft(t, key, with(h, "alg", "RS256"), c), authz.ErrAlgorithmNotAllowed},
		{"typ JWT (an ID token)", craft(t, key, with(h, "typ", "JWT"), c), authz.ErrWrongTokenType},
		{"typ missing", craft(t, key, with(h, "typ", nil), c), authz.ErrWrongTokenType},
		{"typ payment token", craft(t, key, with(h, "typ", "agentprov-payment+jwt"), c), authz.ErrWrongTokenType},
		{"typ consent receipt", craft(t, key, with(h, "typ", authz.TypeConsent), c), authz.ErrWrongTokenType},
		{"typ not a string", craft(t, key, with(h, "typ", 7), c), authz.ErrWrongTokenType},
		{"jwk header", craft(t, key, with(h, "jwk", jwk), c), authz.ErrForbiddenHeader},
		{"jku header", craft(t, key, with(h, "jku", "https://evil.example/jwks"), c), authz.ErrForbiddenHeader},
		{"x5u header", craft(t, key, with(h, "x5u", "https://evil.example/cert"), c), authz.ErrForbiddenHeader},
		{"x5c header", craft(t, key, with(h, "x5c", []string{"MIIB"}), c), authz.ErrForbiddenHeader},
		{"crit header", craft(t, key, with(h, "crit", []string{"exp"}, "exp", 1), c), authz.ErrForbiddenHeader},
		{"no kid", craft(t, key, with(h, "kid", nil), c), authz.ErrMalformedToken},
		{"unknown kid", craft(t, key, with(h, "kid", "k9"), c), authz.ErrUnknownKey},
		{"unknown issuer", craft(t, key, h, with(c, "iss", "https://evil.example")), authz.ErrUnknownIssuer},
		{"missing issuer", craft(t, key, h, with(c, "iss", nil)), authz.ErrUnknownIssuer},
		{"signed by another key with the same kid", craft(t, other.Key.(ed25519.PrivateKey), h, c), authz.ErrInvalidSignature},
		{"payload not JSON", strings.Join([]string{strings.Split(craft(t, key, h, c), ".")[0], "bm90IGpzb24", "AA"}, "."), authz.ErrMalformedToken},
		{"wrong audience", craft(t, key, h, with(c, "aud", "cloudflare")), authz.ErrWrongAudience},
		{"audience array", craft(t, key, h, with(c, "aud", []string{idAudience})), authz.ErrMalformedToken},
		{"expired", craft(t, key, h, with(c, "iat", idT0.Add(-10*time.Minute).Unix(), "nbf", nil, "exp", idT0.Add(-31*time.Second).Unix())), authz.ErrTokenExpired},
		{"not yet valid (nbf)", craft(t, key, h, with(c, "nbf", idT0.Add(31*time.Second).Unix())), authz.ErrTokenNotYetValid},
		{"issued in the future", craft(t, key, h, with(c, "iat", idT0.Add(time.Minute).Unix(), "exp", idT0.Add(6*time.Minute).Unix())), authz.ErrTokenNotYetValid},
		{"lifetime too long", craft(t, key, h, with(c, "exp", idT0.Add(11*time.Minute).Unix())), authz.ErrLifetimeTooLong},
		{"exp before iat", craft(t, key, h, with(c, "exp", idT0.Add(-time.Second).Unix())), authz.ErrMalformedToken},
		{"no exp", craft(t, key, h, with(c, "exp", nil)), authz.ErrMalformedToken},
		{"no iat", craft(t, key, h, with(c, "iat", nil)), authz.ErrMalformedToken},
		{"no sub", craft(t, key, h, with(c, "sub", nil)), authz.ErrMalformedToken},
		{"no jti", craft(t, key, h, with(c, "jti", nil)), authz.ErrMalformedToken},
		{"email_verified not a bool", craft(t, key, h, with(c, "email_verified", "yes")), authz.ErrMalformedToken},
		{"bad service ref", craft(t, key, h, with(c, "service", "neon")), authz.ErrMalformedToken},
		{"service of another provider", craft(t, key, h, with(c, "service", "cloudflare/dns")), authz.ErrMalformedToken},
		{"jti too long", craft(t, key, h, with(c, "jti", strings.Repeat("j", 300))), authz.ErrMalformedToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ver.Verify(context.Background(), tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("control token rejected: %v", err)
				}
				return
			}
			authztesting.WantErr(t, err, tc.want)
		})
	}
}

// TestVerifyRejectsNonCanonicalBase64: a signature whose last character
// differs only in the unused trailing bits decodes to the same bytes; a
// lenient decoder would accept it, making tokens malleable.
func TestVerifyRejectsNonCanonicalBase64(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	tok := e.attest(t, idRequest())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	// 64 signature bytes use 86 characters: the last one carries 2 bits.
	for spare := 1; spare < 16; spare++ {
		mut := tok[:len(tok)-1] + string(alphabet[last|spare])
		if mut == tok {
			continue
		}
		_, err := e.ver.Verify(context.Background(), mut)
		authztesting.WantErr(t, err, authz.ErrMalformedToken)
	}
	if _, err := e.ver.Verify(context.Background(), tok); err != nil {
		t.Fatalf("original token: %v", err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	key := e.key.Key.(ed25519.PrivateKey)
	ctx := context.Background()
	// Expired 29 seconds ago: inside the 30 second leeway.
	tok := craft(t, key, goodHeader(), with(goodClaims(), "jti", "a", "iat", idT0.Add(-5*time.Minute).Unix(), "nbf", nil, "exp", idT0.Add(-29*time.Second).Unix()))
	if _, err := e.ver.Verify(ctx, tok); err != nil {
		t.Fatalf("token inside the leeway rejected: %v", err)
	}
	// Valid from 29 seconds in the future: inside the leeway.
	tok = craft(t, key, goodHeader(), with(goodClaims(), "jti", "b", "nbf", idT0.Add(29*time.Second).Unix()))
	if _, err := e.ver.Verify(ctx, tok); err != nil {
		t.Fatalf("token inside the nbf leeway rejected: %v", err)
	}
}

// TestReplayConsumedLast: a token that fails any check never burns its jti,
// so an attacker cannot pre-empt a legitimate presentation with a bad copy.
func TestReplayConsumedLast(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	ctx := context.Background()
	tok := e.attest(t, idRequest())
	_, err := e.verifier(t, "cloudflare").Verify(ctx, tok)
	authztesting.WantErr(t, err, authz.ErrWrongAudience)
	if n := e.replay.Len(); n != 0 {
		t.Fatalf("rejected token left %d replay entries", n)
	}
	if _, err := e.ver.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify after a rejected attempt: %v", err)
	}
	if n := e.replay.Len(); n != 1 {
		t.Fatalf("accepted token left %d replay entries, want 1", n)
	}
	// The replay entry outlives the token's validity window.
	e.clock.Advance(5*time.Minute + 29*time.Second)
	_, err = e.ver.Verify(ctx, tok)
	authztesting.WantErr(t, err, authz.ErrTokenReplayed)
}

func TestReplayScopedByIssuer(t *testing.T) {
	// Two orchestrators that happen to issue the same jti do not collide.
	e := newIDEnv(t, jose.EdDSA)
	k2, _ := authz.GenerateSigningKey("k2", jose.EdDSA)
	att2, _ := authz.NewAttester("https://other.example", k2, &authz.AttesterOptions{Clock: e.clock.Now})
	v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{
		{Issuer: idIssuer, Keys: e.att.JWKS()},
		{Issuer: "https://other.example", Keys: att2.JWKS()},
	}, e.replay, &authz.VerifierOptions{Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t1 := craft(t, e.key.Key.(ed25519.PrivateKey), goodHeader(), goodClaims())
	t2 := craft(t, k2.Key.(ed25519.PrivateKey), with(goodHeader(), "kid", "k2"), with(goodClaims(), "iss", "https://other.example"))
	for _, tok := range []string{t1, t2} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	// A key of one issuer never verifies the other's tokens.
	t3 := craft(t, k2.Key.(ed25519.PrivateKey), with(goodHeader(), "kid", "k2"), with(goodClaims(), "jti", "x"))
	_, err = v.Verify(context.Background(), t3)
	authztesting.WantErr(t, err, authz.ErrUnknownKey)
}

func TestNewVerifierValidates(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	trust := []authz.TrustedIssuer{{Issuer: idIssuer, Keys: e.att.JWKS()}}
	rs := authz.NewMemoryReplayStore(nil)
	for name, f := range map[string]func() (*authz.Verifier, error){
		"no audience": func() (*authz.Verifier, error) { return authz.NewVerifier("", trust, rs, nil) },
		"no replay":   func() (*authz.Verifier, error) { return authz.NewVerifier(idAudience, trust, nil, nil) },
		"no trust":    func() (*authz.Verifier, error) { return authz.NewVerifier(idAudience, nil, rs, nil) },
		"HS256 allowed": func() (*authz.Verifier, error) {
			return authz.NewVerifier(idAudience, trust, rs, &authz.VerifierOptions{Algorithms: []jose.SignatureAlgorithm{jose.HS256}})
		},
		"none allowed": func() (*authz.Verifier, error) {
			return authz.NewVerifier(idAudience, trust, rs, &authz.VerifierOptions{Algorithms: []jose.SignatureAlgorithm{"none"}})
		},
		"leeway above 60s": func() (*authz.Verifier, error) {
			return authz.NewVerifier(idAudience, trust, rs, &authz.VerifierOptions{Leeway: 2 * time.Minute})
		},
		"issuer without keys": func() (*authz.Verifier, error) {
			return authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer}}, rs, nil)
		},
		"duplicate issuer": func() (*authz.Verifier, error) {
			return authz.NewVerifier(idAudience, append(trust, trust...), rs, nil)
		},
		"insecure JWKS URL": func() (*authz.Verifier, error) {
			return authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, JWKSURL: "http://orchestrator.example/jwks"}}, rs, nil)
		},
		"symmetric pinned key": func() (*authz.Verifier, error) {
			return authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("secret"), KeyID: "h"}}}}}, rs, nil)
		},
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: NewVerifier succeeded", name)
		}
	}
}

func TestVerifyDefaultAllowListRejectsES384(t *testing.T) {
	e := newIDEnv(t, jose.ES384)
	v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, Keys: e.att.JWKS()}}, e.replay, &authz.VerifierOptions{Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), e.attest(t, idRequest()))
	authztesting.WantErr(t, err, authz.ErrAlgorithmNotAllowed)
}

// FuzzVerifyAttestation feeds the verifier arbitrary input and mutations of
// a valid token: it must never panic, and nothing but the untouched token
// may verify.
func FuzzVerifyAttestation(f *testing.F) {
	e := newIDEnv(f, jose.EdDSA)
	valid := e.attest(f, idRequest())
	key := e.key.Key.(ed25519.PrivateKey)
	f.Add(valid)
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Add(craft(f, key, with(goodHeader(), "alg", "none"), goodClaims()))
	f.Add(craft(f, key, with(goodHeader(), "jku", "https://x"), goodClaims()))
	f.Add(craft(f, key, goodHeader(), with(goodClaims(), "aud", []string{"a", "b"})))
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Fuzz(func(t *testing.T, tok string) {
		v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, Keys: e.att.JWKS()}},
			authz.NewMemoryReplayStore(nil), &authz.VerifierOptions{Clock: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		a, err := v.Verify(context.Background(), tok)
		if err == nil && tok != valid {
			t.Fatalf("a token other than the signed one verified: %q -> %+v", tok, a)
		}
		if err != nil && authz.AsError(err) == nil {
			t.Fatalf("untyped error %v", err)
		}
	})
}
