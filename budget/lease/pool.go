package lease

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// Defaults applied by New to zero option fields.
const (
	// DefaultSlice is the amount of a lease, in minor units.
	DefaultSlice = 1000
	// DefaultLeaseTTL is how long a lease hold lives in the shared store:
	// long, so that a crashed instance has hours to restart (or to have
	// its journal recovered) before its lease could expire unsettled.
	DefaultLeaseTTL = 6 * time.Hour
	// DefaultHoldTTL is how long a sub-hold lives unless committed.
	DefaultHoldTTL = 5 * time.Minute
	// DefaultMargin is how long before its expiry a lease is settled. With
	// DefaultLeaseTTL a lease grants for at most 55 minutes and is settled
	// at the latest 5 hours before it would expire: that is how long a
	// crashed instance may stay down before any of its reported commits
	// could go uncounted (see the proof sketch in the package doc).
	DefaultMargin = 5 * time.Hour
	// DefaultSettleEvery is how often the background settler runs.
	DefaultSettleEvery = time.Second
	// DefaultIdleAfter is how long a lease may grant nothing, with no
	// sub-hold open, before it is settled and its unused part goes back to
	// the caps, where other instances can lease it.
	DefaultIdleAfter = time.Minute
	// DefaultCompactAfter is how many leases a Pool settles between two
	// compactions of its journal.
	DefaultCompactAfter = 64
)

// subPrefix starts the id of every sub-hold; other ids are shared-store
// holds (reservations that did not fit a slice).
const subPrefix = "lsub_"

// Options configures a Pool. Nil or zero fields give the defaults.
type Options struct {
	// Ledger configures the Ledger the Pool runs over the shared store
	// (caps, periods, currency); every instance sharing a store must use
	// the same. Its Now, if nil, is Options.Now.
	Ledger *budget.LedgerOptions
	// Slice is the amount of each lease in the Ledger's currency's minor
	// units; zero means DefaultSlice. A reservation larger than Slice goes
	// to the shared store directly.
	Slice int64
	// LeaseTTL, HoldTTL and Margin: a lease lives LeaseTTL; a sub-hold
	// lives HoldTTL but never past its lease's expiry minus Margin, when
	// the lease is settled. Zero means the defaults; HoldTTL+Margin must be
	// below LeaseTTL. Margin is the time a crashed instance has to restart
	// (New recovers its journal before serving) or to have its journal
	// recovered (Recover) before a lease can expire unsettled; keep it
	// long. The price is under-spend: a dead instance's leases count their
	// full amounts until they are recovered or expire.
	LeaseTTL, HoldTTL, Margin time.Duration
	// SettleEvery is the period of the background goroutine that settles
	// idle and expiring leases; zero means DefaultSettleEvery, negative
	// means none (the caller then calls Settle often enough that no lease
	// reaches its expiry unsettled).
	SettleEvery time.Duration
	// IdleAfter: a lease that has granted nothing for IdleAfter and has no
	// sub-hold open is settled, so that an instance that stopped using a
	// scope does not pin its slice (other instances would be refused for
	// room nothing spends). Zero means DefaultIdleAfter; negative means
	// never (a lease is then settled only when it is replaced, Margin
	// before its expiry, or at Close).
	IdleAfter time.Duration
	// CompactAfter: when the journal implements Compacter (FileJournal
	// does), New compacts it after recovery and the Pool compacts it again
	// after every CompactAfter settled leases, so the journal holds about
	// what is live rather than everything ever granted. Zero means
	// DefaultCompactAfter; negative means never.
	CompactAfter int
	// Instance names this instance in lease idempotency keys; empty means a
	// random name. It must be unique among instances sharing a store.
	Instance string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives operational events; nil means slog.Default().
	Logger *slog.Logger
}

