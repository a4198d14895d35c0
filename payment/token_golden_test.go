package payment_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

var updateTokenVectors = flag.Bool("update-token-vectors", false, "rewrite testdata/token*.json")

// tokenVector is the layout of testdata/token.json and
// testdata/token_receipt.json: the signing key (a throwaway test key), the
// claims, and the exact compact JWS they produce.
type tokenVector struct {
	Comment     string          `json:"comment"`
	KeyID       string          `json:"kid"`
	Ed25519Seed string          `json:"ed25519_seed_hex"`
	JWKS        json.RawMessage `json:"jwks"`
	Header      json.RawMessage `json:"protected_header"`
	Claims      json.RawMessage `json:"claims"`
	JWS         string          `json:"jws"`
}

func goldenClaims() payment.TokenClaims {
	iat := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	return payment.TokenClaims{
		Issuer: paytest.IssuerURL, Audience: "cloudflare", Subject: "proj-1", Project: "proj-1",
		Service: "cloudflare/registrar:domain", MaxAmount: budget.USD(2000),
		HoldID: "hold_01JDEXAMPLE", IssuedAt: iat, Expiry: iat.Add(5 * time.Minute),
		ChallengeID: "ch_7Qm2",
	}
}

func goldenReceipt() payment.Receipt {
	return payment.Receipt{
		Issuer: paytest.IssuerURL, HoldID: "hold_01JDEXAMPLE", Amount: budget.USD(1299),
		Provider: "cloudflare", Service: "cloudflare/registrar:domain", Project: "proj-1",
		RedeemedAt: time.Date(2026, 11, 22, 10, 1, 30, 0, time.UTC),
	}
}

func checkVector(t *testing.T, file, typ, comment string, claims any) []byte {
	t.Helper()
	k := paytest.Key()
	s, err := paywire.SignerFor(k, typ)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := payment.SignJWT(s, claims)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", file)
	if *updateTokenVectors {
		jwk, _ := k.PublicJWK()
		set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
		cj, _ := json.Marshal(claims)
		hdr := []byte(`{"alg":"EdDSA","kid":"orch-2026","typ":"` + typ + `"}`)
		v := tokenVector{Comment: comment, KeyID: k.KeyID, Ed25519Seed: hex.EncodeToString(paytest.Seed), JWKS: set, Header: hdr, Claims: cj, JWS: jws}
		out, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-token-vectors to create)", err)
	}
	var v tokenVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.JWS != jws {
		t.Errorf("%s: signing the claims gives\n%s\nwant\n%s", file, jws, v.JWS)
	}
	want, _ := json.Marshal(claims)
	var compact bytes.Buffer
	_ = json.Compact(&compact, v.Claims)
	if !bytes.Equal(compact.Bytes(), want) {
		t.Errorf("%s: claims drifted:\n%s\nwant\n%s", file, want, compact.Bytes())
	}
	seed, _ := hex.DecodeString(v.Ed25519Seed)
	if !bytes.Equal(seed, paytest.Seed) {
		t.Error("seed drifted")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(v.JWKS, &set); err != nil {
		t.Fatal(err)
	}
	payload, err := payment.VerifyJWS(v.JWS, typ, &set)
	if err != nil {
		t.Fatalf("%s: golden JWS does not verify with its JWKS: %v", file, err)
	}
	return payload
}

func TestTokenGoldenVector(t *testing.T) {
	c := goldenClaims()
	payload := checkVector(t, "token.json", payment.TokenType,
		"payment token (§5.1) signed with a throwaway Ed25519 test key; never use this key", payment.ClaimsWire(&c))
	got, err := payment.DecodeTokenClaims(payload)
	if err != nil {
		t.Fatal(err)
	}
	if *got != c {
		t.Fatalf("decoded %+v, want %+v", *got, c)
	}
}

func TestReceiptGoldenVector(t *testing.T) {
	r := goldenReceipt()
	checkVector(t, "token_receipt.json", payment.ReceiptType,
		"redemption receipt (§5.5) signed with the same throwaway test key", payment.ReceiptWire(&r))
	raw, _ := os.ReadFile(filepath.Join("testdata", "token_receipt.json"))
	var v tokenVector
	_ = json.Unmarshal(raw, &v)
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(v.JWKS, &set)
	got, err := payment.VerifyReceipt(v.JWS, &set, paytest.IssuerURL)
	if err != nil {
		t.Fatal(err)
	}
	r.Signed = v.JWS
	if *got != r {
		t.Fatalf("VerifyReceipt = %+v, want %+v", *got, r)
	}
	if _, err := payment.VerifyReceipt(v.JWS, &set, "https://other.example"); err == nil {
		t.Fatal("receipt accepted for another issuer")
	}
	// A receipt is not a token and a token is not a receipt.
	tv, _ := os.ReadFile(filepath.Join("testdata", "token.json"))
	var tok tokenVector
	_ = json.Unmarshal(tv, &tok)
	if _, err := payment.VerifyReceipt(tok.JWS, &set, paytest.IssuerURL); err == nil {
		t.Fatal("a payment token verified as a receipt")
	}
	if _, err := payment.VerifyToken(v.JWS, &set, paytest.IssuerURL, "cloudflare", payment.TokenTime{Now: paytest.Start, Leeway: payment.DefaultLeeway}); err == nil {
		t.Fatal("a receipt verified as a payment token")
	}
}

// redemptionVector is testdata/token_redemption.json (the redemption
// endpoint's request and response bodies, §5.2.1) or
// testdata/token_release.json (the release operation's, §5.2.3).
type redemptionVector struct {
	Request  json.RawMessage `json:"request"`
	Response json.RawMessage `json:"response"`
}

func TestRedemptionGoldenVector(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "token.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenVector
	_ = json.Unmarshal(raw, &tok)
	r := goldenReceipt()
	rv, _ := os.ReadFile(filepath.Join("testdata", "token_receipt.json"))
	var rcpt tokenVector
	_ = json.Unmarshal(rv, &rcpt)
	r.Signed, r.State, r.Reference = rcpt.JWS, payment.StateSettled, "mem_1"

	req, _ := json.Marshal(payment.RedemptionRequest{Token: tok.JWS, Amount: budget.USD(1299)})
	resp, _ := json.Marshal(payment.ViewOf(r))
	v := exchangeVector(t, "token_redemption.json", req, resp)
	parsed, err := payment.ParseRedemptionRequest(v.Request)
	if err != nil || parsed.Token != tok.JWS || parsed.Amount != budget.USD(1299) {
		t.Fatalf("request vector: %+v %v", parsed, err)
	}
}

// exchangeVector keeps testdata/file, a request body and the response body
// it gets: rewritten from req and resp with -update-token-vectors, then
// read back, with an error for each body that drifted from what the code
// produces now (compared compacted). It returns the stored vector.
func exchangeVector(t *testing.T, file string, req, resp []byte) redemptionVector {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *updateTokenVectors {
		out, _ := json.MarshalIndent(redemptionVector{Request: req, Response: resp}, "", "  ")
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v redemptionVector
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2][]byte{"request": {v.Request, req}, "response": {v.Response, resp}} {
		var a, b bytes.Buffer
		_ = json.Compact(&a, pair[0])
		_ = json.Compact(&b, pair[1])
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: %s drifted:\n%s\nwant\n%s", file, name, b.Bytes(), a.Bytes())
		}
	}
	return v
}
