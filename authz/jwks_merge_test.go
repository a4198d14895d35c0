package authz_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment/issuer"
)

// TestJWKSHandlerMerges: one endpoint publishes the keys of an attester and
// a payment issuer; the key they share appears once, rotation shows at
// once, private halves never, and a kid bound to two keys is refused.
func TestJWKSHandlerMerges(t *testing.T) {
	shared := authz.SigningKey{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))}
	att, err := authz.NewAttester("https://orch.example", shared, nil)
	if err != nil {
		t.Fatal(err)
	}
	ledger, _ := budget.NewLedger(nil, nil)
	iss, err := issuer.NewIssuer("https://orch.example", shared, ledger, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := authz.NewJWKSHandler([]authz.KeySource{att, iss}, &authz.JWKSHandlerOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	get := func(etag string) (*http.Response, jose.JSONWebKeySet, string) {
		req := httptest.NewRequest(http.MethodGet, "https://orch.example/.well-known/jwks.json", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		var set jose.JSONWebKeySet
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Result(), set, string(body)
	}
	resp, set, body := get("")
	if resp.StatusCode != 200 || len(set.Keys) != 1 || resp.Header.Get("Content-Type") != authz.JWKSMediaType {
		t.Fatalf("shared key: %d %d keys %s", resp.StatusCode, len(set.Keys), body)
	}
	if strings.Contains(body, `"d"`) {
		t.Fatal("private key material served")
	}
	etag := resp.Header.Get("ETag")
	if r, _, _ := get(etag); r.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", r.StatusCode)
	}
	// A new attestation key shows at once, with a new ETag.
	next, _ := authz.GenerateSigningKey("", jose.ES256)
	if err := att.AddKey(next); err != nil {
		t.Fatal(err)
	}
	resp, set, _ = get(etag)
	if resp.StatusCode != 200 || len(set.Keys) != 2 || resp.Header.Get("ETag") == etag {
		t.Fatalf("after AddKey: %d, %d keys", resp.StatusCode, len(set.Keys))
	}
	// One kid, two keys: refused.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	clash := &authz.StaticKeys{Keys: []jose.JSONWebKey{{Key: other.Public(), KeyID: att.ActiveKeyID(), Algorithm: "EdDSA", Use: "sig"}}}
	bad, _ := authz.NewJWKSHandler([]authz.KeySource{att, clash}, &authz.JWKSHandlerOptions{Logger: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	bad.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("conflicting kid served: %d %s", rec.Code, rec.Body)
	}
	if _, err := authz.NewJWKSHandler(nil, nil); err == nil {
		t.Fatal("no sources accepted")
	}
}
