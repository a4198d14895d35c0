package payment_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/go-jose/go-jose/v4"
)

// joseOnly is the reference verifier: typ and kid from the header, then
// go-jose for every algorithm.
func joseOnly(token, typ string, keys *jose.JSONWebKeySet) ([]byte, error) {
	h, _, _ := strings.Cut(token, ".")
	raw, err := paywire.HdrB64.DecodeString(h)
	if err != nil {
		return nil, err
	}
	var hdr struct {
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, err
	}
	if hdr.Typ != typ {
		return nil, errors.New("typ")
	}
	return payment.VerifyJWSJose(token, hdr.Kid, keys)
}

// The EdDSA fast path of verifyJWS never accepts a token that go-jose
// rejects: each one-character change of a valid token (in the header,
// payload and signature) is tried against both.
func TestVerifyJWSFastPathAgreesWithJose(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "token.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v tokenVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	iss, err := issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), &paytest.FaultHolds{}, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil)})
	if err != nil {
		t.Fatal(err)
	}
	keys := iss.JWKS()
	want, err := joseOnly(v.JWS, payment.TokenType, keys)
	if err != nil {
		t.Fatalf("reference rejects the golden token: %v", err)
	}
	got, err := payment.VerifyJWS(v.JWS, payment.TokenType, keys)
	if err != nil || string(got) != string(want) {
		t.Fatalf("fast path: %q, %v; want %q", got, err, want)
	}
	accepted := 0
	for i := range len(v.JWS) {
		for _, c := range []byte{'A', 'B', 'f', '_', '.'} {
			if v.JWS[i] == c {
				continue
			}
			mut := v.JWS[:i] + string(c) + v.JWS[i+1:]
			p, err := payment.VerifyJWS(mut, payment.TokenType, keys)
			if err != nil {
				continue
			}
			accepted++
			q, rerr := joseOnly(mut, payment.TokenType, keys)
			if rerr != nil || string(p) != string(q) {
				t.Fatalf("position %d %q: fast path accepts, go-jose says %v", i, c, rerr)
			}
		}
	}
	if accepted != 0 {
		t.Errorf("%d mutated tokens accepted", accepted)
	}
	// Non-canonical base64url (a different spelling of the same last
	// signature byte) is refused: one token, one spelling.
	last := v.JWS[len(v.JWS)-1]
	idx := strings.IndexByte(base64Alphabet, last)
	alt := v.JWS[:len(v.JWS)-1] + string(base64Alphabet[idx^1])
	if _, err := payment.VerifyJWS(alt, payment.TokenType, keys); err == nil {
		t.Error("non-canonical signature spelling accepted")
	}
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
