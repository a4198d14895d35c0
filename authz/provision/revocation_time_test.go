package provision_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
)

// TestRevocationEventTimeClaims: the revocation event endpoint checks the
// event's own exp, nbf and iat (issue 10: one verification path per token
// kind, a test per claim per endpoint). An event outside its validity
// window is refused over HTTP, revokes nothing, and does not spend its
// jti: a valid event with the same id still works afterwards.
func TestRevocationEventTimeClaims(t *testing.T) {
	ctx := context.Background()
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	u := authztesting.User{Sub: "rt", Email: "rt@example.com", Verified: true}
	tr, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(o.Attest(t, "acme", u, false)))
	if err != nil {
		t.Fatal(err)
	}
	hash := authz.HashToken(tr.AccessToken).String()
	now := time.Now()
	sign := func(times map[string]any) string {
		c := map[string]any{"aud": "acme", "jti": "rev-time-1", "sub": "rt", "account_id": tr.AccountID, "token_hashes": []string{hash}}
		for k, v := range times {
			c[k] = v
		}
		s, err := o.Attester.Sign(ctx, authz.TypeRevocation, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	post := func(event string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, p.Server.URL+provision.PathRevocationEvent, strings.NewReader(event))
		req.Header.Set("Content-Type", "application/jwt")
		resp, err := p.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name  string
		times map[string]any
		want  error
	}{
		{"exp passed", map[string]any{"iat": now.Add(-10 * time.Minute).Unix(), "exp": now.Add(-2 * time.Minute).Unix()}, authz.ErrTokenExpired},
		{"nbf ahead", map[string]any{"iat": now.Unix(), "nbf": now.Add(2 * time.Minute).Unix(), "exp": now.Add(5 * time.Minute).Unix()}, authz.ErrTokenNotYetValid},
		{"iat ahead", map[string]any{"iat": now.Add(2 * time.Minute).Unix(), "exp": now.Add(6 * time.Minute).Unix()}, authz.ErrTokenNotYetValid},
	}
	for _, tc := range cases {
		ev := sign(tc.times)
		if _, err := p.Provisioner.HandleRevocation(ctx, ev); !errors.Is(err, tc.want) {
			t.Errorf("%s: HandleRevocation = %v, want %v", tc.name, err, tc.want)
		}
		if st := post(ev); st < 400 || st >= 500 {
			t.Errorf("%s: endpoint answered %d, want a 4xx", tc.name, st)
		}
		if tok, err := p.Tokens.Lookup(ctx, authz.HashToken(tr.AccessToken)); err != nil || tok.Revoked() {
			t.Fatalf("%s: after a refused event the token is %+v (%v), want live", tc.name, tok, err)
		}
	}
	// The refused events did not spend the jti.
	if st := post(sign(map[string]any{"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})); st != http.StatusOK {
		t.Fatalf("valid event with the refused events' jti: %d", st)
	}
	if tok, _ := p.Tokens.Lookup(ctx, authz.HashToken(tr.AccessToken)); !tok.Revoked() {
		t.Fatal("the valid event did not revoke the token")
	}
}

// TestTokenEndpointAttestationTimeClaims: the token endpoint refuses an
// attestation outside its exp/nbf/iat window with invalid_grant, and
// creates no account for it.
func TestTokenEndpointAttestationTimeClaims(t *testing.T) {
	ctx := context.Background()
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	now := time.Now()
	for name, times := range map[string]map[string]any{
		"exp passed": {"iat": now.Add(-10 * time.Minute).Unix(), "exp": now.Add(-2 * time.Minute).Unix()},
		"nbf ahead":  {"iat": now.Unix(), "nbf": now.Add(2 * time.Minute).Unix(), "exp": now.Add(5 * time.Minute).Unix()},
		"iat ahead":  {"iat": now.Add(2 * time.Minute).Unix(), "exp": now.Add(6 * time.Minute).Unix()},
	} {
		c := map[string]any{"sub": "late-" + strings.ReplaceAll(name, " ", "-"), "aud": "acme", "jti": "att-" + name,
			"email": "late@example.com", "email_verified": true}
		for k, v := range times {
			c[k] = v
		}
		att, err := o.Attester.Sign(ctx, authz.TypeAttestation, c)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := authztesting.PostToken(t, p, authztesting.JWTBearer(att))
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v, want 400 invalid_grant", name, resp.StatusCode, body)
		}
		if _, err := p.Accounts.FindByEmail(ctx, "late@example.com"); err == nil {
			t.Fatalf("%s: an account was created for a refused attestation", name)
		}
	}
}
