package issuer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

// IssuerOptions configure an Issuer. Rail is required; every other field
// has a safe default. Options are read once by NewIssuer; the functions
// and stores they carry must be safe for concurrent use.
type IssuerOptions struct {
	// Rail settles committed redemptions. Required.
	Rail Rail
	// Store keeps redemption records; default an in-memory store (state is
	// lost on restart — use payment/sqlstore in production).
	Store RedemptionStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DefaultTTL is a token's lifetime when MintRequest.TTL is zero; default 5 minutes.
	DefaultTTL time.Duration
	// MaxTTL caps MintRequest.TTL; default 1 hour.
	MaxTTL time.Duration
	// RedeemGrace is how long the budget hold outlives the token, so that
	// a redemption started just before exp can still commit; default 10 minutes.
	RedeemGrace time.Duration
	// Leeway is the clock skew allowed on exp; default DefaultLeeway, at most 60s.
	Leeway time.Duration
	// SettleTimeout bounds one Rail.Charge call; default 15 seconds.
	SettleTimeout time.Duration
	// OutboxWorkers is how many records SettlePending drives at once;
	// default 8.
	OutboxWorkers int
	// MinBackoff and MaxBackoff bound the outbox's retry delay, which
	// doubles per attempt; defaults 1 second and 5 minutes.
	MinBackoff, MaxBackoff time.Duration
	// OnFinal, if set, is called once a redemption record reaches a final
	// state or is refused by the rail (a hook to notify the provider or the
	// user). It may be called more than once for one record after a crash.
	OnFinal func(ctx context.Context, r Redemption)
	// Logger receives operational events; default slog.Default(). Tokens
	// and keys are never logged.
	Logger *slog.Logger

	// RetiredKeys are public keys of earlier signing keys (with kid and
	// alg). They stay in JWKS and keep verifying tokens and receipts signed
	// before a rotation; drop one once every token it signed has expired.
	RetiredKeys []jose.JSONWebKey

	// Authenticate identifies the provider calling the redemption endpoint;
	// RedemptionHandler refuses every request when it is nil.
	Authenticate ProviderAuthenticator
	// Idempotency stores the redemption endpoint's idempotency records;
	// default an in-memory store.
	Idempotency payment.IdempotencyStore
}

// Issuer is the orchestrator's side of payment tokens: it mints tokens
// against budget holds, redeems them exactly once (commit + settlement
// through the outbox), signs receipts, and revokes or sweeps unredeemed
// tokens. It is safe for concurrent use; all of its state lives in the
// Holds, the RedemptionStore and the Rail, so several Issuers (processes)
// may share them.
type Issuer struct {
	issuer   string
	key      payment.SigningKey
	holds    Holds
	rail     Rail
	store    RedemptionStore
	now      clock.Func
	jwks     *jose.JSONWebKeySet
	tokenSig jose.Signer
	rcptSig  jose.Signer

	defaultTTL, maxTTL, grace, leeway  time.Duration
	settleTimeout, minBackoff, maxBack time.Duration
	outboxWorkers                      int
	onFinal                            func(context.Context, Redemption)
	log                                *slog.Logger
	auth                               ProviderAuthenticator
	idem                               payment.IdempotencyStore
}

