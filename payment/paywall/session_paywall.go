package paywall

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

// SessionOptions turn on metered sessions (§5.9) in a Paywall. A Paywall
// with sessions offers two challenges on every 402, "charge" (one token
// per call) and "session" (one token for many calls), and serves calls
// of open sessions after a local check only: no orchestrator round trip,
// no signature verification, one atomic store step. The settlement of a
// session (one redemption of the consumed total) happens when
// Paywall.SettleSessions or Paywall.CloseSessions finds it due.
type SessionOptions struct {
	// Secret is the session secret the provider shares with the
	// orchestrator (given at registration, like the redemption credential):
	// session keys are derived from it (SessionKey). At least 32 bytes.
	Secret []byte
	// Store keeps the sessions; default a MemorySessionStore, which
	// forgets them (and so what they consumed) on a restart. A provider
	// that restarts, or runs several instances, needs a durable shared
	// store such as payment/sqlstore.SessionStore.
	Store SessionStore
	// SettleWindow is how long before its token expires a session stops
	// serving calls, leaving that long for its redemption (default 1 minute).
	SettleWindow time.Duration
	// IdleTimeout makes SettleSessions settle a session unused this long
	// (default 1 minute).
	IdleTimeout time.Duration
}

// paywallSessions is a Paywall's session state: configuration and a cache
// of the immutable part of open sessions (keys, claims), so that the hot
// path touches the store once.
type paywallSessions struct {
	secret       []byte
	store        SessionStore
	window, idle time.Duration
	cache        sync.Map // session id → *liveSession
}

type liveSession struct {
	id, challengeID, service string
	max                      budget.Money
	deadline                 time.Time
	claims                   *payment.TokenClaims
	macs                     sync.Pool // hash.Hash keyed with the session key
}

func newPaywallSessions(o *SessionOptions) (*paywallSessions, error) {
	if err := paywire.CheckSessionSecret(o.Secret); err != nil {
		return nil, err
	}
	s := &paywallSessions{secret: append([]byte(nil), o.Secret...), store: o.Store, window: o.SettleWindow, idle: o.IdleTimeout}
	if s.store == nil {
		s.store = NewMemorySessionStore()
	}
	if s.window <= 0 {
		s.window = time.Minute
	}
	if s.idle <= 0 {
		s.idle = time.Minute
	}
	return s, nil
}

func (s *paywallSessions) live(rec *SessionRecord, claims *payment.TokenClaims) *liveSession {
	key := payment.SessionKey(s.secret, rec.ID)
	l := &liveSession{id: rec.ID, challengeID: rec.ChallengeID, service: rec.Service, max: rec.Max, deadline: rec.Deadline, claims: claims}
	l.macs.New = func() any { return hmac.New(sha256.New, key) }
	v, _ := s.cache.LoadOrStore(rec.ID, l)
	return v.(*liveSession)
}

// RequireMetered is Require for a metered API: its 402s offer a session
// challenge next to the charge challenge, and calls paid within a session
// are served after the local check. Without PaywallOptions.Sessions it is
// Require. Use Require for one-off purchases (a domain, a plan), where a
// session would only hold budget longer.
func (p *Paywall) RequireMetered(service string, price budget.Money) func(http.Handler) http.Handler {
	return p.RequireMeteredFunc(service, func(*http.Request) (budget.Money, error) { return price, nil })
}

// RequireMeteredFunc is RequireMetered with a per-request price. Within a
// session each call is charged its own price, which the call's
// authorization must cover.
func (p *Paywall) RequireMeteredFunc(service string, price PriceFunc) func(http.Handler) http.Handler {
	mw := p.RequireFunc(service, price)
	return func(next http.Handler) http.Handler {
		h := mw(next)
		if ph, ok := h.(*paidHandler); ok {
			ph.metered = true
		}
		return h
	}
}

type sessionCauseKey struct{}

// sessionCredentialOf returns the request's Payment credential for the
// session intent, if it carries one.
func sessionCredentialOf(r *http.Request) *payment.SessionCredential {
	for _, v := range r.Header.Values("Authorization") {
		if len(v) > len(payment.SchemeName) && strings.EqualFold(v[:len(payment.SchemeName)], payment.SchemeName) {
			if c, err := payment.ParseSessionCredential(v); err == nil && c.Challenge.Intent == payment.IntentSession {
				return c
			}
		}
	}
	return nil
}

