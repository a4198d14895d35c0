package sqlstore_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/sqlstore"
)

func TestTokenStore(t *testing.T) {
	forEachDialect(t, func(t *testing.T, op opener) {
		authztest.RunTokenStore(t, func(ctx context.Context, t *testing.T) (*authztest.TokenHarness, error) {
			open, d := op(t)
			s, err := migrated(ctx, sqlstore.NewTokenStore, open(), d)
			if err != nil {
				return nil, err
			}
			return &authztest.TokenHarness{
				Store: s,
				Reopen: func(ctx context.Context) (provision.TokenStore, error) {
					return migrated(ctx, sqlstore.NewTokenStore, open(), d)
				},
			}, nil
		})
	})
}