// Pool grants holds on scopes from slices of their caps leased from a
// shared store, at memory speed, journaling each grant and commit before
// reporting it. It is safe for concurrent use. Close it to settle its
// leases.
type Pool struct {
	ledger   *budget.Ledger
	journal  Journal
	now      func() time.Time
	log      *slog.Logger
	slice    int64
	leaseTTL time.Duration
	holdTTL  time.Duration
	margin   time.Duration
	idle     time.Duration
	compact  int
	instance string
	prefix   string // this Pool's sub-hold id prefix

	mu     sync.Mutex
	seq    uint64
	scopes map[budget.Scope]*scopeState
	leases map[string]*lease // by key, until settled
	subs   map[string]*sub   // by id
	keys   map[string]*sub   // by idempotency key
	closed bool

	settledSince int // leases settled since the last compaction

	stop chan struct{}
	done chan struct{}
}

type scopeState struct {
	renew sync.Mutex // one renewal at a time per scope
	cur   *lease
}

type lease struct {
	key       string
	id        string
	scope     budget.Scope
	amount    int64
	used      int64 // pending, active and committed sub-holds
	committed int64
	expires   time.Time
	lastGrant time.Time // when it was granted or last granted a sub-hold
	inflight  int       // journal appends in progress
	subs      map[string]*sub
	retired   bool // no new sub-holds
	settling  bool
}

type subState int

const (
	subPending subState = iota
	subActive
	subCommitting
	subCommitted
	subReleased
	subExpired
)

type sub struct {
	id, key   string
	lease     *lease
	amount    int64
	committed int64
	state     subState
	created   time.Time
	expires   time.Time
	ended     time.Time
}

// New recovers journal (settling every lease it left open, see Recover) and
// returns a Pool over shared that journals to it. The Pool's background
// settler runs until Close.
func New(ctx context.Context, shared budget.Store, journal Journal, opts *Options) (*Pool, error) {
	p, err := newPool(shared, journal, opts)
	if err != nil {
		return nil, err
	}
	if _, err := recoverJournal(ctx, p.ledger, journal, p.log); err != nil {
		return nil, err
	}
	_ = p.compactJournal(ctx) // logged; a journal it failed fails every grant
	var every time.Duration = DefaultSettleEvery
	if opts != nil && opts.SettleEvery != 0 {
		every = opts.SettleEvery
	}
	if every > 0 {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.settler(every)
	}
	return p, nil
}

func newPool(shared budget.Store, journal Journal, opts *Options) (*Pool, error) {
	if shared == nil || journal == nil {
		return nil, errors.New("lease: shared store and journal are required")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	lo := budget.LedgerOptions{}
	if o.Ledger != nil {
		lo = *o.Ledger
	}
	if lo.Now == nil {
		lo.Now = o.Now
	}
	if lo.Logger == nil {
		lo.Logger = o.Logger
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if lo.MaxTTL != 0 && o.LeaseTTL > lo.MaxTTL {
		return nil, fmt.Errorf("lease: lease ttl %v exceeds the ledger's max ttl %v", o.LeaseTTL, lo.MaxTTL)
	}
	ledger, err := budget.NewLedger(shared, &lo)
	if err != nil {
		return nil, err
	}
	if o.Slice == 0 {
		o.Slice = DefaultSlice
	}
	if o.HoldTTL == 0 {
		o.HoldTTL = DefaultHoldTTL
	}
	if o.Margin == 0 {
		o.Margin = DefaultMargin
	}
	if o.IdleAfter == 0 {
		o.IdleAfter = DefaultIdleAfter
	}
	if o.CompactAfter == 0 {
		o.CompactAfter = DefaultCompactAfter
	}
	if o.Slice < 0 || o.HoldTTL < 0 || o.Margin < 0 || o.HoldTTL+o.Margin >= o.LeaseTTL {
		return nil, fmt.Errorf("lease: options: slice %d must be positive and hold ttl %v + margin %v below lease ttl %v", o.Slice, o.HoldTTL, o.Margin, o.LeaseTTL)
	}
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lease: random: %w", err)
	}
	rnd := base64.RawURLEncoding.EncodeToString(b[:])
	if o.Instance == "" {
		o.Instance = rnd
	}
	return &Pool{
		ledger: ledger, journal: journal, now: o.Now, log: o.Logger,
		slice: o.Slice, leaseTTL: o.LeaseTTL, holdTTL: o.HoldTTL, margin: o.Margin, idle: o.IdleAfter, compact: o.CompactAfter,
		// The random part keeps lease keys of a restarted instance apart
		// from those of its previous life.
		instance: o.Instance + "." + rnd,
		prefix:   subPrefix + rnd + ".",
		scopes:   map[budget.Scope]*scopeState{},
		leases:   map[string]*lease{},
		subs:     map[string]*sub{},
		keys:     map[string]*sub{},
	}, nil
}

// Ledger returns the Ledger the Pool runs over the shared store.
func (p *Pool) Ledger() *budget.Ledger { return p.ledger }

func (p *Pool) settler(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every*10)
			_ = p.Settle(ctx)
			cancel()
		}
	}
}