// serveSession serves a request paid by a session call, or refuses it
// with a fresh 402. It reports false when the request carries no session
// credential (the one-shot flow then takes it).
func (h *paidHandler) serveSession(w http.ResponseWriter, r *http.Request, price budget.Money) bool {
	p := h.p
	s := p.sess
	c := sessionCredentialOf(r)
	if c == nil {
		return false
	}
	refuse := func(err error) {
		// The one-shot path issues the fresh challenges (both intents);
		// the session's failure travels as the problem's code.
		r2 := r.WithContext(context.WithValue(r.Context(), sessionCauseKey{}, err))
		r2.Header = r.Header.Clone()
		r2.Header.Del("Authorization")
		h.ServeHTTP(w, r2)
	}
	e, pl := &c.Challenge, &c.Payload
	if e.Method != payment.MethodID || e.Realm != p.realm {
		refuse(payment.ErrInvalidChallenge.With(nil, "challenge was not issued by this server"))
		return true
	}
	amount, err := strconv.ParseInt(pl.Amount, 10, 64)
	if err != nil || amount <= 0 {
		refuse(payment.ErrMalformedCredential.With(nil, "session call amount is not a positive integer"))
		return true
	}
	ctx := r.Context()
	var ls *liveSession
	if v, ok := s.cache.Load(pl.Session); ok {
		ls = v.(*liveSession)
	} else if ls, err = h.openSession(ctx, e, pl); err != nil {
		if paywire.Temporary(err) {
			writeUnavailable(w, "the session token cannot be checked now (the orchestrator's keys are unavailable); retry with the same credential")
			return true
		}
		refuse(err)
		return true
	}
	switch {
	case e.ID != ls.challengeID || ls.service != h.service:
		refuse(payment.ErrInvalidChallenge.With(nil, "session was opened for another challenge or service"))
		return true
	case ls.max.Currency != price.Currency:
		refuse(payment.ErrPaymentInsufficient.With(nil, "session is in %s, the price in %s", ls.max.Currency, price.Currency))
		return true
	case amount < price.Amount:
		refuse(payment.ErrPaymentInsufficient.With(nil, "call authorizes %d, the price is %d", amount, price.Amount))
		return true
	}
	call := payment.SessionCall{ChallengeID: e.ID, SessionID: ls.id, Seq: pl.Seq, Amount: amount, Currency: price.Currency, Route: r.Method + " " + r.URL.RequestURI()}
	m := ls.macs.Get().(hash.Hash)
	ok := payment.CheckSessionMAC(m, &call, pl.MAC)
	ls.macs.Put(m)
	if !ok {
		refuse(payment.ErrVerificationFailed.With(nil, "session call authorization does not verify"))
		return true
	}
	if _, err := s.store.Consume(ctx, ls.id, pl.Seq, price.Amount, p.now.Now()); err != nil {
		switch {
		case errors.Is(err, payment.ErrSessionReplay):
			writeError(w, payment.ErrSessionReplay.With(nil, "sequence number %d was already used", pl.Seq))
		case errors.Is(err, payment.ErrSessionExhausted), errors.Is(err, payment.ErrSessionClosed), errors.Is(err, payment.ErrSessionUnknown):
			s.cache.Delete(ls.id)
			refuse(err)
		default:
			h.storeFailed(w, r, err)
		}
		return true
	}
	sw := &sessionWriter{ResponseWriter: w, p: p, id: ls.id, challengeID: e.ID, price: price}
	finished := false
	defer func() {
		// A handler that failed (non-2xx or panic) is not paid for.
		refund := !finished || !sw.paid()
		if err := s.store.Finish(context.WithoutCancel(ctx), ls.id, price.Amount, refund); err != nil {
			p.log.ErrorContext(ctx, "payment: session call not finished", "session", ls.id, "err", err)
		}
	}()
	inner := r.WithContext(context.WithValue(ctx, paidKey{}, &Paid{ChallengeID: e.ID, Price: price, Claims: ls.claims}))
	inner.Header = r.Header.Clone()
	inner.Header.Del("Authorization")
	for _, v := range r.Header.Values("Authorization") {
		if len(v) < len(payment.SchemeName) || !strings.EqualFold(v[:len(payment.SchemeName)], payment.SchemeName) {
			inner.Header.Add("Authorization", v)
		}
	}
	h.next.ServeHTTP(sw, inner)
	finished = true
	return true
}