// NewIssuer returns an Issuer named issuer (the "iss" of its tokens, e.g.
// the orchestrator's URL) that signs with key and reserves through holds.
func NewIssuer(issuer string, key payment.SigningKey, holds Holds, opts *IssuerOptions) (*Issuer, error) {
	if issuer == "" {
		return nil, errors.New("payment: issuer: issuer name is required")
	}
	key, err := paywire.ResolveKey(key)
	if err != nil {
		return nil, err
	}
	if holds == nil {
		return nil, errors.New("payment: issuer: holds are required")
	}
	if opts == nil || opts.Rail == nil {
		return nil, errors.New("payment: issuer: IssuerOptions.Rail is required")
	}
	jwk, err := key.PublicJWK()
	if err != nil {
		return nil, err
	}
	keys := []jose.JSONWebKey{jwk}
	for _, k := range opts.RetiredKeys {
		if k.KeyID == "" || k.KeyID == key.KeyID || !k.Valid() {
			return nil, fmt.Errorf("payment: issuer: retired key %q: needs a distinct kid and a valid key", k.KeyID)
		}
		keys = append(keys, k.Public())
	}
	i := &Issuer{
		issuer: issuer, key: key, holds: holds, rail: opts.Rail, store: opts.Store, now: opts.Now,
		jwks:       &jose.JSONWebKeySet{Keys: keys},
		defaultTTL: paywire.OrDefault(opts.DefaultTTL, 5*time.Minute), maxTTL: paywire.OrDefault(opts.MaxTTL, time.Hour),
		grace: paywire.OrDefault(opts.RedeemGrace, 10*time.Minute), leeway: paywire.Leeway(opts.Leeway),
		settleTimeout: paywire.OrDefault(opts.SettleTimeout, 15*time.Second),
		minBackoff:    paywire.OrDefault(opts.MinBackoff, time.Second), maxBack: paywire.OrDefault(opts.MaxBackoff, 5*time.Minute),
		onFinal: opts.OnFinal, log: opts.Logger, auth: opts.Authenticate, idem: opts.Idempotency,
	}
	if i.store == nil {
		i.store = NewMemoryRedemptionStore()
	}
	i.outboxWorkers = opts.OutboxWorkers
	if i.outboxWorkers <= 0 {
		i.outboxWorkers = 8
	}
	if i.idem == nil {
		i.idem = payment.NewMemoryIdempotencyStore()
	}
	if i.log == nil {
		i.log = slog.Default()
	}
	if i.defaultTTL > i.maxTTL {
		return nil, errors.New("payment: issuer: DefaultTTL exceeds MaxTTL")
	}
	if i.tokenSig, err = paywire.SignerFor(key, payment.TokenType); err != nil {
		return nil, err
	}
	if i.rcptSig, err = paywire.SignerFor(key, payment.ReceiptType); err != nil {
		return nil, err
	}
	return i, nil
}

// Name returns the issuer name ("iss").
func (i *Issuer) Name() string { return i.issuer }

// JWKS returns the public keys that verify this Issuer's tokens and
// receipts. The caller must not modify it.
func (i *Issuer) JWKS() *jose.JSONWebKeySet { return i.jwks }

// String names the issuer without its signing key.
func (i *Issuer) String() string {
	return fmt.Sprintf("issuer.Issuer{%s kid=%q}", i.issuer, i.key.KeyID)
}

// Format prints String for every verb, so that %v, %+v and %#v of an
// Issuer never reach the private key in its fields.
func (i *Issuer) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(i.String())) }

// MintRequest asks for a payment token. A plain value.
type MintRequest struct {
	Project  string
	Provider string
	// Service is the service id, or the full service ref provider/service_id.
	Service   string
	MaxAmount budget.Money
	// IdempotencyKey makes Mint retry-safe: the same key returns the same
	// hold and token. Empty means a fresh random key.
	IdempotencyKey string
	// TTL is the token lifetime; zero means IssuerOptions.DefaultTTL.
	TTL time.Duration
	// ChallengeID optionally binds the token to an HTTP 402 challenge.
	ChallengeID string
	// CallCeiling optionally refuses amounts above a per-call ceiling.
	CallCeiling *budget.Money
}

// Minted is a freshly minted token and its claims. A plain value.
type Minted struct {
	Token  string
	Claims payment.TokenClaims
}

