package issuer

import (
	"context"
	"errors"
	"strings"

	"github.com/agentprov/agentprov/payment"
)

// IssuerPayer returns a Payer that mints tokens in process with issuer for
// project: the token's maximum is the challenge amount, it is bound to the
// challenge id, the per-call ceiling is passed on, and the idempotency key
// makes a repeated Pay return the same token. The hold is reserved before
// signing, so a cap refusal mints and charges nothing. Safe for concurrent
// use.
func IssuerPayer(issuer *Issuer, project string) payment.Payer {
	return payment.PayerFunc(func(ctx context.Context, req *payment.PayRequest) (string, error) {
		if issuer == nil {
			return "", errors.New("payment: issuer payer: issuer is nil")
		}
		if req == nil || req.Challenge == nil {
			return "", payment.ErrInvalidRequest.With(nil, "pay request has no challenge")
		}
		ceiling := req.Ceiling
		service := req.Service
		if p, _, ok := strings.Cut(service, "/"); !ok || p != req.Provider {
			return "", payment.ErrInvalidRequest.With(nil, "service %q is not offered by provider %q", service, req.Provider)
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