// openSession verifies a session token the first time this instance sees
// the session, and opens it in the store (or finds it there).
func (h *paidHandler) openSession(ctx context.Context, e *payment.ChallengeEcho, pl *payment.SessionPayload) (*liveSession, error) {
	p := h.p
	s := p.sess
	if rec, err := s.store.Get(ctx, pl.Session); err == nil {
		claims, _ := payment.ParseTokenClaims(rec.Token) // verified when it was opened
		return s.live(&rec, claims), nil
	} else if !errors.Is(err, payment.ErrSessionUnknown) {
		return nil, payment.ErrStore.With(err, "session store")
	}
	if pl.Token == "" {
		return nil, payment.ErrSessionUnknown.With(nil, "session %q is not open here; send its token", pl.Session)
	}
	if !payment.VerifyEchoID(p.secrets, e) {
		return nil, payment.ErrInvalidChallenge.With(nil, "challenge was not issued by this server")
	}
	expires, err := time.Parse(time.RFC3339Nano, e.Expires)
	if err != nil {
		return nil, payment.ErrInvalidChallenge.With(err, "challenge has no valid expiry")
	}
	now := p.now.Now()
	if !now.Before(expires) {
		return nil, payment.ErrPaymentExpired.With(nil, "session challenge expired at %s", e.Expires)
	}
	claims, err := p.verifier.Verify(ctx, pl.Token)
	if err != nil {
		return nil, payment.ErrVerificationFailed.With(err, "session token is not valid")
	}
	switch {
	case claims.HoldID != pl.Session:
		return nil, payment.ErrVerificationFailed.With(nil, "session token is for another session")
	case claims.ChallengeID != e.ID:
		return nil, payment.ErrVerificationFailed.With(nil, "session token is bound to another challenge")
	case claims.Audience != h.provider || claims.Service != h.service:
		return nil, payment.ErrVerificationFailed.With(nil, "session token is for %q", claims.Service)
	}
	deadline := claims.Expiry.Add(-s.window)
	if !now.Before(deadline) {
		return nil, payment.ErrSessionClosed.With(nil, "session token expires too soon to be settled")
	}
	rec, err := s.store.Open(ctx, SessionRecord{
		ID: claims.HoldID, Token: pl.Token, ChallengeID: e.ID, Service: claims.Service, Max: claims.MaxAmount,
		Deadline: deadline, Expires: claims.Expiry, LastUsed: now, OpenedAt: now,
	})
	if err != nil {
		return nil, payment.ErrStore.With(err, "session store")
	}
	return s.live(&rec, claims), nil
}

// sessionWriter attaches the Payment-Receipt of a session call to a 2xx
// answer and remembers whether the handler succeeded. It does not buffer:
// a session call is paid before it is served.
type sessionWriter struct {
	http.ResponseWriter
	p           *Paywall
	id          string
	challengeID string
	price       budget.Money
	status      int
}

