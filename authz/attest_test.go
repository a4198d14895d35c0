package authz_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/authztesting"
	"github.com/agentprov/agentprov/internal/clock"
)

// idT0 is the fixed "now" of the identity tests.
var idT0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const (
	idIssuer   = "https://orchestrator.example"
	idAudience = "neon"
)

// idEnv is an attester and a verifier wired together over a fake clock.
type idEnv struct {
	clock  *clock.Fake
	key    authz.SigningKey
	att    *authz.Attester
	ver    *authz.Verifier
	replay *authz.MemoryReplayStore
}

func newIDEnv(t testing.TB, alg jose.SignatureAlgorithm) *idEnv {
	t.Helper()
	e := &idEnv{clock: clock.NewFake(idT0)}
	var err error
	e.key, err = authz.GenerateSigningKey("k1", alg)
	if err != nil {
		t.Fatal(err)
	}
	e.att, err = authz.NewAttester(idIssuer, e.key, &authz.AttesterOptions{Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.replay = authz.NewMemoryReplayStore(&authz.MemoryReplayStoreOptions{Clock: e.clock.Now})
	e.ver = e.verifier(t, idAudience)
	return e
}

// verifier returns another verifier trusting e's attester, sharing its
// replay store and clock.
func (e *idEnv) verifier(t testing.TB, audience string) *authz.Verifier {
	t.Helper()
	v, err := authz.NewVerifier(audience,
		[]authz.TrustedIssuer{{Issuer: idIssuer, Keys: e.att.JWKS()}},
		e.replay,
		&authz.VerifierOptions{Clock: e.clock.Now, Algorithms: []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func idRequest() authz.AttestRequest {
	return authz.AttestRequest{
		Audience:      idAudience,
		Subject:       "pairwise-subject-1",
		Email:         "ada@example.com",
		EmailVerified: true,
		Name:          "Ada Lovelace",
		Actor:         &authz.Actor{Sub: "agent-7", ClientID: "claude-code"},
		Project:       "proj_1",
		Service:       "neon/postgres",
	}
}

func (e *idEnv) attest(t testing.TB, req authz.AttestRequest) string {
	t.Helper()
	tok, err := e.att.Attest(context.Background(), req)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	return tok
}

func TestAttestVerifyRoundTrip(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384} {
		t.Run(string(alg), func(t *testing.T) {
			e := newIDEnv(t, alg)
			tok := e.attest(t, idRequest())
			got, err := e.ver.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := &authz.Attestation{
				Issuer: idIssuer, Subject: "pairwise-subject-1", Audience: idAudience,
				Email: "ada@example.com", EmailVerified: true, Name: "Ada Lovelace",
				ID:       got.ID,
				IssuedAt: idT0, NotBefore: idT0, Expiry: idT0.Add(5 * time.Minute),
				Actor:   &authz.Actor{Sub: "agent-7", ClientID: "claude-code"},
				Project: "proj_1", Service: "neon/postgres",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("attestation (-want +got):\n%s", diff)
			}
			id, err := base64.RawURLEncoding.DecodeString(got.ID)
			if err != nil || len(id) != 16 {
				t.Fatalf("jti %q is not 128 random bits", got.ID)
			}
			hdr := tokenHeader(t, tok)
			if hdr["typ"] != authz.TypeAttestation || hdr["kid"] != "k1" || hdr["alg"] != string(alg) || len(hdr) != 3 {
				t.Fatalf("header = %v", hdr)
			}
			// Single use.
			_, err = e.ver.Verify(context.Background(), tok)
			authztesting.WantErr(t, err, authz.ErrTokenReplayed)
		})
	}
}

func tokenHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func tokenClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAttestTokenIDsAreUnique(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	seen := map[string]bool{}
	for range 200 {
		jti := tokenClaims(t, e.attest(t, idRequest()))["jti"].(string)
		if seen[jti] {
			t.Fatalf("jti %q issued twice", jti)
		}
		seen[jti] = true
	}
}

func TestAttestRejectsBadRequests(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	for name, mod := range map[string]func(*authz.AttestRequest){
		"no audience":                 func(r *authz.AttestRequest) { r.Audience = "" },
		"no subject":                  func(r *authz.AttestRequest) { r.Subject = "" },
		"verified without email":      func(r *authz.AttestRequest) { r.Email = "" },
		"email without @":             func(r *authz.AttestRequest) { r.Email = "ada.example.com" },
		"control char in name":        func(r *authz.AttestRequest) { r.Name = "Ada\nLovelace" },
		"invalid UTF-8 subject":       func(r *authz.AttestRequest) { r.Subject = "\xff\xfe" },
		"empty actor":                 func(r *authz.AttestRequest) { r.Actor = &authz.Actor{} },
		"bad project":                 func(r *authz.AttestRequest) { r.Project = "proj 1" },
		"service without slash":       func(r *authz.AttestRequest) { r.Service = "neon" },
		"service with upper case":     func(r *authz.AttestRequest) { r.Service = "Neon/postgres" },
		"service with two slashes":    func(r *authz.AttestRequest) { r.Service = "neon/pg/x" },
		"service of another provider": func(r *authz.AttestRequest) { r.Service = "cloudflare/dns" },
		"lifetime too long":           func(r *authz.AttestRequest) { r.Lifetime = time.Hour },
		"negative lifetime":           func(r *authz.AttestRequest) { r.Lifetime = -time.Second },
		"huge subject":                func(r *authz.AttestRequest) { r.Subject = strings.Repeat("s", 300) },
	} {
		t.Run(name, func(t *testing.T) {
			req := idRequest()
			mod(&req)
			_, err := e.att.Attest(context.Background(), req)
			authztesting.WantErr(t, err, authz.ErrInvalidRequest)
		})
	}
}

func TestAttestLifetime(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	c := tokenClaims(t, e.attest(t, idRequest()))
	if c["exp"].(float64)-c["iat"].(float64) != 300 || c["nbf"] != c["iat"] {
		t.Fatalf("default lifetime claims: iat %v nbf %v exp %v", c["iat"], c["nbf"], c["exp"])
	}
	req := idRequest()
	req.Lifetime = 90 * time.Second
	c = tokenClaims(t, e.attest(t, req))
	if c["exp"].(float64)-c["iat"].(float64) != 90 {
		t.Fatalf("lifetime override: iat %v exp %v", c["iat"], c["exp"])
	}
	if _, err := authz.NewAttester(idIssuer, e.key, &authz.AttesterOptions{Lifetime: 20 * time.Minute}); err == nil {
		t.Fatal("NewAttester accepted a lifetime above MaxLifetime")
	}
}

func TestAttestHonoursContext(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.att.Attest(ctx, idRequest()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Attest with canceled context: %v", err)
	}
}

func TestNewAttesterValidates(t *testing.T) {
	k, _ := authz.GenerateSigningKey("k", jose.EdDSA)
	if _, err := authz.NewAttester("", k, nil); err == nil {
		t.Fatal("empty issuer accepted")
	}
	if _, err := authz.NewAttester(idIssuer, authz.SigningKey{KeyID: "k", Algorithm: jose.HS256, Key: k.Key}, nil); err == nil {
		t.Fatal("HS256 key accepted")
	}
	if _, err := authz.NewAttester(idIssuer, authz.SigningKey{KeyID: "k", Algorithm: jose.ES256, Key: k.Key}, nil); err == nil {
		t.Fatal("Ed25519 key accepted for ES256")
	}
	// An empty KeyID is the key's RFC 7638 thumbprint, in the JWKS and in
	// every token header.
	a, err := authz.NewAttester(idIssuer, authz.SigningKey{Algorithm: jose.EdDSA, Key: k.Key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := authz.KeyThumbprint(k.Key)
	if err != nil || len(want) != 43 {
		t.Fatalf("thumbprint %q, %v", want, err)
	}
	if a.ActiveKeyID() != want || a.JWKS().Keys[0].KeyID != want {
		t.Fatalf("kid %q (JWKS %q), want the thumbprint %q", a.ActiveKeyID(), a.JWKS().Keys[0].KeyID, want)
	}
	if g, _ := authz.GenerateSigningKey("", jose.ES256); g.KeyID == "" || g.KeyID != mustKeyThumbprint(t, g.Key) {
		t.Fatalf("GenerateSigningKey with no kid: %q", g.KeyID)
	}
	if _, err := authz.NewAttester(idIssuer, authz.SigningKey{Algorithm: jose.EdDSA}, nil); err == nil {
		t.Fatal("key without kid or key accepted")
	}
}

func mustKeyThumbprint(t *testing.T, key any) string {
	t.Helper()
	s, err := authz.KeyThumbprint(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPairwiseSubject(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	a := authz.PairwiseSubject(secret, "user-1", "neon")
	if a != authz.PairwiseSubject(secret, "user-1", "neon") {
		t.Fatal("PairwiseSubject is not deterministic")
	}
	others := []string{
		authz.PairwiseSubject(secret, "user-1", "cloudflare"),
		authz.PairwiseSubject(secret, "user-2", "neon"),
		authz.PairwiseSubject(bytes.Repeat([]byte{8}, 32), "user-1", "neon"),
		// The separator keeps (userID, providerID) pairs apart.
		authz.PairwiseSubject(secret, "1", "neon\x00user-"),
	}
	for _, o := range others {
		if o == a {
			t.Fatalf("subjects collide: %s", o)
		}
	}
	if b, err := base64.RawURLEncoding.DecodeString(a); err != nil || len(b) != 32 {
		t.Fatalf("subject %q is not base64url of 32 bytes", a)
	}
}

func TestSignAndVerifyTyped(t *testing.T) {
	const typ = "agentprov-revocation+jwt"
	e := newIDEnv(t, jose.EdDSA)
	ctx := context.Background()
	type event struct {
		Audience string `json:"aud"`
		Subject  string `json:"sub"`
		Reason   string `json:"reason"`
	}
	tok, err := e.att.Sign(ctx, typ, event{Audience: idAudience, Subject: "s1", Reason: "offboarded"})
	if err != nil {
		t.Fatal(err)
	}
	if got := tokenHeader(t, tok)["typ"]; got != typ {
		t.Fatalf("typ = %v", got)
	}
	var got event
	if err := e.ver.VerifyTyped(ctx, tok, typ, &got); err != nil {
		t.Fatalf("VerifyTyped: %v", err)
	}
	if got.Reason != "offboarded" || got.Subject != "s1" {
		t.Fatalf("claims = %+v", got)
	}
	authztesting.WantErr(t, e.ver.VerifyTyped(ctx, tok, typ, &got), authz.ErrTokenReplayed)

	tok2, _ := e.att.Sign(ctx, typ, event{Audience: idAudience, Subject: "s2"})
	authztesting.WantErr(t, e.ver.VerifyTyped(ctx, tok2, authz.TypeAttestation, nil), authz.ErrWrongTokenType)
	_, err = e.ver.Verify(ctx, tok2)
	authztesting.WantErr(t, err, authz.ErrWrongTokenType)
	authztesting.WantErr(t, e.verifier(t, "other").VerifyTyped(ctx, tok2, typ, nil), authz.ErrWrongAudience)

	_, err = e.att.Sign(ctx, typ, map[string]any{"sub": "x"})
	authztesting.WantErr(t, err, authz.ErrInvalidRequest)
	_, err = e.att.Sign(ctx, typ, map[string]any{"aud": "neon", "iss": "https://evil.example"})
	authztesting.WantErr(t, err, authz.ErrInvalidRequest)
	_, err = e.att.Sign(ctx, typ, []int{1})
	authztesting.WantErr(t, err, authz.ErrInvalidRequest)
	_, err = e.att.Sign(ctx, "bad typ", map[string]any{"aud": "neon"})
	authztesting.WantErr(t, err, authz.ErrInvalidRequest)
	long, _ := e.att.Sign(ctx, typ, map[string]any{"aud": "neon", "exp": idT0.Add(time.Hour).Unix()})
	authztesting.WantErr(t, e.ver.VerifyTyped(ctx, long, typ, nil), authz.ErrLifetimeTooLong)
}

// TestPropAttestVerifyRoundTrip: any valid request survives Attest→Verify.
func TestPropAttestVerifyRoundTrip(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	text := rapid.StringMatching(`[A-Za-z0-9 ._@+'-]{1,40}`)
	rapid.Check(t, func(rt *rapid.T) {
		req := authz.AttestRequest{
			Audience: idAudience,
			Subject:  text.Draw(rt, "sub"),
			Name:     rapid.OneOf(rapid.Just(""), text).Draw(rt, "name"),
			Project:  rapid.OneOf(rapid.Just(""), rapid.StringMatching(`[A-Za-z0-9._-]{1,20}`)).Draw(rt, "project"),
			Service:  rapid.OneOf(rapid.Just(""), rapid.StringMatching(`neon/[a-z0-9][a-z0-9._:-]{0,10}`)).Draw(rt, "service"),
		}
		if rapid.Bool().Draw(rt, "email") {
			req.Email = rapid.StringMatching(`[a-z0-9.]{1,10}@[a-z0-9.]{1,10}`).Draw(rt, "addr")
			req.EmailVerified = rapid.Bool().Draw(rt, "verified")
		}
		if rapid.Bool().Draw(rt, "actor") {
			req.Actor = &authz.Actor{Sub: text.Draw(rt, "actsub"), ClientID: rapid.OneOf(rapid.Just(""), text).Draw(rt, "cid")}
		}
		tok, err := e.att.Attest(context.Background(), req)
		if err != nil {
			rt.Fatalf("Attest: %v", err)
		}
		got, err := e.ver.Verify(context.Background(), tok)
		if err != nil {
			rt.Fatalf("Verify: %v", err)
		}
		if got.Subject != req.Subject || got.Email != req.Email || got.EmailVerified != req.EmailVerified ||
			got.Name != req.Name || got.Project != req.Project || got.Service != req.Service ||
			!cmp.Equal(got.Actor, req.Actor) {
			rt.Fatalf("round trip changed the claims: %+v -> %+v", req, got)
		}
	})
}

// TestPropSingleByteMutationFails: changing any one byte of a token makes
// verification fail (and never panics).
func TestPropSingleByteMutationFails(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	base := []string{e.attest(t, idRequest()), e.attest(t, idRequest())}
	rapid.Check(t, func(rt *rapid.T) {
		tok := []byte(rapid.SampledFrom(base).Draw(rt, "token"))
		i := rapid.IntRange(0, len(tok)-1).Draw(rt, "pos")
		b := rapid.Byte().Filter(func(b byte) bool { return b != tok[i] }).Draw(rt, "byte")
		tok[i] = b
		// A fresh replay store: the mutation, not replay, must be what fails.
		v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, Keys: e.att.JWKS()}},
			authz.NewMemoryReplayStore(nil), &authz.VerifierOptions{Clock: e.clock.Now})
		if err != nil {
			rt.Fatal(err)
		}
		if a, err := v.Verify(context.Background(), string(tok)); err == nil {
			rt.Fatalf("mutated token verified: byte %d set to %q: %+v", i, b, a)
		}
	})
}
