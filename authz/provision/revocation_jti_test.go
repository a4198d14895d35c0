package provision_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
)

// An event refused for its content (invalid_revocation) is refused before
// its jti is consumed: the refusal repeats as invalid_revocation, not
// token_replayed, and the id is still usable by a valid event, which
// consumes it exactly once.
func TestRevocationInvalidEventKeepsJTI(t *testing.T) {
	ctx := context.Background()
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	tr, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(o.Attest(t, "acme", authztesting.User{Sub: "jt", Email: "jt@example.com", Verified: true}, false)))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ev authz.RevocationEvent) string {
		ev.Audience, ev.ID = "acme", "rev-jti-1"
		s, err := o.Attester.Sign(ctx, authz.TypeRevocation, ev)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hash := authz.HashToken(tr.AccessToken).String()
	for name, ev := range map[string]authz.RevocationEvent{
		"no account_id":    {TokenHashes: []string{hash}},
		"malformed hash":   {AccountID: tr.AccountID, TokenHashes: []string{"zz"}},
		"subject mismatch": {AccountID: tr.AccountID, Subject: "someone-else", TokenHashes: []string{hash}},
	} {
		bad := sign(ev)
		for range 2 {
			_, err := p.Provisioner.HandleRevocation(ctx, bad)
			if !errors.Is(err, provision.ErrInvalidRevocation) {
				t.Fatalf("%s: err = %v, want invalid_revocation", name, err)
			}
		}
	}
	good := sign(authz.RevocationEvent{AccountID: tr.AccountID, Subject: "jt", TokenHashes: []string{hash}})
	if n, err := p.Provisioner.HandleRevocation(ctx, good); err != nil || n != 1 {
		t.Fatalf("valid event with the refused events' jti = %d, %v", n, err)
	}
	_, err = p.Provisioner.HandleRevocation(ctx, good)
	authztesting.WantErr(t, err, authz.ErrTokenReplayed)
}
