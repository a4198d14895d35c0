package payment

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// TransportOptions tune a Transport. Nil means the defaults.
type TransportOptions struct {
	// Base performs the HTTP exchanges (default http.DefaultTransport).
	Base http.RoundTripper
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxBufferedBody bounds how much of a request body without GetBody is
	// buffered so that it can be replayed after a 402 (default 1 MiB). A
	// larger body is sent once and a 402 for it fails with
	// ErrBodyNotReplayable, before any payment.
	MaxBufferedBody int64
	// MaxReplays bounds how often the same credential is re-sent after a
	// transport error, an attempt timeout, a 409 challenge_in_flight or a
	// 503 settlement_unavailable (default 2). Re-sending the same
	// credential never pays again.
	MaxReplays int
	// AttemptTimeout, if positive, bounds each paid attempt; on expiry the
	// same credential is re-sent (within MaxReplays).
	AttemptTimeout time.Duration
	// MaxRetryAfter caps how long a Retry-After is honoured (default 5 s).
	MaxRetryAfter time.Duration
	// RememberCredentials is how many credentials are kept for requests
	// that carry an Idempotency-Key, so that the caller repeating such a
	// request after a timeout re-sends the credential it already paid for
	// instead of paying again (default 1024; negative disables).
	RememberCredentials int
	// SessionCalls is how many calls a metered session (§5.9) is opened
	// for, as a multiple of the first call's price (default 20). Sessions
	// are used when the payer is a SessionPayer and the provider offers
	// them; negative turns them off.
	SessionCalls int
	// Logger receives operational messages; never credentials (default slog.Default()).
	Logger *slog.Logger
}

// Transport is the client side of the HTTP Payment scheme: an
// http.RoundTripper that answers a 402 carrying an agentprov challenge by
// obtaining a token from its Payer and retrying the request once with the
// credential. A 402 without such a challenge (another method, another
// 402 protocol) is returned to the caller untouched; refusals to pay are
// returned as errors (*Error: ErrCallCeiling, ErrCapExceeded,
// ErrOriginNotAllowed, ErrBodyNotReplayable, ErrPaymentRejected…). It never mutates the caller's request, checks that the
// challenge comes from an origin it pays and names that origin's provider,
// refuses amounts above its per-call ceiling before any payment, sends a
// stable Idempotency-Key, and never pays twice for one logical request:
// retries re-send the same credential. Safe for concurrent use.
type Transport struct {
	base       http.RoundTripper
	payer      Payer
	origins    map[string]string
	ceiling    budget.Money
	now        clock.Func
	maxBody    int64
	maxReplays int
	attemptTO  time.Duration
	maxWait    time.Duration
	log        *slog.Logger

	remember int
	mu       sync.Mutex
	creds    map[string]rememberedCred

	sess *clientSessions // nil: no metered sessions
}

// Format prints the Transport without the credentials it remembers, for
// every fmt verb.
func (t *Transport) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "payment.Transport{origins:%d ceiling:%s}", len(t.origins), t.ceiling)
}

type rememberedCred struct {
	authz   string
	expires time.Time
}

// NewTransport returns a Transport paying through payer. origins maps each
// origin the client is willing to pay ("https://api.example.com", default
// ports omitted) to the provider id that owns it; a challenge from another
// origin, or naming another recipient, is refused. maxPerCall is the
// per-call ceiling: a challenge above it (or in another currency) is
// refused with ErrCallCeiling before anything is paid.
func NewTransport(payer Payer, origins map[string]string, maxPerCall budget.Money, opts *TransportOptions) (*Transport, error) {
	if payer == nil {
		return nil, errors.New("payment: transport: payer is required")
	}
	if len(origins) == 0 {
		return nil, errors.New("payment: transport: at least one origin is required")
	}
	if !paywire.HdrIsCurrency(maxPerCall.Currency) || maxPerCall.Amount <= 0 {
		return nil, errors.New("payment: transport: per-call ceiling must be positive with an ISO 4217 currency")
	}
	if opts == nil {
		opts = &TransportOptions{}
	}
	t := &Transport{
		base: opts.Base, payer: payer, origins: map[string]string{}, ceiling: maxPerCall, now: opts.Now,
		maxBody: opts.MaxBufferedBody, maxReplays: opts.MaxReplays, attemptTO: opts.AttemptTimeout,
		maxWait: opts.MaxRetryAfter, log: opts.Logger, remember: opts.RememberCredentials,
		creds: map[string]rememberedCred{},
	}
	for o, p := range origins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("payment: transport: %q is not an origin", o)
		}
		// A Payment credential is a bearer instrument: never pay an origin
		// that would carry it in clear text.
		if _, err := safehttp.CheckURL(o); err != nil {
			return nil, fmt.Errorf("payment: transport: origin: %w", err)
		}
		if p == "" {
			return nil, fmt.Errorf("payment: transport: origin %q has no provider id", o)
		}
		t.origins[originOf(u)] = p
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.maxBody <= 0 {
		t.maxBody = 1 << 20
	}
	if t.maxReplays <= 0 {
		t.maxReplays = 2
	}
	if t.maxWait <= 0 {
		t.maxWait = 5 * time.Second
	}
	if t.remember == 0 {
		t.remember = 1024
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.sess = newClientSessions(payer, opts.SessionCalls)
	return t, nil
}

