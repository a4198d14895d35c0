package sqlstore_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/sqlstore"
)

func TestAccountStore(t *testing.T) {
	forEachDialect(t, func(t *testing.T, op opener) {
		authztest.RunAccountStore(t, func(ctx context.Context, t *testing.T) (*authztest.AccountHarness, error) {
			open, d := op(t)
			s, err := migrated(ctx, sqlstore.NewAccountStore, open(), d)
			if err != nil {
				return nil, err
			}
			return &authztest.AccountHarness{
				Store: s,
				Seed:  s.Seed,
				Reopen: func(ctx context.Context) (provision.AccountStore, error) {
					return migrated(ctx, sqlstore.NewAccountStore, open(), d)
				},
			}, nil
		})
	})
}
