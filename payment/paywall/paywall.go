package paywall

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/payment"
)

// TokenChecker verifies a payment token locally (signature, typ, iss, aud,
// exp). *TokenVerifier implements it. Implementations must be safe for
// concurrent use.
type TokenChecker interface {
	Verify(ctx context.Context, token string) (*payment.TokenClaims, error)
}

// TokenRedeemer settles a token at the orchestrator, idempotently under
// idempotencyKey. *Redeemer implements it. Implementations must be safe
// for concurrent use.
type TokenRedeemer interface {
	Redeem(ctx context.Context, token string, actual budget.Money, idempotencyKey string) (*payment.Receipt, error)
}

// TokenReleaser gives an unredeemed token's budget hold back at the
// orchestrator (§5.2.3). *Redeemer implements it. Implementations must be
// safe for concurrent use and idempotent.
type TokenReleaser interface {
	Release(ctx context.Context, token string) error
}

// PriceFunc prices one request. It must give the same answer for the unpaid
// request and its paid retry (the paywall compares the echoed challenge
// with a fresh price); an *Error it returns is sent as is.
type PriceFunc func(r *http.Request) (budget.Money, error)

// PaywallOptions tune a Paywall. Nil means the defaults.
type PaywallOptions struct {
	// Store makes challenges single-use; default a MemoryChallengeStore
	// (enough for one instance; several instances need a shared store).
	Store ChallengeStore
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ChallengeTTL is how long a challenge stays payable (default 5 minutes).
	ChallengeTTL time.Duration
	// Retain is how long after its expiry a claimed challenge is kept so
	// that a retry with the same credential gets the same answer
	// (default 24 hours).
	Retain time.Duration
	// MaxResponseBytes bounds the response a paid handler may write: it is
	// held back until settlement (default 4 MiB). A larger response is
	// answered 500 and not charged.
	MaxResponseBytes int64
	// MaxRequestBytes bounds request bodies, which are read before the
	// handler runs to bind them with a digest (default 1 MiB).
	MaxRequestBytes int64
	// SettleTimeout bounds one redemption call; settlement is detached from
	// the client's cancellation so that a disconnect cannot strand it
	// (default 30 seconds).
	SettleTimeout time.Duration
	// Releaser gives the hold of a token back when the paid handler failed
	// (answered outside 2xx, wrote too much, or panicked): the payer's
	// budget is freed at once instead of at the token's expiry. Default:
	// the redeemer, when it implements TokenReleaser (*Redeemer does).
	Releaser TokenReleaser
	// KeepHoldOnFailure turns that release off; the hold then ends when the
	// token expires (or when OnUnsettled does something about it).
	KeepHoldOnFailure bool
	// OnUnsettled, if set, is called when a verified payment was not
	// settled because the handler failed or settlement was refused (after
	// the release above, when there is one), e.g. to log or to alert.
	OnUnsettled func(ctx context.Context, claims *payment.TokenClaims, reason error)
	// Logger receives operational messages; never credentials (default slog.Default()).
	Logger *slog.Logger
	// Sessions, if set, also offers metered sessions (§5.9) on every 402.
	Sessions *SessionOptions
}

// Paywall is the provider side of the HTTP Payment scheme with the
// agentprov method: middleware that answers unpaid requests with 402 and a
// challenge, verifies credentials, runs the handler only for verified
// payments, settles only when the handler succeeded and attaches a
// Payment-Receipt. It is safe for concurrent use.
type Paywall struct {
	realm    string
	secrets  [][]byte
	verifier TokenChecker
	redeemer TokenRedeemer
	store    ChallengeStore
	now      clock.Func
	ttl      time.Duration
	retain   time.Duration
	maxResp  int64
	maxReq   int64
	settleTO time.Duration
	onUnsett func(context.Context, *payment.TokenClaims, error)
	releaser TokenReleaser // nil: keep holds of failed calls
	log      *slog.Logger
	sess     *paywallSessions // nil: no metered sessions
}

// Format prints the Paywall without its secrets, for every fmt verb.
func (p *Paywall) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "paywall.Paywall{realm:%q secrets:%d [REDACTED]}", p.realm, len(p.secrets))
}

// MinSecretBytes is the shortest challenge secret NewPaywall accepts.
const MinSecretBytes = 32

