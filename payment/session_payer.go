package payment

import (
	"context"
	"strconv"
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
