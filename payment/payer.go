package payment

import (
	"context"
	"errors"
	"strings"

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

// IssuerPayer returns a Payer that mints tokens in process with issuer for
// project: the token's maximum is the challenge amount, it is bound to the
// challenge id, the per-call ceiling is passed on, and the idempotency key
// makes a repeated Pay return the same token. The hold is reserved before
// signing, so a cap refusal mints and charges nothing. Safe for concurrent
// use.
func IssuerPayer(issuer *Issuer, project string) Payer {
	return PayerFunc(func(ctx context.Context, req *PayRequest) (string, error) {
		if issuer == nil {
			return "", errors.New("payment: issuer payer: issuer is nil")
		}
		if req == nil || req.Challenge == nil {
			return "", ErrInvalidRequest.with(nil, "pay request has no challenge")
		}
		ceiling := req.Ceiling
		service := req.Service
		if p, _, ok := strings.Cut(service, "/"); !ok || p != req.Provider {
			return "", ErrInvalidRequest.with(nil, "service %q is not offered by provider %q", service, req.Provider)
		}
		m, err := issuer.Mint(ctx, MintRequest{
			Project: project, Provider: req.Provider, Service: service, MaxAmount: req.Amount,
			IdempotencyKey: req.IdempotencyKey, ChallengeID: req.Challenge.ID, CallCeiling: &ceiling,
		})
		if err != nil {
			return "", err
		}
		return m.Token, nil
	})
}