// NewPaywall returns a Paywall for realm (the protection space, typically
// the API host). secrets key the challenge-id HMAC: the first signs new
// challenges, all verify, so a rotated-out secret stays listed until its
// challenges have expired. verifier checks tokens locally (usually a
// *TokenVerifier), redeemer settles them at the orchestrator (usually a
// *Redeemer).
func NewPaywall(realm string, secrets [][]byte, verifier TokenChecker, redeemer TokenRedeemer, opts *PaywallOptions) (*Paywall, error) {
	if realm == "" {
		return nil, errors.New("payment: paywall: realm is required")
	}
	if _, err := paywire.QuoteParam("realm", realm); err != nil {
		return nil, fmt.Errorf("payment: paywall: %w", err)
	}
	if len(secrets) == 0 {
		return nil, errors.New("payment: paywall: at least one secret is required")
	}
	for i, s := range secrets {
		if len(s) < MinSecretBytes {
			return nil, fmt.Errorf("payment: paywall: secret %d is %d bytes, need at least %d", i, len(s), MinSecretBytes)
		}
	}
	if verifier == nil || redeemer == nil {
		return nil, errors.New("payment: paywall: verifier and redeemer are required")
	}
	if opts == nil {
		opts = &PaywallOptions{}
	}
	p := &Paywall{
		realm: realm, verifier: verifier, redeemer: redeemer,
		store: opts.Store, now: opts.Now, ttl: opts.ChallengeTTL, retain: opts.Retain,
		maxResp: opts.MaxResponseBytes, maxReq: opts.MaxRequestBytes, settleTO: opts.SettleTimeout,
		onUnsett: opts.OnUnsettled, log: opts.Logger,
	}
	for _, s := range secrets {
		p.secrets = append(p.secrets, append([]byte(nil), s...))
	}
	if p.store == nil {
		p.store = NewMemoryChallengeStore(&MemoryChallengeStoreOptions{Now: opts.Now})
	}
	if p.ttl <= 0 {
		p.ttl = 5 * time.Minute
	}
	if p.retain <= 0 {
		p.retain = 24 * time.Hour
	}
	if p.maxResp <= 0 {
		p.maxResp = 4 << 20
	}
	if p.maxReq <= 0 {
		p.maxReq = 1 << 20
	}
	if p.settleTO <= 0 {
		p.settleTO = 30 * time.Second
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if opts.Sessions != nil {
		var err error
		if p.sess, err = newPaywallSessions(opts.Sessions); err != nil {
			return nil, fmt.Errorf("payment: paywall: %w", err)
		}
	}
	if !opts.KeepHoldOnFailure {
		p.releaser = opts.Releaser
		if p.releaser == nil {
			p.releaser, _ = redeemer.(TokenReleaser)
		}
	}
	return p, nil
}

// Require returns middleware charging price for every request to service
// (a service ref "provider/service_id"; the provider part is the challenge
// recipient and must be the token's audience).
func (p *Paywall) Require(service string, price budget.Money) func(http.Handler) http.Handler {
	return p.RequireFunc(service, func(*http.Request) (budget.Money, error) { return price, nil })
}

// RequireFunc is Require with a per-request price.
// An invalid service ref makes every request fail with 500 (and an error
// log) rather than charge for something that cannot be named.
func (p *Paywall) RequireFunc(service string, price PriceFunc) func(http.Handler) http.Handler {
	provider, _, err := paywire.SplitRef(service)
	return func(next http.Handler) http.Handler {
		if err != nil || price == nil {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p.log.ErrorContext(r.Context(), "payment: paywall misconfigured", "service", service, "err", err)
				problem.Write(w, http.StatusInternalServerError, "price_unavailable", "this resource is misconfigured")
			})
		}
		return &paidHandler{p: p, service: service, provider: provider, price: price, next: next}
	}
}

// Paid describes the verified payment of the request being served; the
// handler behind a Paywall reads it with PaidFromContext. A plain value.
type Paid struct {
	ChallengeID string
	Price       budget.Money
	Claims      *payment.TokenClaims
}

type paidKey struct{}

// PaidFromContext returns the payment a Paywall verified for the request
// whose context this is.
func PaidFromContext(ctx context.Context) (*Paid, bool) {
	v, ok := ctx.Value(paidKey{}).(*Paid)
	return v, ok
}

type paidHandler struct {
	p                 *Paywall
	service, provider string
	price             PriceFunc
	next              http.Handler
	metered           bool // also offers and accepts sessions (RequireMetered)
}

