package authz_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/internal/authztesting"
)

// A cancelled context stops the retries at once and leaves the credential.
func TestRevokerStopsOnCancel(t *testing.T) {
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	acme := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}})
	_, body := authztesting.PostToken(t, acme, authztesting.JWTBearer(o.Attest(t, "acme", authztesting.User{Sub: "c", Email: "c@example.com", Verified: true}, false)))
	storeCredential(t, o, "proj_1", "acme", tokenFromBody(body))
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()
	rv, err := vault.NewRevoker(o.Attester, o.vlt, vault.StaticTargets{"acme": {Audience: "acme", Endpoint: down.URL}}, down.Client(),
		&vault.RevokerOptions{MaxAttempts: 10, InitialBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rep, err := rv.Revoke(ctx, vault.RevokeRequest{Project: "proj_1"})
	if !errors.Is(err, vault.ErrRevocationIncomplete) {
		t.Fatalf("err = %v", err)
	}
	f := rep.Failed()
	if len(f) != 1 || f[0].Attempts != 1 || !errors.Is(f[0].Err, context.DeadlineExceeded) {
		t.Fatalf("failed = %+v", f)
	}
	if left, _ := o.vlt.List(context.Background(), "proj_1", ""); len(left) != 1 {
		t.Fatal("credential deleted after a failed revocation")
	}
	if _, err := vault.NewRevoker(nil, o.vlt, vault.StaticTargets{}, nil, nil); err == nil {
		t.Fatal("nil attester accepted")
	}
}