// originOf is scheme://host[:port] in lower case, default ports omitted.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	return scheme + "://" + host
}

// replayBody yields the request body afresh for every attempt.
type replayBody struct {
	get        func() (io.ReadCloser, error)
	buffered   []byte
	streamed   io.ReadCloser // first attempt only, when the body was too large
	replayable bool
}

func (b *replayBody) open(first bool) (io.ReadCloser, error) {
	switch {
	case b == nil:
		return nil, nil
	case b.get != nil:
		return b.get()
	case b.streamed != nil:
		if !first {
			return nil, ErrBodyNotReplayable.With(nil, "request body is larger than the replay buffer")
		}
		return b.streamed, nil
	default:
		return io.NopCloser(bytes.NewReader(b.buffered)), nil
	}
}

func (t *Transport) prepareBody(req *http.Request) (*replayBody, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		// The first attempt consumes req.Body as the caller handed it.
		first := true
		return &replayBody{replayable: true, get: func() (io.ReadCloser, error) {
			if first {
				first = false
				return req.Body, nil
			}
			return req.GetBody()
		}}, nil
	}
	head, err := io.ReadAll(io.LimitReader(req.Body, t.maxBody+1))
	if err != nil {
		_ = req.Body.Close()
		return nil, err
	}
	if int64(len(head)) <= t.maxBody {
		_ = req.Body.Close()
		return &replayBody{buffered: head, replayable: true}, nil
	}
	return &replayBody{streamed: struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), req.Body), req.Body}}, nil
}

func newLogicalKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body, err := t.prepareBody(req)
	if err != nil {
		return nil, err
	}
	origin := originOf(req.URL)
	idk := req.Header.Get("Idempotency-Key")
	callerKey := idk != ""
	if !callerKey {
		idk = newLogicalKey()
	}
	memKey := origin + " " + req.Method + " " + req.URL.RequestURI() + " " + idk
	if callerKey && t.remember > 0 {
		// A repeat of a logical request already paid for re-sends the
		// credential it paid with: the provider replays, nobody pays twice.
		if authz, ok := t.recall(memKey); ok {
			return t.paidAttempts(ctx, req, body, idk, authz, memKey, true)
		}
	}
	var resp *http.Response
	if t.sess != nil {
		// A route an open session paid before is paid again at once.
		var done bool
		if resp, err, done = t.sessionFirst(ctx, req, body, origin); done {
			return resp, err
		}
	}
	if resp == nil {
		first := req.Clone(ctx)
		first.Header.Set("Idempotency-Key", idk)
		if first.Body, err = body.open(true); err != nil {
			return nil, err
		}
		resp, err = t.base.RoundTrip(first)
	}
	if err != nil || resp.StatusCode != http.StatusPaymentRequired {
		return resp, err
	}
	challenges, perr := ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if errors.Is(perr, ErrNoChallenge) {
		// Not the Payment scheme (another 402 protocol): not ours to
		// answer, the caller gets the response untouched.
		return resp, nil
	}
	var ch *Challenge
	if perr == nil {
		if ch = t.pick(challenges); ch == nil {
			return resp, nil // no agentprov challenge: likewise
		}
	}
	discard(resp)
	if perr != nil {
		return nil, perr
	}
	provider, ok := t.origins[origin]
	if !ok {
		return nil, ErrOriginNotAllowed.With(nil, "origin %s is not one this client pays", origin)
	}
	service := ch.Request.Service()
	if ch.Request.Recipient != provider || !strings.HasPrefix(service, provider+"/") {
		return nil, ErrOriginNotAllowed.With(nil, "origin %s belongs to %q but the challenge asks payment for %q (%q)", origin, provider, ch.Request.Recipient, service)
	}
	amount, err := ch.Request.Money()
	if err != nil {
		return nil, err
	}
	if amount.Currency != t.ceiling.Currency || amount.Amount > t.ceiling.Amount {
		return nil, ErrCallCeiling.With(nil, "challenge asks %s, the per-call ceiling is %s", amount, t.ceiling)
	}
	if !ch.Expires.IsZero() && !t.now.Now().Before(ch.Expires) {
		return nil, ErrPaymentExpired.With(nil, "challenge expired at %s", ch.ExpiresParam())
	}
	if body != nil && !body.replayable {
		return nil, ErrBodyNotReplayable.With(nil, "request body is above %d bytes and has no GetBody", t.maxBody)
	}
	if t.sess != nil {
		if sc := pickSession(challenges, ch); sc != nil {
			return t.sessionPaid(ctx, req, body, origin, provider, service, sc, amount, idk)
		}
	}
	sum := sha256.Sum256([]byte(idk + "|" + ch.ID))
	token, err := t.payer.Pay(ctx, &PayRequest{
		Challenge: ch, Origin: origin, Provider: provider, Service: service, Amount: amount, Ceiling: t.ceiling,
		IdempotencyKey: "402-" + base64.RawURLEncoding.EncodeToString(sum[:]),
	})
	if err != nil {
		return nil, err
	}
	cred, err := NewTokenCredential(ch, token)
	if err != nil {
		return nil, err
	}
	authz, err := FormatCredential(cred)
	if err != nil {
		return nil, err
	}
	if callerKey && t.remember > 0 {
		t.store(memKey, authz, ch.Expires)
	}
	return t.paidAttempts(ctx, req, body, idk, authz, memKey, false)
}