// reqBinding is everything a challenge is bound to besides its id.
type reqBinding struct {
	price      budget.Money
	route, idk string
	digest     string
	requestB64 string
}

const maxIdempotencyKey = 255

func (h *paidHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.p
	price, err := h.price(r)
	if err != nil {
		var pe *payment.Error
		if errors.As(err, &pe) {
			writeError(w, pe)
			return
		}
		p.log.ErrorContext(r.Context(), "payment: price function failed", "service", h.service, "err", err)
		problem.Write(w, http.StatusInternalServerError, "price_unavailable", "the price of this request could not be computed")
		return
	}
	if !paywire.HdrIsCurrency(price.Currency) || price.Amount <= 0 {
		p.log.ErrorContext(r.Context(), "payment: invalid price", "service", h.service, "price", price)
		problem.Write(w, http.StatusInternalServerError, "price_unavailable", "the price of this request is not valid")
		return
	}
	idk := r.Header.Get("Idempotency-Key")
	if len(idk) > maxIdempotencyKey {
		writeError(w, payment.ErrInvalidRequest.With(nil, "Idempotency-Key is longer than %d bytes", maxIdempotencyKey))
		return
	}
	if h.metered && p.sess != nil && h.serveSession(w, r, price) {
		return
	}
	b := reqBinding{price: price, route: r.Method + " " + r.URL.RequestURI(), idk: idk}
	// Bind the body: a credential paid for one body cannot buy another.
	if r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(io.LimitReader(r.Body, p.maxReq+1))
		_ = r.Body.Close()
		if err != nil {
			problem.Write(w, http.StatusBadRequest, "invalid_request", "request body could not be read")
			return
		}
		if int64(len(body)) > p.maxReq {
			problem.Write(w, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("request body is above %d bytes", p.maxReq))
			return
		}
		if len(body) > 0 {
			sum := sha256.Sum256(body)
			b.digest = "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	cr := payment.ChallengeRequest{
		Amount: strconv.FormatInt(price.Amount, 10), Currency: price.Currency,
		Recipient: h.provider, MethodDetails: map[string]any{"service": h.service},
	}
	if b.requestB64, err = payment.EncodeRequest(cr); err != nil {
		problem.Write(w, http.StatusInternalServerError, "price_unavailable", "the price of this request could not be encoded")
		return
	}
	if _, err := newOpaque(b.route, b.idk); err != nil {
		writeError(w, payment.ErrInvalidRequest.With(err, "request target cannot be bound"))
		return
	}

	authz := ""
	for _, v := range r.Header.Values("Authorization") {
		if len(v) >= len(payment.SchemeName) && strings.EqualFold(v[:len(payment.SchemeName)], payment.SchemeName) {
			authz = v
		}
	}
	if authz == "" {
		h.challenge(w, r, &b, payment.ErrPaymentRequired.With(nil, "this resource costs %s", price))
		return
	}
	cred, err := payment.ParseCredential(authz)
	if err != nil {
		h.challenge(w, r, &b, err)
		return
	}
	e := &cred.Challenge
	if e.Method != payment.MethodID || e.Intent != payment.IntentCharge {
		h.challenge(w, r, &b, payment.ErrMethodUnsupported.With(nil, "method %q intent %q", e.Method, e.Intent))
		return
	}
	if e.Realm != p.realm || !payment.VerifyEchoID(p.secrets, e) {
		h.challenge(w, r, &b, payment.ErrInvalidChallenge.With(nil, "challenge was not issued by this server"))
		return
	}
	if e.Request != b.requestB64 || !opaqueMatches(e.Opaque, b.route, b.idk) || e.Digest != b.digest {
		h.challenge(w, r, &b, payment.ErrInvalidChallenge.With(nil, "challenge was issued for another request, price or body"))
		return
	}
	sum := sha256.Sum256([]byte(authz))
	fp := base64.RawURLEncoding.EncodeToString(sum[:])
	token, err := cred.Token()
	if err != nil {
		h.challenge(w, r, &b, err)
		return
	}

	// A token already claimed is answered from its record: the same
	// credential gets the same outcome (even after the challenge or the
	// token expired), any other credential carrying the token is refused.
	// The lookup reads the claims unverified; only a byte-identical
	// credential, verified when it claimed, can match the fingerprint.
	if pc, err := payment.ParseTokenClaims(token); err == nil {
		if rec, err := p.store.Get(r.Context(), TokenClaimKey(pc.Issuer, pc.HoldID)); err == nil {
			h.resume(w, r, &b, cred, e.ID, fp, rec)
			return
		} else if !errors.Is(err, ErrChallengeNotFound) {
			h.storeFailed(w, r, err)
			return
		}
	}
	expires, err := time.Parse(time.RFC3339Nano, e.Expires)
	if err != nil {
		h.challenge(w, r, &b, payment.ErrInvalidChallenge.With(err, "challenge has no valid expiry"))
		return
	}
	if !p.now.Now().Before(expires) {
		h.challenge(w, r, &b, payment.ErrPaymentExpired.With(nil, "challenge expired at %s", e.Expires))
		return
	}
	claims, err := p.verifier.Verify(r.Context(), token)
	if err != nil {
		if paywire.Temporary(err) {
			// The orchestrator's keys cannot be had now: nothing is
			// decided, nothing claimed; the same credential may be sent
			// again.
			p.log.WarnContext(r.Context(), "payment: token keys unavailable, retry possible", "err", err)
			writeUnavailable(w, "the payment token cannot be checked now (the orchestrator's keys are unavailable); retry with the same credential")
			return
		}
		if errors.Is(err, payment.ErrTokenExpired) {
			h.challenge(w, r, &b, payment.ErrPaymentExpired.With(err, "payment token has expired"))
		} else {
			h.challenge(w, r, &b, payment.ErrVerificationFailed.With(err, "payment token is not valid"))
		}
		return
	}
	if err := h.checkClaims(claims, e.ID, price); err != nil {
		h.challenge(w, r, &b, err)
		return
	}
	// The claim is the token's: one token, one paid call, whichever
	// challenge it is presented on. It is kept until both the challenge and
	// the token have expired, and Retain longer.
	until := expires
	if claims.Expiry.After(until) {
		until = claims.Expiry
	}
	rec := ChallengeRecord{ID: TokenClaimKey(claims.Issuer, claims.HoldID), Fingerprint: fp, State: ChallengePending, RetainUntil: until.Add(p.retain)}
	got, claimed, err := p.store.Claim(r.Context(), rec)
	if err != nil {
		h.storeFailed(w, r, err)
		return
	}
	if !claimed {
		h.resume(w, r, &b, cred, e.ID, fp, got)
		return
	}
	h.serve(w, r, e.ID, rec, token, claims, price)
}

