package sqlstore_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/sqlstore"
)

func TestGrantStore(t *testing.T) {
	forEachDialect(t, func(t *testing.T, op opener) {
		authztest.RunGrantStore(t, func(ctx context.Context, t *testing.T) (*authztest.GrantHarness, error) {
			open, d := op(t)
			s, err := migrated(ctx, sqlstore.NewGrantStore, open(), d)
			if err != nil {
				return nil, err
			}
			return &authztest.GrantHarness{
				Store: s,
				Reopen: func(ctx context.Context) (provision.GrantStore, error) {
					return migrated(ctx, sqlstore.NewGrantStore, open(), d)
				},
			}, nil
		})
	})
}