func errorf(s *budget.Error, format string, args ...any) error {
	return &budget.Error{Code: s.Code, Status: s.Status, Detail: fmt.Sprintf(format, args...)}
}

func storeErr(what string, err error) error {
	return &budget.Error{Code: budget.ErrStore.Code, Status: budget.ErrStore.Status, Detail: what, Err: err}
}

func (s *sub) hold() budget.Hold {
	h := budget.Hold{
		ID: s.id, Key: s.key, Scope: s.lease.scope,
		Amount:    budget.Money{Amount: s.amount},
		Committed: budget.Money{Amount: s.committed},
		CreatedAt: s.created, ExpiresAt: s.expires, EndedAt: s.ended,
	}
	switch s.state {
	case subCommitted:
		h.State = budget.HoldCommitted
	case subReleased:
		h.State = budget.HoldReleased
	case subExpired:
		h.State = budget.HoldExpired
	default:
		h.State = budget.HoldActive
	}
	return h
}

func (p *Pool) holdOf(s *sub) budget.Hold {
	h := s.hold()
	h.Amount.Currency = p.ledger.Currency()
	h.Committed.Currency = p.ledger.Currency()
	return h
}

// expire ends s if its time is up. Call with p.mu held.
func (p *Pool) expire(s *sub, now time.Time) {
	if s.state == subActive && !now.Before(s.expires) {
		s.state, s.ended = subExpired, s.expires
		s.lease.used -= s.amount
		delete(s.lease.subs, s.id)
	}
}

// Reserve grants a hold of amount on scope: from this instance's slice of
// the scope's caps when it fits (journaled, no shared-store round trip),
// else from the shared store directly. The same key returns the same hold
// while this Pool lives; keys are per instance for sub-holds, so a caller
// retries a reservation on the instance that made it.
func (p *Pool) Reserve(ctx context.Context, scope budget.Scope, amount budget.Money, key string) (budget.Hold, error) {
	if amount.Currency != p.ledger.Currency() {
		return budget.Hold{}, errorf(budget.ErrCurrencyMismatch, "amount: currency %q, ledger currency is %s", amount.Currency, p.ledger.Currency())
	}
	if amount.Amount <= 0 {
		return budget.Hold{}, errorf(budget.ErrInvalidAmount, "amount: %d must be positive", amount.Amount)
	}
	if key == "" || len(key) > 255 {
		return budget.Hold{}, errorf(budget.ErrInvalidRequest, "idempotency key: must be 1–255 bytes")
	}
	if amount.Amount <= p.slice {
		for attempt := 0; attempt < 2; attempt++ {
			h, ok, err := p.reserveLocal(ctx, scope, amount.Amount, key)
			if ok || err != nil {
				return h, err
			}
			if err := p.renew(ctx, scope, amount.Amount); err != nil {
				if errors.Is(err, budget.ErrCapExceeded) {
					break // the shared store may still fit this one amount
				}
				return budget.Hold{}, err
			}
		}
	}
	return p.ledger.Reserve(ctx, scope, amount, key, &budget.ReserveOptions{TTL: p.holdTTL})
}