// TokenClaimKey is the ChallengeRecord.ID under which a Paywall claims a
// payment token: base64url(SHA-256(iss NUL jti)) after "tok:". Keying the
// claim by the token rather than by the challenge is what makes a token
// pay for at most one call (§5.7.6).
func TokenClaimKey(issuer, jti string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + jti))
	return "tok:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// opaqueNonceBytes is the entropy of the nonce in each challenge's opaque.
const opaqueNonceBytes = 16

// newOpaque returns the "opaque" parameter of a new challenge: the route
// and idempotency key it binds, and a random nonce that makes its id
// unique (§5.7.2), so that two 402s never carry the same challenge.
func newOpaque(route, idk string) (string, error) {
	var n [opaqueNonceBytes]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", err
	}
	m := map[string]string{"route": route, "nonce": paywire.HdrB64.EncodeToString(n[:])}
	if idk != "" {
		m["idk"] = idk
	}
	return paywire.JCSB64(m)
}

// opaqueMatches reports whether an echoed opaque (whose id already
// verified, so its bytes are the server's) binds this route and
// idempotency key, with a nonce and nothing else.
func opaqueMatches(opaque, route, idk string) bool {
	m, err := payment.DecodeOpaque(opaque)
	if err != nil {
		return false
	}
	want := 2
	if idk != "" {
		want = 3
	}
	gotIdk, hasIdk := m["idk"]
	return len(m) == want && m["route"] == route && hasIdk == (idk != "") && gotIdk == idk &&
		len(m["nonce"]) == paywire.HdrB64.EncodedLen(opaqueNonceBytes)
}

