package payment

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/problem"
)

// clientSessions is a Transport's metered sessions: the open ones by
// (origin, service), and which routes were last paid by which, so that a
// repeat call to a route goes out with its session credential at once,
// without a 402 round trip.
type clientSessions struct {
	payer SessionPayer
	calls int64

	mu     sync.Mutex
	open   map[string]*clientSession // origin SP service
	routes map[string]sessionRoute   // origin SP method SP path
}

type sessionRoute struct {
	key   string
	price budget.Money
}

const maxSessionRoutes = 4096

// clientSession is one open session at the payer.
type clientSession struct {
	id, token   string
	challengeID string
	echoJSON    []byte
	max         budget.Money
	deadline    time.Time
	macs        sync.Pool

	mu        sync.Mutex
	seq       uint64
	spent     int64
	confirmed bool // a call succeeded: the provider knows the session
	dead      bool
}

func newClientSessions(payer Payer, calls int) *clientSessions {
	sp, ok := payer.(SessionPayer)
	if !ok || calls < 0 {
		return nil
	}
	if calls == 0 {
		calls = 20
	}
	return &clientSessions{payer: sp, calls: int64(calls), open: map[string]*clientSession{}, routes: map[string]sessionRoute{}}
}

// authorize takes the next sequence number for a call of amount, or
// reports that the session cannot cover it.
func (s *clientSession) authorize(amount int64, now time.Time) (seq uint64, withToken, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead || !now.Before(s.deadline) || s.spent+amount > s.max.Amount {
		return 0, false, false
	}
	s.seq++
	s.spent += amount
	return s.seq, !s.confirmed, true
}

// Spent returns what the payer authorized on this session so far.
func (s *clientSession) authorized() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spent
}

func (cs *clientSessions) routeOf(origin string, req *http.Request) string {
	return origin + " " + req.Method + " " + req.URL.Path
}

// lookup returns the session last used for the request's route and its price.
func (cs *clientSessions) lookup(origin string, req *http.Request) (*clientSession, budget.Money) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	rt, ok := cs.routes[cs.routeOf(origin, req)]
	if !ok {
		return nil, budget.Money{}
	}
	return cs.open[rt.key], rt.price
}

func (cs *clientSessions) remember(origin string, req *http.Request, key string, price budget.Money) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.routes) >= maxSessionRoutes {
		clear(cs.routes)
	}
	cs.routes[cs.routeOf(origin, req)] = sessionRoute{key: key, price: price}
}

func (cs *clientSessions) forgetRoute(origin string, req *http.Request) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.routes, cs.routeOf(origin, req))
}

// drop retires s so that the next call opens a new session.
func (cs *clientSessions) drop(key string, s *clientSession) {
	s.mu.Lock()
	s.dead = true
	s.mu.Unlock()
	cs.mu.Lock()
	if cs.open[key] == s {
		delete(cs.open, key)
	}
	cs.mu.Unlock()
}

// sessionFirst sends a request whose route is known to be paid by an open
// session with that session's credential straight away. done reports that
// resp/err is the answer; otherwise resp, when non-nil, is a 402 the
// regular flow goes on with (the session is then forgotten for this
// route), and nil means the request was not sent.
func (t *Transport) sessionFirst(ctx context.Context, req *http.Request, body *replayBody, origin string) (resp *http.Response, err error, done bool) {
	s, price := t.sess.lookup(origin, req)
	if s == nil {
		return nil, nil, false
	}
	resp, err, sent := t.sessionSend(ctx, req, body, s, price, true)
	if !sent {
		return nil, nil, false
	}
	if err != nil || resp.StatusCode != http.StatusPaymentRequired {
		return resp, err, true
	}
	t.sess.forgetRoute(origin, req)
	return resp, nil, false
}

// sessionSend sends req once with a session call credential for amount.
// sent is false when the session cannot cover the call (nothing was sent).
func (t *Transport) sessionSend(ctx context.Context, req *http.Request, body *replayBody, s *clientSession, amount budget.Money, first bool) (*http.Response, error, bool) {
	seq, withToken, ok := s.authorize(amount.Amount, t.now.Now())
	if !ok {
		return nil, nil, false
	}
	call := SessionCall{ChallengeID: s.challengeID, SessionID: s.id, Seq: seq, Amount: amount.Amount, Currency: amount.Currency,
		Route: req.Method + " " + req.URL.RequestURI()}
	m := s.macs.Get().(hash.Hash)
	var sum [sha256.Size]byte
	tag := base64.RawURLEncoding.EncodeToString(sessionMAC(m, &call, sum[:0]))
	s.macs.Put(m)
	pl := SessionPayload{Session: s.id, Seq: seq, Amount: strconv.FormatInt(amount.Amount, 10), MAC: tag}
	if withToken {
		pl.Token = s.token
	}
	authz, err := formatSessionCredential(s.echoJSON, &pl)
	if err != nil {
		return nil, err, true
	}
	r := req.Clone(ctx)
	r.Header.Add("Authorization", authz)
	if r.Body, err = body.open(first); err != nil {
		return nil, err, true
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		// Not re-sent: the call may have been served, and a session call
		// is not replayable (its sequence number is single-use).
		return nil, err, true
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		s.mu.Lock()
		s.confirmed = true
		s.mu.Unlock()
	}
	return resp, nil, true
}

