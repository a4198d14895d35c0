package payment

import (
	"context"

	"github.com/agentprov/agentprov/budget"
)

// PayRequest is what a Transport asks its Payer for: a payment token that
// answers Challenge. The Transport has already checked the origin and the
// per-call ceiling; the Payer (the orchestrator) enforces the caps.
type PayRequest struct {
	// Challenge is the challenge being answered; Challenge.ID should be
	// bound into the token.
	Challenge *Challenge
	// Origin is the origin (scheme://host[:port]) that sent the challenge.
	Origin string
	// Provider is the provider id the origin belongs to (and the challenge's recipient).
	Provider string
	// Service is the service ref being paid for.
	Service string
	// Amount is the challenge's price.
	Amount budget.Money
	// Ceiling is the caller's per-call ceiling, for the orchestrator to
	// enforce as well.
	Ceiling budget.Money
	// IdempotencyKey is stable for one logical request and challenge: a
	// repeated Pay with it must return the same token and hold, never a
	// second one.
	IdempotencyKey string
}

// Payer obtains payment tokens from the orchestrator. Implementations must
// be safe for concurrent use and idempotent under PayRequest.IdempotencyKey.
// Refusals should be *Error values (ErrCapExceeded, ErrCallCeiling…) so
// that the caller can branch on them.
type Payer interface {
	Pay(ctx context.Context, req *PayRequest) (token string, err error)
}

// PayerFunc adapts a function to Payer.
type PayerFunc func(ctx context.Context, req *PayRequest) (string, error)

// Pay calls f.
func (f PayerFunc) Pay(ctx context.Context, req *PayRequest) (string, error) { return f(ctx, req) }