func (h *paidHandler) checkClaims(c *payment.TokenClaims, challengeID string, price budget.Money) error {
	if c.ChallengeID == "" {
		return payment.ErrVerificationFailed.With(nil, "token is not bound to this challenge (challenge_id is required)")
	}
	if c.ChallengeID != challengeID {
		return payment.ErrVerificationFailed.With(nil, "token is bound to another challenge")
	}
	if c.Audience != h.provider {
		return payment.ErrVerificationFailed.With(nil, "token is for provider %q", c.Audience)
	}
	if c.Service != "" && c.Service != h.service {
		return payment.ErrVerificationFailed.With(nil, "token is for service %q", c.Service)
	}
	if c.MaxAmount.Currency != price.Currency {
		return payment.ErrPaymentInsufficient.With(nil, "token is in %s, the price in %s", c.MaxAmount.Currency, price.Currency)
	}
	if c.MaxAmount.Amount < price.Amount {
		return payment.ErrPaymentInsufficient.With(nil, "token covers %s, the price is %s", c.MaxAmount, price)
	}
	return nil
}

// serve runs the handler for a freshly claimed token, withholding its
// response until settlement.
func (h *paidHandler) serve(w http.ResponseWriter, r *http.Request, challengeID string, rec ChallengeRecord, token string, claims *payment.TokenClaims, price budget.Money) {
	p := h.p
	buf := &bufferedWriter{header: http.Header{}, limit: p.maxResp}
	ctx := context.WithValue(r.Context(), paidKey{}, &Paid{ChallengeID: challengeID, Price: price, Claims: claims})
	finished := false
	defer func() {
		if finished {
			return
		}
		// The handler panicked: record a failure so that the challenge
		// does not stay pending, then let net/http handle the panic.
		rec2 := rec
		rec2.State = ChallengeDone
		rec2.Response = problemResponse(http.StatusInternalServerError, "internal_error", "the handler failed")
		_ = p.store.Update(context.WithoutCancel(r.Context()), ChallengePending, rec2)
		h.release(r.Context(), challengeID, token)
		h.unsettled(r.Context(), claims, errors.New("handler panicked"))
	}()
	// The handler does not need the credential; keeping it out of its
	// request keeps it out of whatever the handler logs or forwards.
	inner := r.WithContext(ctx)
	inner.Header = r.Header.Clone()
	inner.Header.Del("Authorization")
	for _, v := range r.Header.Values("Authorization") {
		if len(v) < len(payment.SchemeName) || !strings.EqualFold(v[:len(payment.SchemeName)], payment.SchemeName) {
			inner.Header.Add("Authorization", v)
		}
	}
	h.next.ServeHTTP(buf, inner)
	finished = true
	resp := buf.response()
	if buf.overflow {
		resp = problemResponse(http.StatusInternalServerError, "response_too_large", "the response is too large to be paid for")
	}
	if resp.Status < 200 || resp.Status > 299 {
		rec.State = ChallengeDone
		rec.Response = resp
		if err := p.store.Update(context.WithoutCancel(r.Context()), ChallengePending, rec); err != nil {
			p.log.ErrorContext(r.Context(), "payment: record handler failure", "challenge", challengeID, "err", err)
		}
		// The failure is recorded first: a retry with this credential gets
		// it back and can never reach settlement, so releasing is safe.
		h.release(r.Context(), challengeID, token)
		h.unsettled(r.Context(), claims, fmt.Errorf("handler answered %d", resp.Status))
		payment.WriteStored(w, resp)
		return
	}
	rec.State = ChallengeServed
	rec.Response = resp
	if err := p.store.Update(context.WithoutCancel(r.Context()), ChallengePending, rec); err != nil {
		// Without the served record a retry could not settle; refuse to
		// deliver rather than deliver unpaid.
		h.storeFailed(w, r, err)
		return
	}
	h.settle(w, r, challengeID, rec, token, claims, price)
}

