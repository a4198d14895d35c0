package budget

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Defaults applied by NewLedger to zero option fields.
const (
	// DefaultProviderCapAmount is $100.00: the default cap per provider per
	// calendar month.
	DefaultProviderCapAmount = 10000
	// DefaultTTL is how long a hold lives when ReserveOptions.TTL is zero.
	DefaultTTL = 15 * time.Minute
	// DefaultMaxTTL bounds ReserveOptions.TTL.
	DefaultMaxTTL = 7 * 24 * time.Hour
)

// defaultThresholds are the alert thresholds, in percent of a cap.
var defaultThresholds = []int{50, 80, 100}

// LedgerOptions configures a Ledger. The zero value (or nil) gives the
// protocol defaults: USD, $100 per provider per calendar month in UTC, no
// project-wide cap, no per-call ceiling, 15-minute holds, alerts at 50, 80
// and 100 % when Alerts is set.
type LedgerOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Location is the time zone in which periods roll over; nil means UTC.
	Location *time.Location
	// DefaultProviderCap is the cap per provider per Period that applies
	// when the user set none. Its currency is the Ledger's currency: every
	// amount in any other currency is refused with ErrCurrencyMismatch.
	// Zero means USD(10000), that is $100.00 (amounts are minor units).
	DefaultProviderCap Money
	// Period is the period of the default provider cap and of cap changes
	// that name none; empty means Month.
	Period Period
	// DefaultProjectCap, if set, caps the whole project per ProjectPeriod
	// (empty: Period) when the user set no project-wide cap.
	DefaultProjectCap *Money
	ProjectPeriod     Period
	// CallCeiling, if set, is the largest amount one reservation may hold
	// unless ReserveOptions.CallCeiling says otherwise.
	CallCeiling *Money
	// DefaultTTL is the hold lifetime when ReserveOptions.TTL is zero; zero
	// means 15 minutes. MaxTTL bounds every TTL; zero means 7 days.
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// Thresholds are the alert thresholds in percent (1–1000); nil means
	// 50, 80, 100.
	Thresholds []int
	// Alerts, if set, receives each threshold crossing and each overrun once
	// per counter and window, synchronously, after the operation that caused
	// it has been stored. It must not block for long.
	Alerts func(ctx context.Context, a Alert)
	// Logger receives operational events; nil means slog.Default(). Amounts and
	// ids are logged, never payment data.
	Logger *slog.Logger
}

// AlertKind distinguishes alerts.
type AlertKind string

// Alert kinds.
const (
	// AlertThreshold: spend reached Threshold percent of the cap.
	AlertThreshold AlertKind = "threshold"
	// AlertOverrun: usage billed in arrears took spend over the cap; new
	// reservations in the window are refused.
	AlertOverrun AlertKind = "overrun"
)

// Alert is a notice that a counter's spend crossed a threshold of its cap.
type Alert struct {
	Kind    AlertKind `json:"kind"`
	Counter Counter   `json:"counter"`
	// Threshold is the percentage crossed (for overruns, 100).
	Threshold int   `json:"threshold"`
	Limit     Money `json:"limit"`
	// Spent is committed plus arrears when the alert fired.
	Spent int64     `json:"spent"`
	At    time.Time `json:"at"`
}

// Ledger enforces spending caps over a Store. It holds every invariant:
// validation, currency, the per-call ceiling, which caps apply, periods,
// authorization of cap changes and alerts. It is safe for concurrent use,
// and several Ledgers may share one Store.
type Ledger struct {
	store       Store
	now         func() time.Time
	loc         *time.Location
	windows     windowCache
	currency    string
	providerCap Money
	providerPer Period
	projectCap  *Money
	projectPer  Period
	ceiling     *Money
	ttl, maxTTL time.Duration
	thresholds  []int
	alerts      func(context.Context, Alert)
	log         *slog.Logger
	idPrefix    string
	idSeq       atomic.Uint64
	storeIDs    bool // the store assigns hold ids
	storeMatch  bool // the store compares replayed requests field by field
}

