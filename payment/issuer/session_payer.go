package issuer

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

// SessionPayerOptions tune IssuerSessionPayer. Nil means the defaults.
type SessionPayerOptions struct {
	// TTL is a session token's lifetime when the request names none
	// (default 10 minutes; at most the Issuer's MaxTTL).
	TTL time.Duration
}

type issuerSessionPayer struct {
	payment.Payer
	issuer  *Issuer
	project string
	secrets map[string][]byte
	ttl     time.Duration
}

// IssuerSessionPayer returns a SessionPayer minting in process with issuer
// for project, like IssuerPayer, that also opens sessions: one hold of the
// session maximum (counted against the provider's caps), one token bound
// to the provider, the service, the session challenge and that maximum,
// and the session key derived from the provider's session secret. When
// the caps leave less than the requested maximum, the session is opened
// for what they leave, rounded down to whole calls; when they leave less
// than one call, ErrCapExceeded. A per-call price above the request's
// Ceiling is refused with ErrCallCeiling. secrets maps provider ids to
// the session secret registered with each (copied).
func IssuerSessionPayer(issuer *Issuer, project string, secrets map[string][]byte, opts *SessionPayerOptions) (payment.SessionPayer, error) {
	if issuer == nil {
		return nil, errors.New("payment: session payer: issuer is required")
	}
	sp := &issuerSessionPayer{Payer: IssuerPayer(issuer, project), issuer: issuer, project: project, secrets: map[string][]byte{}, ttl: 10 * time.Minute}
	for p, s := range secrets {
		if err := paywire.CheckSessionSecret(s); err != nil {
			return nil, err
		}
		sp.secrets[p] = append([]byte(nil), s...)
	}
	if opts != nil && opts.TTL > 0 {
		sp.ttl = opts.TTL
	}
	sp.ttl = min(sp.ttl, issuer.maxTTL)
	return sp, nil
}

// OpenSession implements SessionPayer.
func (sp *issuerSessionPayer) OpenSession(ctx context.Context, req *payment.SessionRequest) (*payment.SessionGrant, error) {
	if req == nil || req.Challenge == nil || req.Challenge.Intent != payment.IntentSession {
		return nil, payment.ErrInvalidRequest.With(nil, "session request has no session challenge")
	}
	secret, ok := sp.secrets[req.Provider]
	if !ok {
		return nil, payment.ErrInvalidRequest.With(nil, "no session secret for provider %q", req.Provider)
	}
	if p, _, ok := strings.Cut(req.Service, "/"); !ok || p != req.Provider {
		return nil, payment.ErrInvalidRequest.With(nil, "service %q is not offered by provider %q", req.Service, req.Provider)
	}
	price := req.Amount
	if err := paywire.CheckMoney(price); err != nil || price.Amount == 0 {
		return nil, payment.ErrInvalidAmount.With(err, "per-call price must be positive")
	}
	if req.Ceiling.Currency != "" && (price.Currency != req.Ceiling.Currency || price.Amount > req.Ceiling.Amount) {
		return nil, payment.ErrCallCeiling.With(nil, "per-call price %s is above the ceiling %s", price, req.Ceiling)
	}
	max := req.MaxAmount
	if max.Currency != price.Currency || max.Amount < price.Amount {
		max = price
	}
	max.Amount -= max.Amount % price.Amount
	ttl := req.TTL
	if ttl <= 0 {
		ttl = sp.ttl
	}
	for {
		// The per-call ceiling was checked above against each call's
		// price; the hold is for many calls, so it is exempt.
		ceiling := max
		m, err := sp.issuer.Mint(ctx, MintRequest{
			Project: sp.project, Provider: req.Provider, Service: req.Service, MaxAmount: max,
			IdempotencyKey: req.IdempotencyKey + ":" + strconv.FormatInt(max.Amount, 10),
			ChallengeID:    req.Challenge.ID, TTL: ttl, CallCeiling: &ceiling,
		})
		var ce *budget.CapError
		if errors.As(err, &ce) && ce.Limit.Currency == price.Currency {
			// Open for what the caps leave, in whole calls.
			left := ce.Limit.Amount - ce.Used
			left -= left % price.Amount
			if left >= price.Amount && left < max.Amount {
				max.Amount = left
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		return &payment.SessionGrant{Token: m.Token, Key: payment.SessionKey(secret, m.Claims.HoldID), SessionID: m.Claims.HoldID,
			MaxAmount: m.Claims.MaxAmount, Expires: m.Claims.Expiry}, nil
	}
}