// settle redeems the token for a served record and delivers the withheld
// response with its receipt. The redemption is keyed by the token ("402:"
// + jti): one token, one redemption, whatever the retries.
func (h *paidHandler) settle(w http.ResponseWriter, r *http.Request, challengeID string, rec ChallengeRecord, token string, claims *payment.TokenClaims, price budget.Money) {
	p := h.p
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.settleTO)
	defer cancel()
	receipt, err := p.redeemer.Redeem(ctx, token, price, "402:"+claims.HoldID)
	if err != nil && !(errors.Is(err, payment.ErrSettlementPending) && receipt != nil) {
		if settlementFinal(err) {
			final := rec
			final.State = ChallengeDone
			pe := payment.ErrVerificationFailed.With(err, "payment could not be settled")
			final.Response = problemResponse(pe.Status, pe.Code, pe.Detail)
			if uerr := p.store.Update(ctx, ChallengeServed, final); uerr != nil {
				p.log.ErrorContext(ctx, "payment: record refused settlement", "challenge", challengeID, "err", uerr)
			}
			p.log.WarnContext(ctx, "payment: settlement refused", "challenge", challengeID, "code", errCode(err))
			h.unsettled(ctx, claims, err)
			payment.WriteStored(w, final.Response)
			return
		}
		// Transient: the record stays "served"; the same credential
		// retried later settles (idempotently) and gets the response.
		p.log.WarnContext(ctx, "payment: settlement failed, retry possible", "challenge", challengeID, "err", err)
		writeUnavailable(w, "settlement is temporarily unavailable; retry with the same credential")
		return
	}
	rh := &payment.ReceiptHeader{
		Status: payment.ReceiptStatusSuccess, Method: payment.MethodID, Timestamp: receipt.RedeemedAt, Reference: receipt.HoldID,
		ChallengeID: challengeID, Amount: strconv.FormatInt(receipt.Amount.Amount, 10), Currency: receipt.Amount.Currency,
		Signed: receipt.Signed,
	}
	if rh.Timestamp.IsZero() {
		rh.Timestamp = p.now.Now()
	}
	if rh.Reference == "" {
		rh.Reference = claims.HoldID
	}
	v, ferr := payment.FormatReceiptHeader(rh)
	if ferr != nil && rh.Signed != "" {
		// A signed receipt too large for a header is left out; the
		// orchestrator keeps it.
		rh.Signed = ""
		v, ferr = payment.FormatReceiptHeader(rh)
	}
	final := rec
	final.State = ChallengeDone
	final.Response = rec.Response.Clone()
	if ferr == nil {
		final.Response.Header.Set(payment.ReceiptHeaderName, v)
	}
	final.Response.Header.Set("Cache-Control", "private")
	if err := p.store.Update(ctx, ChallengeServed, final); err != nil && !errors.Is(err, payment.ErrConflict) {
		p.log.ErrorContext(ctx, "payment: record settlement", "challenge", challengeID, "err", err)
	}
	payment.WriteStored(w, final.Response)
}

// resume answers a request whose token is already claimed. The
// fingerprint covers the whole credential, so a match also means the same
// challenge as the claim's.
func (h *paidHandler) resume(w http.ResponseWriter, r *http.Request, b *reqBinding, cred *payment.Credential, challengeID, fp string, rec ChallengeRecord) {
	if rec.Fingerprint != fp {
		h.challenge(w, r, b, payment.ErrVerificationFailed.With(nil, "payment token was already used"))
		return
	}
	switch rec.State {
	case ChallengeDone:
		payment.WriteStored(w, rec.Response)
	case ChallengeServed:
		token, err := cred.Token()
		if err != nil {
			h.challenge(w, r, b, err)
			return
		}
		claims, err := h.p.verifier.Verify(r.Context(), token)
		if err != nil {
			// Expired since: redemption decides; keep the hold id for the receipt.
			claims, _ = payment.ParseTokenClaims(token)
			if claims == nil {
				h.challenge(w, r, b, payment.ErrVerificationFailed.With(err, "payment token is not valid"))
				return
			}
		}
		h.settle(w, r, challengeID, rec, token, claims, b.price)
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, payment.ErrChallengeInFlight.With(nil, "the request paid with this credential is still being served"))
	}
}

// release gives the token's hold back after the handler failed, detached
// from the client's cancellation and bounded like a settlement. A failed
// release only costs the payer budget until the token expires, so it is
// logged, not surfaced.
func (h *paidHandler) release(ctx context.Context, challengeID, token string) {
	p := h.p
	if p.releaser == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.settleTO)
	defer cancel()
	if err := p.releaser.Release(ctx, token); err != nil {
		p.log.WarnContext(ctx, "payment: hold release failed; it ends when the token expires", "challenge", challengeID, "code", errCode(err), "err", err)
	}
}

func (h *paidHandler) unsettled(ctx context.Context, c *payment.TokenClaims, reason error) {
	if h.p.onUnsett != nil && c != nil {
		h.p.onUnsett(context.WithoutCancel(ctx), c, reason)
	}
}

func (h *paidHandler) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	h.p.log.ErrorContext(r.Context(), "payment: challenge store failed", "err", err)
	w.Header().Set("Retry-After", "1")
	writeError(w, payment.ErrStore.With(nil, "payment state is temporarily unavailable"))
}