func (t *Transport) pick(cs []Challenge) *Challenge {
	for i := range cs {
		if cs[i].Method == MethodID && cs[i].Intent == IntentCharge {
			return &cs[i]
		}
	}
	return nil
}

// paidAttempts sends the request with the credential, re-sending the same
// credential (never a new payment) after transport errors, attempt
// timeouts and "in flight" answers.
func (t *Transport) paidAttempts(ctx context.Context, req *http.Request, body *replayBody, idk, authz, memKey string, recalled bool) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		r := req.Clone(ctx)
		r.Header.Set("Idempotency-Key", idk)
		// Added, not set: a caller's own Authorization (say a Bearer API
		// key) stays, and the paywall picks the Payment credential.
		r.Header.Add("Authorization", authz)
		var err error
		if r.Body, err = body.open(recalled && attempt == 0); err != nil {
			return nil, err
		}
		var cancel context.CancelFunc = func() {}
		if t.attemptTO > 0 {
			var actx context.Context
			actx, cancel = context.WithTimeout(ctx, t.attemptTO)
			r = r.WithContext(actx)
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			cancel()
			if ctx.Err() != nil || attempt >= t.maxReplays {
				return nil, err
			}
			t.log.InfoContext(ctx, "payment: paid attempt failed, re-sending the same credential", "attempt", attempt+1, "err", err)
			continue
		}
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		switch {
		case resp.StatusCode == http.StatusPaymentRequired:
			pd := problem.Read(io.LimitReader(resp.Body, 64<<10), 64<<10)
			discard(resp)
			t.forget(memKey)
			e := ErrPaymentRejected.With(nil, "provider answered 402 to the paid request")
			if pd != nil && pd.Code != "" {
				e = ErrPaymentRejected.With(nil, "provider answered 402 to the paid request: %s", pd.Code)
			}
			return nil, e
		case (resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusServiceUnavailable) &&
			resp.Header.Get("Retry-After") != "" && attempt < t.maxReplays:
			if !paywallRetryable(resp) {
				return resp, nil
			}
			wait := t.retryAfter(resp.Header.Get("Retry-After"))
			discard(resp)
			if err := sleepCtx(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		return resp, nil
	}
}

// paywallRetryable reports whether resp is the paywall asking for the
// same credential again (in flight, settlement or store unavailable), as
// opposed to the handler's own 409 or 503, which is returned as is. The
// peeked body is put back.
func paywallRetryable(resp *http.Response) bool {
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	pd := problem.Read(bytes.NewReader(head), int64(len(head)))
	if pd == nil {
		return false
	}
	switch pd.Code {
	case ErrChallengeInFlight.Code, "settlement_unavailable", ErrStore.Code:
		return true
	}
	return false
}

func (t *Transport) retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return time.Second
	}
	return min(time.Duration(n)*time.Second, t.maxWait)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// discard drains (boundedly) and closes a response body so that the
// connection can be reused.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func (t *Transport) recall(key string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.creds[key]
	if !ok {
		return "", false
	}
	return c.authz, true
}

func (t *Transport) store(key, authz string, expires time.Time) {
	// Keep the credential a day past the challenge's expiry: the provider
	// keeps its record at least that long by default.
	until := expires.Add(24 * time.Hour)
	if expires.IsZero() {
		until = t.now.Now().Add(24 * time.Hour)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.creds) >= t.remember {
		now := t.now.Now()
		for k, c := range t.creds {
			if now.After(c.expires) {
				delete(t.creds, k)
			}
		}
		for k := range t.creds {
			if len(t.creds) < t.remember {
				break
			}
			delete(t.creds, k)
		}
	}
	t.creds[key] = rememberedCred{authz: authz, expires: until}
}

func (t *Transport) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.creds, key)
}
