package payment

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// SessionRequest asks the orchestrator to open a metered session: a
// payment token for up to MaxAmount, answering the session challenge
// PayRequest.Challenge, whose per-call price is PayRequest.Amount. A
// plain value.
type SessionRequest struct {
	PayRequest
	// MaxAmount is the most the session may consume: the size of its
	// budget hold. The orchestrator may grant less (what the caps leave),
	// never less than one call.
	MaxAmount budget.Money
	// TTL is the session token's lifetime; zero means the orchestrator's default.
	TTL time.Duration
}

// SessionGrant is an open session as the orchestrator hands it to the
// payer: the session token (for the provider), the session key (for the
// payer only: it authorizes each call; never send it anywhere), and the
// granted maximum. Its String and Format never print the token or key.
type SessionGrant struct {
	Token     string
	Key       []byte
	SessionID string // the token's jti, the orchestrator's hold id
	MaxAmount budget.Money
	Expires   time.Time
}

// String describes g without its secrets.
func (g SessionGrant) String() string {
	return "payment.SessionGrant{session:" + strconv.Quote(g.SessionID) + " max:" + g.MaxAmount.String() + " [REDACTED]}"
}

// SessionPayer is a Payer that can also open metered sessions. A Transport
// whose payer implements it pays "session" challenges with sessions and
// "charge" challenges with tokens. Implementations must be safe for
// concurrent use and idempotent under the request's IdempotencyKey.
type SessionPayer interface {
	Payer
	OpenSession(ctx context.Context, req *SessionRequest) (*SessionGrant, error)
}

// SessionPayerOptions tune IssuerSessionPayer. Nil means the defaults.
type SessionPayerOptions struct {
	// TTL is a session token's lifetime when the request names none
	// (default 10 minutes; at most the Issuer's MaxTTL).
	TTL time.Duration
}

type issuerSessionPayer struct {
	Payer
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
func IssuerSessionPayer(issuer *Issuer, project string, secrets map[string][]byte, opts *SessionPayerOptions) (SessionPayer, error) {
	if issuer == nil {
		return nil, errors.New("payment: session payer: issuer is required")
	}
	sp := &issuerSessionPayer{Payer: IssuerPayer(issuer, project), issuer: issuer, project: project, secrets: map[string][]byte{}, ttl: 10 * time.Minute}
	for p, s := range secrets {
		if err := checkSessionSecret(s); err != nil {
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
func (sp *issuerSessionPayer) OpenSession(ctx context.Context, req *SessionRequest) (*SessionGrant, error) {
	if req == nil || req.Challenge == nil || req.Challenge.Intent != IntentSession {
		return nil, ErrInvalidRequest.with(nil, "session request has no session challenge")
	}
	secret, ok := sp.secrets[req.Provider]
	if !ok {
		return nil, ErrInvalidRequest.with(nil, "no session secret for provider %q", req.Provider)
	}
	if p, _, ok := strings.Cut(req.Service, "/"); !ok || p != req.Provider {
		return nil, ErrInvalidRequest.with(nil, "service %q is not offered by provider %q", req.Service, req.Provider)
	}
	price := req.Amount
	if err := checkMoney(price); err != nil || price.Amount == 0 {
		return nil, ErrInvalidAmount.with(err, "per-call price must be positive")
	}
	if req.Ceiling.Currency != "" && (price.Currency != req.Ceiling.Currency || price.Amount > req.Ceiling.Amount) {
		return nil, ErrCallCeiling.with(nil, "per-call price %s is above the ceiling %s", price, req.Ceiling)
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
		return &SessionGrant{Token: m.Token, Key: SessionKey(secret, m.Claims.HoldID), SessionID: m.Claims.HoldID,
			MaxAmount: m.Claims.MaxAmount, Expires: m.Claims.Expiry}, nil
	}
}