// challenge answers 402 (400 for method-unsupported) with a fresh challenge
// for this request and a problem document naming cause.
func (h *paidHandler) challenge(w http.ResponseWriter, r *http.Request, b *reqBinding, cause error) {
	p := h.p
	opaque, err := newOpaque(b.route, b.idk)
	c := &payment.Challenge{
		Realm: p.realm, Method: payment.MethodID, Intent: payment.IntentCharge, RequestB64: b.requestB64,
		Expires: p.now.Now().Add(p.ttl).Truncate(time.Second), Digest: b.digest,
	}
	c.SetOpaqueParam(opaque)
	id := ""
	if err == nil {
		id, err = payment.ChallengeID(p.secrets[0], c)
	}
	if err == nil {
		c.ID = id
		var v string
		if v, err = payment.FormatChallenge(c); err == nil {
			w.Header().Add("WWW-Authenticate", v)
			cause = h.sessionChallenge(w, r, b, cause)
		}
	}
	if err != nil {
		p.log.ErrorContext(r.Context(), "payment: cannot issue challenge", "err", err)
		problem.Write(w, http.StatusInternalServerError, "internal_error", "a payment challenge could not be issued")
		return
	}
	var pe *payment.Error
	if !errors.As(cause, &pe) {
		pe = payment.ErrMalformedCredential.With(cause, "credential refused")
	}
	if pe.Code != payment.ErrPaymentRequired.Code {
		p.log.InfoContext(r.Context(), "payment: credential refused", "code", pe.Code, "err", cause)
	}
	writeError(w, pe)
}

// writeError writes e as a problem document; 402 and 400 from this file
// carry the draft's problem types. The detail never includes e.Err.
func writeError(w http.ResponseWriter, e *payment.Error) {
	w.Header().Set("Cache-Control", "no-store")
	problem.WriteDetails(w, &problem.Details{
		Type: hdrProblemType(e.Code), Title: http.StatusText(e.Status), Status: e.Status, Detail: e.Detail, Code: e.Code,
	})
}

func problemResponse(status int, code, detail string) *payment.StoredResponse {
	rec := &bufferedWriter{header: http.Header{}, limit: 1 << 16}
	problem.WriteDetails(rec, &problem.Details{
		Type: hdrProblemType(code), Title: http.StatusText(status), Status: status, Detail: detail, Code: code,
	})
	return rec.response()
}

// settlementFinal reports whether a redemption error is a definitive
// refusal (retrying cannot succeed) rather than a transient failure.
func settlementFinal(err error) bool {
	for _, s := range []*payment.Error{
		payment.ErrTokenInvalid, payment.ErrTokenExpired, payment.ErrTokenRevoked, payment.ErrAmountExceedsMax, payment.ErrCurrencyMismatch,
		payment.ErrInvalidAmount, payment.ErrAlreadyRedeemed, payment.ErrSettlementRefused, payment.ErrCapExceeded, payment.ErrCallCeiling,
		payment.ErrForbidden, payment.ErrNotFound, payment.ErrIdempotencyConflict, payment.ErrRailRefused, payment.ErrInvalidRequest, payment.ErrUnauthorized,
	} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func errCode(err error) string {
	var e *payment.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// bufferedWriter holds a handler's response back: until it is paid for
// (Paywall), or until it is stored for replay (Idempotent).
type bufferedWriter struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int64 // <= 0: unbounded
	overflow bool
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.limit > 0 && int64(b.body.Len()+len(p)) > b.limit {
		b.overflow = true
		return 0, payment.ErrInvalidRequest.With(nil, "response exceeds %d bytes", b.limit)
	}
	return b.body.Write(p)
}

func (b *bufferedWriter) response() *payment.StoredResponse {
	s := b.status
	if s == 0 {
		s = http.StatusOK
	}
	return &payment.StoredResponse{Status: s, Header: b.header.Clone(), Body: append([]byte(nil), b.body.Bytes()...)}
}

// writeUnavailable answers 503 settlement_unavailable with Retry-After:
// nothing was decided, and the same credential may be sent again.
func writeUnavailable(w http.ResponseWriter, detail string) {
	w.Header().Set("Retry-After", "1")
	problem.WriteDetails(w, &problem.Details{
		Type: hdrProblemType("settlement_unavailable"), Title: http.StatusText(http.StatusServiceUnavailable),
		Status: http.StatusServiceUnavailable, Code: "settlement_unavailable", Detail: detail,
	})
}
