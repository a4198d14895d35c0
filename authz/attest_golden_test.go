package authz_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/agentprov/agentprov/authz"
)

var updateGolden = flag.Bool("update-identity", false, "rewrite the identity golden files (testdata/attestation*.json)")

// goldenVector is the layout of testdata/attestation*.json: everything an
// independent implementation needs to reproduce the exact token — the fixed
// test key, the time, the random bytes of the jti, the input — and the
// expected header, claims and compact token.
type goldenVector struct {
	Description string            `json:"description"`
	KeyID       string            `json:"kid"`
	Algorithm   string            `json:"alg"`
	SeedHex     string            `json:"ed25519_seed_hex"`
	PublicJWK   json.RawMessage   `json:"public_jwk"`
	Issuer      string            `json:"issuer"`
	Now         time.Time         `json:"now"`
	RandomHex   string            `json:"jti_random_hex"`
	Request     json.RawMessage   `json:"request"`
	Header      map[string]any    `json:"header"`
	Claims      map[string]any    `json:"claims"`
	Token       string            `json:"token"`
	Extra       map[string]string `json:"extra,omitempty"`
}

const goldenSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60" // RFC 8032 test 1

func goldenAttester(t *testing.T, random []byte) *authz.Attester {
	t.Helper()
	seed, _ := hex.DecodeString(goldenSeed)
	att, err := authz.NewAttester(idIssuer,
		authz.SigningKey{KeyID: "golden-1", Algorithm: jose.EdDSA, Key: ed25519.NewKeyFromSeed(seed)},
		&authz.AttesterOptions{Clock: func() time.Time { return idT0 }, Rand: bytes.NewReader(random)})
	if err != nil {
		t.Fatal(err)
	}
	return att
}

func checkGolden(t *testing.T, name string, got goldenVector) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-identity to create)", err)
	}
	var want goldenVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	// Compare through JSON so that numbers and raw messages normalise.
	norm := func(v goldenVector) map[string]any {
		b, _ := json.Marshal(v)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Fatalf("%s differs (-file +now):\n%s", path, diff)
	}
}

func TestGoldenAttestation(t *testing.T) {
	random := bytes.Repeat([]byte{0xa5}, 16)
	att := goldenAttester(t, random)
	req := idRequest()
	tok, err := att.Attest(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	reqJSON, _ := json.Marshal(req)
	jwk, _ := json.Marshal(att.JWKS().Keys[0])
	got := goldenVector{
		Description: "Identity attestation (PROTOCOL §4.1) signed with the RFC 8032 test key 1; the jti is base64url of the 16 random bytes.",
		KeyID:       "golden-1", Algorithm: "EdDSA", SeedHex: goldenSeed, PublicJWK: jwk,
		Issuer: idIssuer, Now: idT0, RandomHex: hex.EncodeToString(random),
		Request: reqJSON, Header: tokenHeader(t, tok), Claims: tokenClaims(t, tok), Token: tok,
	}
	checkGolden(t, "attestation.json", got)

	// The token in the file verifies, with only the file's public key.
	var vec goldenVector
	b, _ := os.ReadFile(filepath.Join("testdata", "attestation.json"))
	_ = json.Unmarshal(b, &vec)
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(vec.PublicJWK); err != nil {
		t.Fatal(err)
	}
	v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: vec.Issuer, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key}}}},
		authz.NewMemoryReplayStore(nil), &authz.VerifierOptions{Clock: func() time.Time { return vec.Now }})
	if err != nil {
		t.Fatal(err)
	}
	a, err := v.Verify(context.Background(), vec.Token)
	if err != nil {
		t.Fatalf("golden token does not verify: %v", err)
	}
	if a.ID != "paWlpaWlpaWlpaWlpaWlpQ" || a.Subject != req.Subject {
		t.Fatalf("golden attestation = %+v", a)
	}
}

func TestGoldenConsentReceipt(t *testing.T) {
	random := bytes.Repeat([]byte{0x5a}, 16)
	att := goldenAttester(t, random)
	r := idConsent()
	tok, err := att.SignConsent(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	reqJSON, _ := json.Marshal(r)
	jwk, _ := json.Marshal(att.JWKS().Keys[0])
	checkGolden(t, "attestation_consent.json", goldenVector{
		Description: "Consent receipt (PROTOCOL §4.3) signed with the RFC 8032 test key 1.",
		KeyID:       "golden-1", Algorithm: "EdDSA", SeedHex: goldenSeed, PublicJWK: jwk,
		Issuer: idIssuer, Now: idT0, RandomHex: hex.EncodeToString(random),
		Request: reqJSON, Header: tokenHeader(t, tok), Claims: tokenClaims(t, tok), Token: tok,
	})
}

func TestGoldenJWKS(t *testing.T) {
	att := goldenAttester(t, nil)
	b, _ := json.Marshal(att.JWKS())
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	checkGolden(t, "attestation_jwks.json", goldenVector{
		Description: "The JWKS (PROTOCOL §4.2) the attester publishes for the RFC 8032 test key 1, in the extra.jwks member.",
		KeyID:       "golden-1", Algorithm: "EdDSA", SeedHex: goldenSeed,
		Issuer: idIssuer, Now: idT0, Extra: map[string]string{"jwks": string(b)},
	})
	// The served public key is the one of RFC 8032 test 1.
	keys := doc["keys"].([]any)
	if x := keys[0].(map[string]any)["x"]; x != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Fatalf("x = %v", x)
	}
}