// reserveLocal grants from the current lease of scope; ok is false when
// there is no lease with room (and lifetime) for amount.
func (p *Pool) reserveLocal(ctx context.Context, scope budget.Scope, amount int64, key string) (budget.Hold, bool, error) {
	now := p.now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return budget.Hold{}, false, errorf(budget.ErrInvalidRequest, "lease: pool closed")
	}
	if s := p.keys[key]; s != nil {
		h := p.holdOf(s)
		p.mu.Unlock()
		if h.Amount.Amount != amount || h.Scope != scope {
			return budget.Hold{}, true, errorf(budget.ErrIdempotencyConflict, "key %q was used for a different reservation", key)
		}
		return h.At(now), true, nil
	}
	st := p.scopes[scope]
	l := (*lease)(nil)
	if st != nil {
		l = st.cur
	}
	if l == nil || l.retired || l.amount-l.used < amount || now.Add(p.holdTTL).After(l.expires.Add(-p.margin)) {
		p.mu.Unlock()
		return budget.Hold{}, false, nil
	}
	p.seq++
	s := &sub{
		id: p.prefix + strconv.FormatUint(p.seq, 36), key: key, lease: l, amount: amount,
		state: subPending, created: now, expires: now.Add(p.holdTTL),
	}
	l.used += amount
	l.lastGrant = now
	l.inflight++
	l.subs[s.id] = s
	p.subs[s.id] = s
	p.keys[key] = s
	p.mu.Unlock()

	err := p.journal.Append(ctx, Record{Kind: KindReserve, LeaseKey: l.key, Sub: s.id, Amount: amount})

	p.mu.Lock()
	defer p.mu.Unlock()
	l.inflight--
	if err != nil {
		l.used -= amount
		delete(l.subs, s.id)
		delete(p.subs, s.id)
		delete(p.keys, key)
		p.log.LogAttrs(ctx, slog.LevelError, "lease: journal append failed; reservation refused", slog.String("scope", scope.String()), slog.Any("error", err))
		return budget.Hold{}, true, storeErr("journal", err)
	}
	s.state = subActive
	return p.holdOf(s), true, nil
}

// renew leases a new slice of scope (at least need) and retires the current
// one, unless another caller already did.
func (p *Pool) renew(ctx context.Context, scope budget.Scope, need int64) error {
	p.mu.Lock()
	st := p.scopes[scope]
	if st == nil {
		st = &scopeState{}
		p.scopes[scope] = st
	}
	old := st.cur
	p.mu.Unlock()
	st.renew.Lock()
	defer st.renew.Unlock()
	p.mu.Lock()
	if st.cur != old {
		p.mu.Unlock()
		return nil // someone renewed while we waited
	}
	if old != nil {
		old.retired = true
	}
	p.seq++
	key := "lease:" + p.instance + ":" + strconv.FormatUint(p.seq, 36)
	p.mu.Unlock()

	amount := p.slice
	for try := 0; ; try++ {
		if err := p.journal.Append(ctx, Record{Kind: KindLease, LeaseKey: key, Scope: scope, Amount: amount, Currency: p.ledger.Currency()}); err != nil {
			return storeErr("journal", err)
		}
		h, err := p.ledger.Reserve(ctx, scope, budget.Money{Amount: amount, Currency: p.ledger.Currency()}, key, &budget.ReserveOptions{TTL: p.leaseTTL})
		var ce *budget.CapError
		if errors.As(err, &ce) {
			// Refused: nothing is held under key. Say so, then try the
			// room that is left if it still fits need.
			_ = p.journal.Append(ctx, Record{Kind: KindSettled, LeaseKey: key})
			if rem := ce.Remaining(); try == 0 && rem >= need && rem < amount {
				amount = rem
				p.mu.Lock()
				p.seq++
				key = "lease:" + p.instance + ":" + strconv.FormatUint(p.seq, 36)
				p.mu.Unlock()
				continue
			}
			return err
		}
		if err != nil {
			return err // recovery settles whatever the store may have granted
		}
		if err := p.journal.Append(ctx, Record{Kind: KindGranted, LeaseKey: key, LeaseID: h.ID, ExpiresAt: h.ExpiresAt}); err != nil {
			return storeErr("journal", err) // the hold expires, having granted nothing
		}
		l := &lease{key: key, id: h.ID, scope: scope, amount: amount, expires: h.ExpiresAt, lastGrant: p.now(), subs: map[string]*sub{}}
		p.mu.Lock()
		p.leases[key] = l
		st.cur = l
		p.mu.Unlock()
		return nil
	}
}