func (sw *sessionWriter) WriteHeader(code int) {
	if sw.status == 0 {
		sw.status = code
		if code >= 200 && code <= 299 {
			rh := &payment.ReceiptHeader{Status: payment.ReceiptStatusSuccess, Method: payment.MethodID, Timestamp: sw.p.now.Now(), Reference: sw.id,
				ChallengeID: sw.challengeID, Amount: strconv.FormatInt(sw.price.Amount, 10), Currency: sw.price.Currency}
			if v, err := payment.FormatReceiptHeader(rh); err == nil {
				sw.ResponseWriter.Header().Set(payment.ReceiptHeaderName, v)
			}
			sw.ResponseWriter.Header().Set("Cache-Control", "private")
		}
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *sessionWriter) Write(b []byte) (int, error) {
	if sw.status == 0 {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.ResponseWriter.Write(b)
}

func (sw *sessionWriter) paid() bool {
	return sw.status == 0 || sw.status >= 200 && sw.status <= 299
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (sw *sessionWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// sessionChallenge adds the session challenge next to a charge challenge
// and returns the cause the 402 should name: the session failure that led
// here, if any.
func (h *paidHandler) sessionChallenge(w http.ResponseWriter, r *http.Request, b *reqBinding, cause error) error {
	p := h.p
	if p.sess == nil || !h.metered {
		return cause
	}
	if c, ok := r.Context().Value(sessionCauseKey{}).(error); ok {
		cause = c
	}
	var n [16]byte
	_, _ = rand.Read(n[:])
	c := &payment.Challenge{
		Realm: p.realm, Method: payment.MethodID, Intent: payment.IntentSession, RequestB64: b.requestB64,
		Expires: p.now.Now().Add(p.ttl).Truncate(time.Second), Opaque: map[string]string{"nonce": paywire.HdrB64.EncodeToString(n[:])},
	}
	id, err := payment.ChallengeID(p.secrets[0], c)
	if err == nil {
		c.ID = id
		var v string
		if v, err = payment.FormatChallenge(c); err == nil {
			w.Header().Add("WWW-Authenticate", v)
		}
	}
	if err != nil {
		p.log.ErrorContext(r.Context(), "payment: cannot issue session challenge", "err", err)
	}
	return cause
}

// SettleSessions settles the sessions that are due: closed, used up,
// idle for SessionOptions.IdleTimeout, or at their last call time. Each is
// closed (no further call is served on it) and its consumed total is
// redeemed once at the orchestrator, idempotently under "session:" + its
// id, which commits exactly that amount and releases the rest of the
// hold; a session nobody used is released. Call it periodically (a few
// times per SettleWindow) and at start-up: a session left closing by a
// crash is finished by the next call. It returns how many sessions
// reached settled and the first error met; sessions that failed
// transiently stay due.
func (p *Paywall) SettleSessions(ctx context.Context) (int, error) {
	if p.sess == nil {
		return 0, nil
	}
	now := p.now.Now()
	return p.settleDue(ctx, now, now.Add(-p.sess.idle))
}

// CloseSessions settles every open session now (at shutdown, or to stop
// accepting calls on them), except those with calls in flight, which the
// next SettleSessions finishes. Same result as SettleSessions.
func (p *Paywall) CloseSessions(ctx context.Context) (int, error) {
	if p.sess == nil {
		return 0, nil
	}
	now := p.now.Now()
	return p.settleDue(ctx, now, now.Add(time.Hour*24*365))
}

func (p *Paywall) settleDue(ctx context.Context, now, idleBefore time.Time) (int, error) {
	s := p.sess
	done := 0
	var first error
	for range 100 {
		due, err := s.store.Due(ctx, now, idleBefore, 100)
		if err != nil {
			return done, payment.ErrStore.With(err, "session store")
		}
		progress := false
		for _, rec := range due {
			settled, err := p.settleSession(ctx, rec.ID, now)
			if err != nil && first == nil {
				first = err
			}
			if settled {
				done++
				progress = true
			}
		}
		if !progress || len(due) < 100 {
			break
		}
	}
	return done, first
}

// settleSession closes one session and redeems (or releases) it.
func (p *Paywall) settleSession(ctx context.Context, id string, now time.Time) (bool, error) {
	s := p.sess
	rec, err := s.store.Close(ctx, id, now)
	if errors.Is(err, payment.ErrConflict) {
		return false, nil // calls in flight; next time
	}
	if err != nil {
		return false, payment.ErrStore.With(err, "session store")
	}
	s.cache.Delete(id)
	if rec.State == SessionSettled {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.settleTO)
	defer cancel()
	var ref string
	settled := rec.Consumed
	if rec.Consumed > 0 {
		receipt, err := p.redeemer.Redeem(ctx, rec.Token, budget.Money{Amount: rec.Consumed, Currency: rec.Max.Currency}, "session:"+rec.ID)
		switch {
		case err == nil || errors.Is(err, payment.ErrSettlementPending) && receipt != nil:
			ref = receipt.Signed
			if ref == "" {
				ref = receipt.HoldID
			}
		case settlementFinal(err):
			// The orchestrator refuses for good (typically: redeemed too
			// late). The provider loses these calls; the payer is not charged.
			p.log.ErrorContext(ctx, "payment: session settlement refused", "session", id, "consumed", rec.Consumed, "code", errCode(err))
			ref, settled = "refused:"+errCode(err), 0
			if claims, _ := payment.ParseTokenClaims(rec.Token); claims != nil {
				h := paidHandler{p: p}
				h.unsettled(ctx, claims, err)
			}
		default:
			return false, fmt.Errorf("payment: settle session %s: %w", id, err)
		}
	} else {
		ref = "released"
		if p.releaser != nil {
			if err := p.releaser.Release(ctx, rec.Token); err != nil {
				// The hold ends at the token's expiry anyway.
				p.log.WarnContext(ctx, "payment: unused session not released; its hold ends at expiry", "session", id, "code", errCode(err))
			}
		}
	}
	if err := s.store.Settle(ctx, id, settled, ref); err != nil {
		return false, payment.ErrStore.With(err, "session store")
	}
	return true, nil
}

// Session returns the provider's record of session id (the session
// token's jti); ErrSessionUnknown if there is none.
func (p *Paywall) Session(ctx context.Context, id string) (SessionRecord, error) {
	if p.sess == nil {
		return SessionRecord{}, payment.ErrSessionUnknown
	}
	return p.sess.store.Get(ctx, id)
}
