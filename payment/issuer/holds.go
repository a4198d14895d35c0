package issuer

import (
	"context"

	"github.com/agentprov/agentprov/budget"
)

// Holds is the part of the budget the Issuer stands on: a hold is reserved
// before a token is minted, committed when the token is redeemed, released
// when the token expires or is revoked, and reversed when settlement is
// definitively refused. *budget.Ledger satisfies it.
//
// Implementations must be safe for concurrent use and every method must be
// idempotent: the Issuer repeats calls after crashes and lost races, and
// relies on a repeated Commit, Release or Reverse returning the first result.
type Holds interface {
	Reserve(ctx context.Context, scope budget.Scope, amount budget.Money, key string, opts *budget.ReserveOptions) (budget.Hold, error)
	Commit(ctx context.Context, holdID string, actual budget.Money) (budget.Hold, error)
	Release(ctx context.Context, holdID string) (budget.Hold, error)
	Reverse(ctx context.Context, holdID, reason string) (budget.Hold, error)
}

var _ Holds = (*budget.Ledger)(nil)