// NewLedger returns a Ledger over store; a nil store means a new
// MemoryStore. Options are validated eagerly.
func NewLedger(store Store, opts *LedgerOptions) (*Ledger, error) {
	if opts == nil {
		opts = &LedgerOptions{}
	}
	if store == nil {
		store = NewMemoryStore(nil)
	}
	l := &Ledger{
		store:       store,
		now:         opts.Now,
		loc:         opts.Location,
		providerCap: opts.DefaultProviderCap,
		providerPer: opts.Period,
		ttl:         opts.DefaultTTL,
		maxTTL:      opts.MaxTTL,
		alerts:      opts.Alerts,
		log:         opts.Logger,
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.loc == nil {
		l.loc = time.UTC
	}
	l.windows.loc = l.loc
	_, l.storeIDs = store.(interface{ assignsHoldIDs() })
	_, l.storeMatch = store.(interface{ matchesRequests() })
	if l.providerCap == (Money{}) {
		l.providerCap = USD(DefaultProviderCapAmount)
	}
	if !validCurrency(l.providerCap.Currency) {
		return nil, errorf(ErrInvalidRequest, "default provider cap: currency %q is not an ISO 4217 code", l.providerCap.Currency)
	}
	if l.providerCap.Amount < 0 {
		return nil, errorf(ErrInvalidAmount, "default provider cap: must not be negative")
	}
	l.currency = l.providerCap.Currency
	if l.providerPer == "" {
		l.providerPer = Month
	}
	if !l.providerPer.Valid() {
		return nil, errorf(ErrInvalidRequest, "period %q: must be week, month or year", opts.Period)
	}
	l.projectPer = opts.ProjectPeriod
	if l.projectPer == "" {
		l.projectPer = l.providerPer
	}
	if !l.projectPer.Valid() {
		return nil, errorf(ErrInvalidRequest, "project period %q: must be week, month or year", opts.ProjectPeriod)
	}
	if opts.DefaultProjectCap != nil {
		m := *opts.DefaultProjectCap
		if err := l.checkMoney("default project cap", m, true); err != nil {
			return nil, err
		}
		l.projectCap = &m
	}
	if opts.CallCeiling != nil {
		m := *opts.CallCeiling
		if err := l.checkMoney("call ceiling", m, true); err != nil {
			return nil, err
		}
		l.ceiling = &m
	}
	if l.ttl == 0 {
		l.ttl = DefaultTTL
	}
	if l.maxTTL == 0 {
		l.maxTTL = DefaultMaxTTL
	}
	if l.ttl < 0 || l.maxTTL < 0 || l.ttl > l.maxTTL {
		return nil, errorf(ErrInvalidRequest, "ttl: default %v must be positive and at most max %v", l.ttl, l.maxTTL)
	}
	l.thresholds = defaultThresholds
	if opts.Thresholds != nil {
		for _, p := range opts.Thresholds {
			if p < 1 || p > 1000 {
				return nil, errorf(ErrInvalidRequest, "threshold %d%%: must be 1–1000", p)
			}
		}
		l.thresholds = append([]int(nil), opts.Thresholds...)
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("budget: hold id prefix: %w", err)
	}
	// 96 random bits keep ids of Ledgers sharing a store apart; a counter
	// makes them unique within one.
	l.idPrefix = "hold_" + base64.RawURLEncoding.EncodeToString(b[:]) + "."
	return l, nil
}

// Currency returns the Ledger's currency.
func (l *Ledger) Currency() string { return l.currency }

// Store returns the Ledger's store.
func (l *Ledger) Store() Store { return l.store }

// ReserveOptions refine one reservation. Nil means defaults.
type ReserveOptions struct {
	// TTL is how long the hold lives unless committed or released; zero
	// means the Ledger's default.
	TTL time.Duration
	// Service is the service id the hold pays for, e.g. "registrar:domain".
	Service string
	// Memo is a free-form note stored with the hold (at most 1024 bytes).
	Memo string
	// CallCeiling overrides the Ledger's per-call ceiling for this call.
	CallCeiling *Money
}

func (l *Ledger) checkMoney(what string, m Money, zeroOK bool) error {
	if m.Currency != l.currency {
		return &Error{Code: ErrCurrencyMismatch.Code, Status: ErrCurrencyMismatch.Status,
			Detail: fmt.Sprintf("%s: currency %q, ledger currency is %s", what, m.Currency, l.currency)}
	}
	if m.Amount < 0 || (m.Amount == 0 && !zeroOK) {
		return errorf(ErrInvalidAmount, "%s: %d must be positive", what, m.Amount)
	}
	return nil
}

// Reserve places a hold of amount on scope if every applicable cap allows it,
// in one atomic store step: the provider's caps and the project's caps in
// every period. A retry with the same idempotencyKey returns the same hold
// (whatever its state now); the same key with a different request fails with
// ErrIdempotencyConflict.
func (l *Ledger) Reserve(ctx context.Context, scope Scope, amount Money, idempotencyKey string, opts *ReserveOptions) (Hold, error) {
	var o ReserveOptions
	if opts != nil {
		o = *opts
	}
	if err := checkScope(scope); err != nil {
		return Hold{}, err
	}
	if err := checkKey(idempotencyKey); err != nil {
		return Hold{}, err
	}
	if o.Service != "" && !validServiceID(o.Service) {
		return Hold{}, errorf(ErrInvalidRequest, "service %q: not a service id", o.Service)
	}
	if len(o.Memo) > 1024 || !utf8.ValidString(o.Memo) {
		return Hold{}, errorf(ErrInvalidRequest, "memo: must be valid UTF-8 of at most 1024 bytes")
	}
	if err := l.checkMoney("amount", amount, false); err != nil {
		return Hold{}, err
	}
	ceiling := l.ceiling
	if o.CallCeiling != nil {
		ceiling = o.CallCeiling
		if err := l.checkMoney("call ceiling", *ceiling, true); err != nil {
			return Hold{}, err
		}
	}
	if ceiling != nil && amount.Amount > ceiling.Amount {
		return Hold{}, errorf(ErrCallCeiling, "amount %d exceeds the per-call ceiling %d %s", amount.Amount, ceiling.Amount, l.currency)
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = l.ttl
	}
	if ttl < 0 || ttl > l.maxTTL {
		return Hold{}, errorf(ErrInvalidRequest, "ttl %v: must be positive and at most %v", ttl, l.maxTTL)
	}
	now := l.now()
	ws := l.windows.at(now)
	r := reserveBufs.Get().(*reserveBuf)
	// Every field is written before use; clearing the request drops the
	// caller's strings (the checks hold only names).
	defer func() { r.req = ReserveRequest{}; reserveBufs.Put(r) }()
	l.fillChecks(r.checks[:], scope, ws)
	r.req = ReserveRequest{
		HoldID:    l.newID(),
		Key:       idempotencyKey,
		Scope:     scope,
		Service:   o.Service,
		Memo:      o.Memo,
		Amount:    amount,
		Checks:    r.checks[:],
		Now:       now,
		ExpiresAt: now.Add(ttl),
	}
	if !l.storeMatch {
		r.req.RequestHash = requestHash('R', scope, o.Service, amount, time.Time{})
	}
	h, replayed, err := l.store.Reserve(ctx, &r.req)
	if err != nil {
		err = storeErr(err)
		if errors.Is(err, ErrStore) {
			l.log.LogAttrs(ctx, slog.LevelError, "budget: reserve failed closed", slog.String("scope", scope.String()), slog.String("key", idempotencyKey), slog.Any("error", err))
		}
		return Hold{}, err
	}
	if !replayed && l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.LogAttrs(ctx, slog.LevelDebug, "budget: reserved", slog.String("hold", h.ID), slog.String("scope", scope.String()), slog.Int64("amount", amount.Amount))
	}
	return h.At(now), nil
}