// Commit ends hold id as committed for actual (at most its amount). A
// sub-hold's commit is journaled before it is reported; repeating it with
// the same amount returns the same hold. Other ids go to the shared store.
func (p *Pool) Commit(ctx context.Context, id string, actual budget.Money) (budget.Hold, error) {
	if !strings.HasPrefix(id, subPrefix) {
		return p.ledger.Commit(ctx, id, actual)
	}
	if actual.Currency != p.ledger.Currency() {
		return budget.Hold{}, errorf(budget.ErrCurrencyMismatch, "actual: currency %q, ledger currency is %s", actual.Currency, p.ledger.Currency())
	}
	now := p.now()
	p.mu.Lock()
	s := p.subs[id]
	if s == nil {
		p.mu.Unlock()
		return budget.Hold{}, errorf(budget.ErrHoldNotFound, "hold %s: not held by this instance (ended or recovered)", id)
	}
	p.expire(s, now)
	switch s.state {
	case subCommitted:
		h := p.holdOf(s)
		p.mu.Unlock()
		if s.committed != actual.Amount {
			return h, errorf(budget.ErrIdempotencyConflict, "hold %s was committed for %d", id, s.committed)
		}
		return h, nil
	case subExpired:
		h := p.holdOf(s)
		p.mu.Unlock()
		return h, errorf(budget.ErrHoldExpired, "hold %s expired", id)
	case subActive:
	default:
		h := p.holdOf(s)
		p.mu.Unlock()
		return h, errorf(budget.ErrHoldEnded, "hold %s is not active", id)
	}
	if actual.Amount < 0 || actual.Amount > s.amount {
		p.mu.Unlock()
		return budget.Hold{}, errorf(budget.ErrInvalidAmount, "actual %d: must be 0–%d", actual.Amount, s.amount)
	}
	s.state = subCommitting
	s.lease.inflight++
	p.mu.Unlock()

	err := p.journal.Append(ctx, Record{Kind: KindCommit, LeaseKey: s.lease.key, Sub: id, Amount: actual.Amount})

	p.mu.Lock()
	defer p.mu.Unlock()
	l := s.lease
	l.inflight--
	if err != nil {
		s.state = subActive
		p.log.LogAttrs(ctx, slog.LevelError, "lease: journal append failed; commit refused", slog.String("hold", id), slog.Any("error", err))
		return budget.Hold{}, storeErr("journal", err)
	}
	s.state, s.committed, s.ended = subCommitted, actual.Amount, now
	l.used -= s.amount - actual.Amount
	l.committed += actual.Amount
	delete(l.subs, id)
	return p.holdOf(s), nil
}