// Mint reserves a budget hold for req.MaxAmount and, only once the budget
// granted it, records and signs a token whose jti is the hold id. A refused
// reservation mints nothing (ErrCapExceeded, ErrCallCeiling…). If the
// process dies between the reservation and the record, the hold simply
// expires; retrying with the same IdempotencyKey resumes.
func (i *Issuer) Mint(ctx context.Context, req MintRequest) (*Minted, error) {
	ref, err := i.checkMint(&req)
	if err != nil {
		return nil, err
	}
	_, serviceID, _ := paywire.SplitRef(ref)
	key := req.IdempotencyKey
	if key == "" {
		key = randomID()
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = i.defaultTTL
	}
	hold, err := i.holds.Reserve(ctx, budget.Scope{Project: req.Project, Provider: req.Provider}, req.MaxAmount,
		"payment-token:"+key, &budget.ReserveOptions{TTL: ttl + i.leeway + i.grace, Service: serviceID, Memo: "payment token", CallCeiling: req.CallCeiling})
	if err != nil {
		return nil, fromBudget(err)
	}
	now := i.now.Now().UTC().Truncate(time.Second)
	rec := Redemption{
		HoldID: hold.ID, State: payment.StateIssued, Version: 1,
		Provider: req.Provider, Service: ref, Project: req.Project, MaxAmount: req.MaxAmount,
		IssuedAt: now, ExpiresAt: now.Add(ttl), ChallengeID: req.ChallengeID, MintKey: key,
		NextAttemptAt: now.Add(ttl + i.leeway), UpdatedAt: now,
	}
	stored, created, err := i.store.Create(ctx, rec)
	if err != nil {
		if req.IdempotencyKey == "" {
			i.releaseOrphanHold(ctx, hold.ID)
		}
		return nil, storeErr(err)
	}
	if !created && (stored.Provider != rec.Provider || stored.Service != rec.Service || stored.Project != rec.Project ||
		stored.MaxAmount != rec.MaxAmount || stored.ChallengeID != rec.ChallengeID || stored.MintKey != key) {
		return nil, payment.ErrIdempotencyConflict.With(nil, "mint key reused for a different token")
	}
	c := i.claimsOf(stored)
	tok, err := payment.SignToken(i.tokenSig, &c)
	if err != nil {
		return nil, fmt.Errorf("payment: sign token: %w", err)
	}
	return &Minted{Token: tok, Claims: c}, nil
}

// releaseOrphanHold gives back the hold of a mint whose record could not be
// stored, so that a store failure does not keep the user's budget reserved
// until the hold expires. Only for generated mint keys: a caller's key may
// be retried, and its retry must find the same hold. The hold is released
// only when the record is known to be absent; a record that was stored
// after all keeps its hold, and no token for it was handed out.
func (i *Issuer) releaseOrphanHold(ctx context.Context, holdID string) {
	ctx = context.WithoutCancel(ctx)
	if _, err := i.store.Get(ctx, holdID); !errors.Is(err, payment.ErrNotFound) {
		return
	}
	if _, err := i.holds.Release(ctx, holdID); err != nil && !holdGone(err) {
		i.log.WarnContext(ctx, "payment: releasing the hold of a failed mint", "hold", holdID, "err", err)
	}
}

func (i *Issuer) claimsOf(r Redemption) payment.TokenClaims {
	return payment.TokenClaims{
		Issuer: i.issuer, Audience: r.Provider, Subject: r.Project, Project: r.Project,
		Service: r.Service, MaxAmount: r.MaxAmount, HoldID: r.HoldID,
		IssuedAt: r.IssuedAt, Expiry: r.ExpiresAt, ChallengeID: r.ChallengeID,
	}
}

func (i *Issuer) checkMint(req *MintRequest) (string, error) {
	if !paywire.ValidProject(req.Project) {
		return "", payment.ErrInvalidRequest.With(nil, "project %q is not a project id", req.Project)
	}
	if !paywire.ValidProvider(req.Provider) {
		return "", payment.ErrInvalidRequest.With(nil, "provider %q is not a provider id", req.Provider)
	}
	ref := req.Service
	if !strings.Contains(ref, "/") {
		ref = req.Provider + "/" + ref
	}
	p, _, err := paywire.SplitRef(ref)
	if err != nil {
		return "", payment.ErrInvalidRequest.With(nil, "%v", err)
	}
	if p != req.Provider {
		return "", payment.ErrInvalidRequest.With(nil, "service %q is not offered by provider %q", ref, req.Provider)
	}
	if err := paywire.CheckMoney(req.MaxAmount); err != nil || req.MaxAmount.Amount == 0 {
		return "", payment.ErrInvalidAmount.With(err, "max amount must be positive with an ISO 4217 currency")
	}
	if req.TTL < 0 || req.TTL > i.maxTTL {
		return "", payment.ErrInvalidRequest.With(nil, "TTL must be between 0 and %s", i.maxTTL)
	}
	if len(req.IdempotencyKey) > 255 || len(req.ChallengeID) > 256 {
		return "", payment.ErrInvalidRequest.With(nil, "idempotency key or challenge id too long")
	}
	return ref, nil
}