// reserveBuf holds a reservation request and its checks. Buffers are
// pooled: Stores must not retain a request after returning.
type reserveBuf struct {
	req    ReserveRequest
	checks [2 * len(periods)]CapCheck
}

var reserveBufs = sync.Pool{New: func() any { return new(reserveBuf) }}

var transitionBufs = sync.Pool{New: func() any { return new(TransitionRequest) }}

// fillChecks writes the counters a hold on scope counts in: the provider's
// windows then the project's, each with its default limit.
func (l *Ledger) fillChecks(dst []CapCheck, scope Scope, ws *windowSet) {
	for i, p := range periods {
		dst[i] = CapCheck{Counter: Counter{Project: scope.Project, Provider: scope.Provider, Window: ws.w[i]}}
		if p == l.providerPer {
			dst[i].Default = &l.providerCap
		}
		j := len(periods) + i
		dst[j] = CapCheck{Counter: Counter{Project: scope.Project, Window: ws.w[i]}}
		if p == l.projectPer {
			dst[j].Default = l.projectCap
		}
	}
}

func (l *Ledger) checksAt(scope Scope, t time.Time) []CapCheck {
	ws := l.windows.lookup(t) // often an old instant: do not evict the cache
	c := make([]CapCheck, 2*len(periods))
	l.fillChecks(c, scope, ws)
	return c
}