// pickSession returns the session challenge offered with charge challenge
// ch for the same request (price, recipient, service), if any.
func pickSession(cs []Challenge, ch *Challenge) *Challenge {
	for i := range cs {
		if cs[i].Method == MethodID && cs[i].Intent == IntentSession && cs[i].RequestB64 == ch.RequestB64 {
			return &cs[i]
		}
	}
	return nil
}

// sessionPaid pays req (already answered 402 with session challenge sc,
// checked by the caller against the origin and the ceiling) within a
// session: an open one for the same origin and service if it can cover
// the call, else a new one from the payer.
func (t *Transport) sessionPaid(ctx context.Context, req *http.Request, body *replayBody, origin, provider, service string, sc *Challenge, amount budget.Money, idk string) (*http.Response, error) {
	cs := t.sess
	key := origin + " " + service
	for attempt := 0; ; attempt++ {
		cs.mu.Lock()
		s := cs.open[key]
		cs.mu.Unlock()
		var resp *http.Response
		var err error
		sent := false
		if s != nil {
			resp, err, sent = t.sessionSend(ctx, req, body, s, amount, false)
		}
		if !sent {
			if s != nil {
				cs.drop(key, s)
			}
			if s, err = t.openSession(ctx, origin, provider, service, sc, amount, idk); err != nil {
				return nil, err
			}
			cs.mu.Lock()
			cs.open[key] = s
			cs.mu.Unlock()
			resp, err, sent = t.sessionSend(ctx, req, body, s, amount, false)
			if !sent {
				return nil, ErrPaymentRejected.With(nil, "the new session cannot cover the call")
			}
		}
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusPaymentRequired {
			if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
				cs.remember(origin, req, key, amount)
			}
			return resp, nil
		}
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		discard(resp)
		code := ""
		if pd := problem.Read(bytes.NewReader(head), int64(len(head))); pd != nil {
			code = pd.Code
		}
		if attempt >= 2 {
			return nil, ErrPaymentRejected.With(nil, "provider answered 402 to the session call: %s", code)
		}
		switch code {
		case ErrSessionUnknown.Code:
			s.mu.Lock()
			s.confirmed = false // send the token again
			s.mu.Unlock()
		case ErrSessionExhausted.Code, ErrSessionClosed.Code:
			cs.drop(key, s)
		default:
			return nil, ErrPaymentRejected.With(nil, "provider answered 402 to the session call: %s", code)
		}
		// Continue with the fresh challenge of this 402, same request.
		chs, err := ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		if err != nil {
			return nil, err
		}
		var next *Challenge
		for i := range chs {
			if chs[i].Method == MethodID && chs[i].Intent == IntentSession && chs[i].RequestB64 == sc.RequestB64 {
				next = &chs[i]
			}
		}
		if next == nil {
			return nil, ErrPaymentRejected.With(nil, "provider stopped offering a session for this call")
		}
		sc = next
	}
}

// openSession asks the payer for a new session answering sc.
func (t *Transport) openSession(ctx context.Context, origin, provider, service string, sc *Challenge, amount budget.Money, idk string) (*clientSession, error) {
	sum := sha256.Sum256([]byte(idk + "|" + sc.ID))
	g, err := t.sess.payer.OpenSession(ctx, &SessionRequest{
		PayRequest: PayRequest{Challenge: sc, Origin: origin, Provider: provider, Service: service, Amount: amount, Ceiling: t.ceiling,
			IdempotencyKey: "402s-" + base64.RawURLEncoding.EncodeToString(sum[:])},
		MaxAmount: budget.Money{Amount: amount.Amount * t.sess.calls, Currency: amount.Currency},
	})
	if err != nil {
		return nil, err
	}
	if g.SessionID == "" || g.Token == "" || len(g.Key) == 0 || g.MaxAmount.Currency != amount.Currency || g.MaxAmount.Amount < amount.Amount {
		return nil, ErrBadGateway.With(nil, "payer returned an unusable session")
	}
	e, err := sc.Echo()
	if err != nil {
		return nil, err
	}
	var j bytes.Buffer
	enc := json.NewEncoder(&j)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, ErrMalformedCredential.With(err, "encode challenge echo")
	}
	key := append([]byte(nil), g.Key...)
	s := &clientSession{id: g.SessionID, token: g.Token, challengeID: sc.ID, echoJSON: bytes.TrimRight(j.Bytes(), "\n"),
		max: g.MaxAmount, deadline: g.Expires.Add(-30 * time.Second)}
	if g.Expires.IsZero() {
		s.deadline = t.now.Now().Add(time.Minute)
	}
	s.macs.New = func() any { return hmac.New(sha256.New, key) }
	return s, nil
}

// SessionSpend reports, per open session of this Transport, what the payer
// authorized on it so far (minor units), keyed by session id: the client's
// side of a dispute (a provider redeeming more than this claims calls the
// payer never authorized).
func (t *Transport) SessionSpend() map[string]budget.Money {
	out := map[string]budget.Money{}
	if t.sess == nil {
		return out
	}
	t.sess.mu.Lock()
	defer t.sess.mu.Unlock()
	for _, s := range t.sess.open {
		out[s.id] = budget.Money{Amount: s.authorized(), Currency: s.max.Currency}
	}
	return out
}