// fromBudget maps a budget refusal to the package's errors, keeping the
// budget error as the cause (so errors.As(err, **budget.CapError) works).
func fromBudget(err error) error {
	switch {
	case errors.Is(err, budget.ErrCapExceeded):
		return payment.ErrCapExceeded.With(err, "budget refused the hold")
	case errors.Is(err, budget.ErrCallCeiling):
		return payment.ErrCallCeiling.With(err, "budget refused the hold")
	case errors.Is(err, budget.ErrCurrencyMismatch):
		return payment.ErrCurrencyMismatch.With(err, "budget currency differs")
	case errors.Is(err, budget.ErrInvalidAmount):
		return payment.ErrInvalidAmount.With(err, "budget refused the amount")
	case errors.Is(err, budget.ErrIdempotencyConflict):
		return payment.ErrIdempotencyConflict.With(err, "mint key reused for a different request")
	case errors.Is(err, budget.ErrInvalidRequest):
		return payment.ErrInvalidRequest.With(err, "budget refused the request")
	}
	return payment.ErrStore.With(err, "budget")
}

func storeErr(err error) error {
	var e *payment.Error
	if errors.As(err, &e) {
		return err
	}
	return payment.ErrStore.With(err, "redemption store")
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Revoke cancels an unredeemed token: its hold is released and any later
// redemption fails with ErrTokenRevoked. Revoking a revoked token is a
// no-op; revoking a redeemed one fails with ErrAlreadyRedeemed.
func (i *Issuer) Revoke(ctx context.Context, holdID, reason string) error {
	if reason == "" {
		reason = "revoked"
	}
	return i.revoke(ctx, holdID, reason)
}

// ReleaseReason is the Redemption.Reason of a token its provider released.
const ReleaseReason = "released by provider"

// Release is the provider-initiated early end of an unredeemed token
// (§5.2.3), without HTTP: provider (already authenticated) declares that
// it will not redeem token — typically because the paid work failed — so
// its budget hold is released now rather than when the token expires.
// The token must verify (signature, iss) and name provider as its
// audience (ErrForbidden otherwise). Releasing is idempotent: a token
// already released, revoked or swept after expiry gives nil. A token
// whose redemption has begun cannot be released: ErrAlreadyRedeemed, and
// nothing changes.
func (i *Issuer) Release(ctx context.Context, provider, token string) error {
	// An expired token may be released (§5.2.3); one not yet valid may not.
	claims, err := payment.VerifyToken(token, i.jwks, i.issuer, provider, payment.TokenTime{Now: i.now.Now(), Leeway: i.leeway})
	if err != nil {
		return err
	}
	rec, err := i.store.Get(ctx, claims.HoldID)
	if errors.Is(err, payment.ErrNotFound) {
		return payment.ErrTokenInvalid.With(nil, "unknown token")
	}
	if err != nil {
		return storeErr(err)
	}
	if rec.Provider != claims.Audience || rec.Service != claims.Service || rec.MaxAmount != claims.MaxAmount {
		return payment.ErrTokenInvalid.With(nil, "token does not match its record")
	}
	return i.revoke(ctx, claims.HoldID, ReleaseReason)
}

// revoke moves an issued record to revoked (releasing its hold) by
// compare-and-set, finishing a revocation another caller left half done.
func (i *Issuer) revoke(ctx context.Context, holdID, reason string) error {
	for {
		rec, err := i.store.Get(ctx, holdID)
		if err != nil {
			return storeErr(err)
		}
		switch rec.State {
		case payment.StateIssued:
			next := rec
			next.State, next.Reason, next.NextAttemptAt = payment.StateRevoking, reason, i.now.Now()
			if err := i.update(ctx, &next); errors.Is(err, payment.ErrConflict) {
				continue
			} else if err != nil {
				return err
			}
			_, err := i.advance(ctx, next, true)
			return err
		case payment.StateRevoking:
			_, err := i.advance(ctx, rec, false)
			return err
		case payment.StateRevoked:
			return nil
		default:
			return payment.ErrAlreadyRedeemed.With(nil, "hold %s is %s", holdID, rec.State)
		}
	}
}

// Redemption returns the record of holdID (ErrNotFound if none).
func (i *Issuer) Redemption(ctx context.Context, holdID string) (Redemption, error) {
	r, err := i.store.Get(ctx, holdID)
	if err != nil {
		return Redemption{}, storeErr(err)
	}
	return r, nil
}