func (l *Ledger) newID() string {
	if l.storeIDs {
		return ""
	}
	return l.idPrefix + strconv.FormatUint(l.idSeq.Add(1), 36)
}

// requestHash fingerprints the parts of a request that must match on replay.
func requestHash(kind byte, scope Scope, service string, amount Money, at time.Time) string {
	var buf [512]byte
	b := append(buf[:0], kind)
	for _, s := range [...]string{scope.Project, scope.Provider, service, amount.Currency} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, amount.Amount)
	if !at.IsZero() {
		b = binary.AppendVarint(b, at.UnixNano())
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// storeErr passes the package's own errors through and wraps anything else
// as ErrStore, so that callers fail closed on it.
func storeErr(err error) error {
	var e *Error
	var ce *CapError
	if errors.As(err, &e) || errors.As(err, &ce) {
		return err
	}
	return &Error{Code: ErrStore.Code, Status: ErrStore.Status, Err: err}
}

// Commit ends an active hold as committed with the actual amount (at most
// the held amount); the remainder returns to the caps at once. Repeating a
// commit with the same amount returns the same hold; after expiry it fails
// with ErrHoldExpired and the hold ends as expired.
func (l *Ledger) Commit(ctx context.Context, holdID string, actual Money) (Hold, error) {
	if err := l.checkMoney("actual", actual, true); err != nil {
		return Hold{}, err
	}
	h, err := l.transition(ctx, holdID, HoldActive, HoldCommitted, actual, "")
	if err == nil && l.alerts != nil {
		l.checkAlerts(ctx, h.Scope, h.CreatedAt)
	}
	return h, err
}

// Release ends an active hold as released: it stops counting at once.
// Releasing again returns the same hold. Releasing a hold that expired
// returns it, expired, without error: the money is free either way.
func (l *Ledger) Release(ctx context.Context, holdID string) (Hold, error) {
	h, err := l.transition(ctx, holdID, HoldActive, HoldReleased, Money{}, "")
	if errors.Is(err, ErrHoldExpired) {
		return h, nil
	}
	return h, err
}

// Reverse ends a committed hold as reversed: its spend is taken back, for
// example because settlement was definitively refused. Idempotent.
func (l *Ledger) Reverse(ctx context.Context, holdID string, reason string) (Hold, error) {
	if len(reason) > 1024 || !utf8.ValidString(reason) {
		return Hold{}, errorf(ErrInvalidRequest, "reason: must be valid UTF-8 of at most 1024 bytes")
	}
	return l.transition(ctx, holdID, HoldCommitted, HoldReversed, Money{}, reason)
}

func (l *Ledger) transition(ctx context.Context, id string, from, to HoldState, actual Money, reason string) (Hold, error) {
	if id == "" || len(id) > 255 {
		return Hold{}, errorf(ErrHoldNotFound, "hold id: must be 1–255 bytes")
	}
	now := l.now()
	req := transitionBufs.Get().(*TransitionRequest)
	*req = TransitionRequest{HoldID: id, From: from, To: to, Actual: actual, Reason: reason, Now: now}
	h, err := l.store.Transition(ctx, req)
	*req = TransitionRequest{}
	transitionBufs.Put(req)
	if err != nil {
		err = storeErr(err)
		if errors.Is(err, ErrStore) {
			l.log.LogAttrs(ctx, slog.LevelError, "budget: transition failed", slog.String("hold", id), slog.String("to", string(to)), slog.Any("error", err))
			return Hold{}, err
		}
		if h.ID == "" {
			return Hold{}, err
		}
		return h.At(now), err
	}
	return h.At(now), nil
}

// Hold returns the hold with id as of now (an active hold past its expiry is
// reported expired).
func (l *Ledger) Hold(ctx context.Context, holdID string) (Hold, error) {
	if holdID == "" || len(holdID) > 255 {
		return Hold{}, errorf(ErrHoldNotFound, "hold id: must be 1–255 bytes")
	}
	h, err := l.store.Hold(ctx, holdID)
	if err != nil {
		return Hold{}, storeErr(err)
	}
	return h.At(l.now()), nil
}