// Release ends hold id as released; a sub-hold's room returns to its slice
// at once (not journaled: an uncommitted sub-hold costs nothing once its
// lease settles). Releasing again, or after expiry, is not an error.
func (p *Pool) Release(ctx context.Context, id string) (budget.Hold, error) {
	if !strings.HasPrefix(id, subPrefix) {
		return p.ledger.Release(ctx, id)
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.subs[id]
	if s == nil {
		return budget.Hold{}, errorf(budget.ErrHoldNotFound, "hold %s: not held by this instance", id)
	}
	p.expire(s, now)
	switch s.state {
	case subActive:
		s.state, s.ended = subReleased, now
		s.lease.used -= s.amount
		delete(s.lease.subs, id)
	case subReleased, subExpired:
	default:
		return p.holdOf(s), errorf(budget.ErrHoldEnded, "hold %s is %v", id, p.holdOf(s).State)
	}
	return p.holdOf(s), nil
}

// Settle returns to the shared store every lease that is retired and idle
// or close to its expiry: each lease hold is committed for exactly the sum
// of its committed sub-holds, the rest going back to the caps. The
// background settler calls it; a Pool without one must call it at least
// every Margin.
func (p *Pool) Settle(ctx context.Context) error {
	return p.settle(ctx, false)
}

func (p *Pool) settle(ctx context.Context, all bool) error {
	now := p.now()
	var due []*lease
	p.mu.Lock()
	for _, l := range p.leases {
		if l.settling || l.inflight > 0 {
			continue
		}
		for _, s := range l.subs {
			p.expire(s, now)
		}
		late := !now.Before(l.expires.Add(-p.margin))
		idle := p.idle > 0 && len(l.subs) == 0 && !now.Before(l.lastGrant.Add(p.idle))
		if all || late || idle || (l.retired && len(l.subs) == 0) {
			l.retired, l.settling = true, true
			// Sub-holds still active end now: they can no longer commit.
			for _, s := range l.subs {
				if s.state == subActive {
					s.state, s.ended = subExpired, now
				}
			}
			l.subs = map[string]*sub{}
			due = append(due, l)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, l := range due {
		err := settleLease(ctx, p.ledger, p.log, l.key, l.id, l.scope, l.committed)
		p.mu.Lock()
		if err != nil {
			l.settling = false // tried again next time
			errs = append(errs, err)
		} else {
			delete(p.leases, l.key)
			if st := p.scopes[l.scope]; st != nil && st.cur == l {
				st.cur = nil
			}
			for id, s := range p.subs {
				if s.lease == l {
					delete(p.subs, id)
					delete(p.keys, s.key)
				}
			}
		}
		p.mu.Unlock()
		if err == nil {
			if p.journal.Append(ctx, Record{Kind: KindSettled, LeaseKey: l.key, Amount: l.committed}) == nil {
				p.mu.Lock()
				p.settledSince++
				p.mu.Unlock()
			}
		}
	}
	p.mu.Lock()
	compactDue := p.compact > 0 && p.settledSince >= p.compact
	p.mu.Unlock()
	if compactDue {
		if err := p.compactJournal(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// compactJournal drops the settled leases' records from the journal, when
// it can and compaction is on.
func (p *Pool) compactJournal(ctx context.Context) error {
	c, ok := p.journal.(Compacter)
	if !ok || p.compact < 0 {
		return nil
	}
	p.mu.Lock()
	since := p.settledSince
	p.mu.Unlock()
	n, err := c.Compact(ctx)
	if err != nil {
		p.log.LogAttrs(ctx, slog.LevelError, "lease: journal compaction failed", slog.Any("error", err))
		return storeErr("journal compaction", err)
	}
	p.mu.Lock()
	p.settledSince -= since
	p.mu.Unlock()
	p.log.LogAttrs(ctx, slog.LevelDebug, "lease: journal compacted", slog.Int("records_dropped", n))
	return nil
}

// settleLease commits lease hold id for committed. A lease that expired
// before it was settled has counted nothing since; its commits are then
// recorded as usage in arrears (never refused, reported as an overrun if
// they take spend over a cap) so that no spend is lost from the books.
func settleLease(ctx context.Context, ledger *budget.Ledger, log *slog.Logger, key, id string, scope budget.Scope, committed int64) error {
	cur := ledger.Currency()
	_, err := ledger.Commit(ctx, id, budget.Money{Amount: committed, Currency: cur})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, budget.ErrHoldExpired), errors.Is(err, budget.ErrHoldEnded):
		log.LogAttrs(ctx, slog.LevelError, "lease: lease expired before it was settled; recording its commits as usage", slog.String("lease", id), slog.Int64("committed", committed))
		if committed == 0 {
			return nil
		}
		res, err := ledger.ReportUsage(ctx, budget.UsageReport{Key: "settle:" + key, Scope: scope, Amount: budget.Money{Amount: committed, Currency: cur}})
		if err == nil && len(res.Overrun) > 0 {
			log.LogAttrs(ctx, slog.LevelError, "lease: late settlement overran a cap", slog.String("lease", id))
		}
		return err
	case errors.Is(err, budget.ErrIdempotencyConflict):
		// Settled before with another sum: only possible when a journal
		// append failed after writing. The stored sum stands.
		log.LogAttrs(ctx, slog.LevelWarn, "lease: lease already settled for another amount", slog.String("lease", id), slog.Int64("journal", committed))
		return nil
	}
	return err
}

// Close stops the settler and settles every lease; sub-holds still active
// end (as expired) and can no longer be committed. The journal stays open.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	return p.settle(ctx, true)
}
