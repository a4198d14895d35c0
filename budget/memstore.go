package budget

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryStore is the in-memory Store, the default. It is fast and sharded:
// projects are spread over shards by hash, each shard under its own mutex,
// so reservations on different projects rarely contend. Holds, usage and cap
// history are kept for the life of the process (they are what makes
// idempotency and history work); nothing survives a restart. Under a Ledger
// it assigns hold ids itself, naming each hold's shard and position, so that
// a commit finds its hold without a global index.
//
// A MemoryStore is safe for concurrent use.
type MemoryStore struct {
	seed     maphash.Seed
	idPrefix string
	projects []memShard            // by project
	holdIDs  []memIndex[*memHold]  // hold id → hold
	holdKeys []memIndex[*memHold]  // idempotency key → hold
	useKeys  []memIndex[*memUsage] // usage key → entry
	alertsMu sync.Mutex
	alerts   map[string]time.Time
}

// MemoryStoreOptions configures a MemoryStore; nil means defaults.
type MemoryStoreOptions struct {
	// Shards is the number of shards (rounded up to a power of two); zero
	// means 64.
	Shards int
}

type memShard struct {
	mu       sync.Mutex
	idx      int
	projects map[string]*memProject
	// holds are the holds whose ids this store assigned, by position: such
	// an id names its shard and position, so finding it needs no index.
	holds []*memHold
	_     [8]byte // keep shards on separate cache lines
}

type memIndex[V any] struct {
	mu sync.Mutex
	m  map[string]V
	_  [48]byte
}

type memProject struct {
	scopes map[string]*memScope // by provider; "" is project-wide
	// lastScope caches the scope of lastProvider: checks come grouped by
	// provider, so most lookups skip the map.
	lastScope    *memScope
	lastProvider string
	active       holdHeap // active holds by expiry
	caps         map[CapKey]Money
	history      []CapRecord
}

type memScope struct {
	windows map[Window]*memCounter
	cur     [3]*memCounter // the latest counter per period: the hot path
}

type memCounter struct {
	window                   Window
	committed, held, arrears int64
}

type memHold struct {
	h        Hold
	hash     string
	counters []*memCounter
	inline   [6]*memCounter // backs counters: one allocation per hold
	heapIdx  int            // index in the project's heap, -1 when not in it
	shard    *memShard
}

type memUsage struct {
	e    UsageEntry
	hash string
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts *MemoryStoreOptions) *MemoryStore {
	n := 64
	if opts != nil && opts.Shards > 0 {
		n = 1
		for n < opts.Shards {
			n <<= 1
		}
	}
	var b [9]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	s := &MemoryStore{
		seed:     maphash.MakeSeed(),
		idPrefix: "hold_" + base64.RawURLEncoding.EncodeToString(b[:]) + ".",
		projects: make([]memShard, n),
		holdIDs:  make([]memIndex[*memHold], n),
		holdKeys: make([]memIndex[*memHold], n),
		useKeys:  make([]memIndex[*memUsage], n),
		alerts:   map[string]time.Time{},
	}
	for i := 0; i < n; i++ {
		s.projects[i].projects = map[string]*memProject{}
		s.projects[i].idx = i
		s.holdIDs[i].m = map[string]*memHold{}
		s.holdKeys[i].m = map[string]*memHold{}
		s.useKeys[i].m = map[string]*memUsage{}
	}
	return s
}

func (s *MemoryStore) slot(k string) int {
	return int(maphash.String(s.seed, k) & uint64(len(s.projects)-1))
}

func (s *MemoryStore) shard(project string) *memShard { return &s.projects[s.slot(project)] }

func index[V any](s *MemoryStore, ix []memIndex[V], k string) *memIndex[V] { return &ix[s.slot(k)] }

func (x *memIndex[V]) get(k string) (V, bool) {
	x.mu.Lock()
	v, ok := x.m[k]
	x.mu.Unlock()
	return v, ok
}

// putIfAbsent stores v under k unless present, returning what is stored.
func (x *memIndex[V]) putIfAbsent(k string, v V) (stored V, inserted bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.m[k]; ok {
		return old, false
	}
	x.m[k] = v
	return v, true
}

// project returns the state of name, creating it when create is set.
func (sh *memShard) project(name string, create bool) *memProject {
	p := sh.projects[name]
	if p == nil && create {
		p = &memProject{scopes: map[string]*memScope{}, caps: map[CapKey]Money{}}
		sh.projects[name] = p
	}
	return p
}

func (p *memProject) counter(provider string, w Window, create bool) *memCounter {
	sc := p.lastScope
	if sc == nil || p.lastProvider != provider {
		sc = p.scopes[provider]
		if sc == nil {
			if !create {
				return nil
			}
			sc = &memScope{windows: map[Window]*memCounter{}}
			p.scopes[provider] = sc
		}
		p.lastScope, p.lastProvider = sc, provider
	}
	slot := windowSlot(w)
	if c := sc.cur[slot]; c != nil && c.window == w {
		return c
	}
	c := sc.windows[w]
	if c == nil {
		if !create {
			return nil
		}
		c = &memCounter{window: w}
		sc.windows[w] = c
	}
	sc.cur[slot] = c
	return c
}

// windowSlot spreads the periods over memScope.cur.
func windowSlot(w Window) int {
	if w == "" {
		return 0
	}
	switch w[0] {
	case 'm':
		return 1
	case 'y':
		return 2
	}
	return 0
}

// expire ends every active hold of p whose expiry is not after now.
func (p *memProject) expire(now time.Time) {
	for len(p.active) > 0 && !now.Before(p.active[0].h.ExpiresAt) {
		mh := heap.Pop(&p.active).(*memHold)
		mh.end(HoldExpired, mh.h.ExpiresAt)
	}
}

// end moves an active hold out of the held sums.
func (mh *memHold) end(to HoldState, at time.Time) {
	for _, c := range mh.counters {
		c.held -= mh.h.Amount.Amount
	}
	mh.h.State = to
	mh.h.EndedAt = at
}

// limit returns the cap in force for c; the stored cap wins over the default.
func (p *memProject) limit(c CapCheck) (Money, bool) {
	if len(p.caps) > 0 {
		if m, ok := p.caps[c.Counter.Cap()]; ok {
			return m, true
		}
	}
	if c.Default != nil {
		return *c.Default, true
	}
	return Money{}, false
}

// Reserve implements Store.
func (s *MemoryStore) Reserve(ctx context.Context, req *ReserveRequest) (Hold, bool, error) {
	if err := ctx.Err(); err != nil {
		return Hold{}, false, err
	}
	for _, c := range req.Checks {
		if c.Counter.Project != req.Scope.Project || (c.Counter.Provider != "" && c.Counter.Provider != req.Scope.Provider) {
			return Hold{}, false, errorf(ErrInvalidRequest, "check %v is outside scope %v", c.Counter, req.Scope)
		}
	}
	mh := &memHold{
		h: Hold{
			ID: req.HoldID, Key: req.Key, Scope: req.Scope, Service: req.Service, Memo: req.Memo,
			Amount: req.Amount, Committed: Money{Currency: req.Amount.Currency}, State: HoldActive,
			CreatedAt: req.Now, ExpiresAt: req.ExpiresAt,
		},
		hash:    req.RequestHash,
		heapIdx: -1,
	}
	mh.counters = mh.inline[:0]
	if len(req.Checks) > len(mh.inline) {
		mh.counters = make([]*memCounter, 0, len(req.Checks))
	}
	sh := s.shard(req.Scope.Project)
	mh.shard = sh
	keys := index(s, s.holdKeys, req.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	assign := req.HoldID == ""
	if assign {
		mh.h.ID = s.slotID(sh.idx, len(sh.holds))
	}
	// Claim the key first, in one step: a reservation with the same key in
	// this project is excluded by the shard lock; one in another project
	// sees the claim and conflicts. A refused reservation gives it back.
	if v, ok := keys.putIfAbsent(req.Key, mh); !ok {
		return replayHold(v, req)
	}
	unclaim := func() {
		keys.mu.Lock()
		delete(keys.m, req.Key)
		keys.mu.Unlock()
	}
	p := sh.project(req.Scope.Project, true)
	p.expire(req.Now)
	var found [6]*memCounter // counters looked up by the checks, reused below
	for i, c := range req.Checks {
		ctr := p.counter(c.Counter.Provider, c.Counter.Window, false)
		if i < len(found) {
			found[i] = ctr
		}
		lim, ok := p.limit(c)
		if !ok {
			continue
		}
		var used int64
		if ctr != nil {
			used = ctr.committed + ctr.held + ctr.arrears
		}
		if used+req.Amount.Amount > lim.Amount {
			unclaim()
			return Hold{}, false, &CapError{Counter: c.Counter, Limit: lim, Used: used, Requested: req.Amount.Amount}
		}
	}
	if assign {
		sh.holds = append(sh.holds, mh)
	} else if _, ok := index(s, s.holdIDs, req.HoldID).putIfAbsent(req.HoldID, mh); !ok {
		unclaim()
		return Hold{}, false, errorf(ErrInvalidRequest, "hold id %q already exists", req.HoldID)
	}
	for i, c := range req.Checks {
		var ctr *memCounter
		if i < len(found) {
			ctr = found[i]
		}
		if ctr == nil {
			ctr = p.counter(c.Counter.Provider, c.Counter.Window, true)
		}
		ctr.held += req.Amount.Amount
		mh.counters = append(mh.counters, ctr)
	}
	heap.Push(&p.active, mh)
	return mh.h, false, nil
}

// assignsHoldIDs tells a Ledger to leave ReserveRequest.HoldID empty: the
// store's own ids find a hold without an index.
func (s *MemoryStore) assignsHoldIDs() {}

// slotID names the hold at position pos of shard idx.
func (s *MemoryStore) slotID(idx, pos int) string {
	var b [64]byte
	out := append(b[:0], s.idPrefix...)
	out = strconv.AppendUint(out, uint64(idx), 36)
	out = append(out, '.')
	out = strconv.AppendUint(out, uint64(pos), 36)
	return string(out)
}

// find returns the hold with id with its shard locked, or nil.
func (s *MemoryStore) find(id string) *memHold {
	if rest, ok := strings.CutPrefix(id, s.idPrefix); ok {
		a, b, ok := strings.Cut(rest, ".")
		idx, err1 := strconv.ParseUint(a, 36, 32)
		pos, err2 := strconv.ParseUint(b, 36, 62)
		if !ok || err1 != nil || err2 != nil || idx >= uint64(len(s.projects)) {
			return nil
		}
		sh := &s.projects[idx]
		sh.mu.Lock()
		// The id must be exactly the one assigned (no leading zeros…).
		if pos < uint64(len(sh.holds)) && sh.holds[pos].h.ID == id {
			return sh.holds[pos]
		}
		sh.mu.Unlock()
		return nil
	}
	mh, ok := index(s, s.holdIDs, id).get(id)
	if !ok {
		return nil
	}
	mh.shard.mu.Lock()
	return mh
}

// replayHold answers a reservation whose key exists. The stored hold may
// belong to another shard, so only immutable fields are read unless it is in
// the caller's (locked) project.
func replayHold(mh *memHold, req *ReserveRequest) (Hold, bool, error) {
	if mh.hash != req.RequestHash || mh.h.Scope != req.Scope {
		return Hold{}, false, errorf(ErrIdempotencyConflict, "idempotency key %q was used for a different request", req.Key)
	}
	return mh.h, true, nil
}

// Transition implements Store.
func (s *MemoryStore) Transition(ctx context.Context, req *TransitionRequest) (Hold, error) {
	if err := ctx.Err(); err != nil {
		return Hold{}, err
	}
	mh := s.find(req.HoldID)
	if mh == nil {
		return Hold{}, errorf(ErrHoldNotFound, "no hold %q", req.HoldID)
	}
	defer mh.shard.mu.Unlock()
	p := mh.shard.project(mh.h.Scope.Project, false)
	if mh.h.State == HoldActive && !req.Now.Before(mh.h.ExpiresAt) {
		p.active.remove(mh)
		mh.end(HoldExpired, mh.h.ExpiresAt)
	}
	switch {
	case mh.h.State == req.To:
		if req.To == HoldCommitted && req.Actual.Amount != mh.h.Committed.Amount {
			return mh.h, errorf(ErrIdempotencyConflict, "hold %q was committed with %d, not %d", req.HoldID, mh.h.Committed.Amount, req.Actual.Amount)
		}
		return mh.h, nil
	case mh.h.State == HoldExpired:
		return mh.h, errorf(ErrHoldExpired, "hold %q expired at %s", req.HoldID, mh.h.ExpiresAt.Format(time.RFC3339Nano))
	case mh.h.State != req.From:
		return mh.h, errorf(ErrHoldEnded, "hold %q is %s", req.HoldID, mh.h.State)
	}
	switch {
	case req.From == HoldActive && req.To == HoldCommitted:
		if req.Actual.Amount < 0 || req.Actual.Amount > mh.h.Amount.Amount {
			return mh.h, errorf(ErrInvalidAmount, "commit of %d exceeds the %d held", req.Actual.Amount, mh.h.Amount.Amount)
		}
		p.active.remove(mh)
		mh.end(HoldCommitted, req.Now)
		mh.h.Committed = Money{Amount: req.Actual.Amount, Currency: mh.h.Amount.Currency}
		for _, c := range mh.counters {
			c.committed += req.Actual.Amount
		}
	case req.From == HoldActive && req.To == HoldReleased:
		p.active.remove(mh)
		mh.end(HoldReleased, req.Now)
	case req.From == HoldCommitted && req.To == HoldReversed:
		for _, c := range mh.counters {
			c.committed -= mh.h.Committed.Amount
		}
		mh.h.State = HoldReversed
		mh.h.Reason = req.Reason
	default:
		return mh.h, errorf(ErrInvalidRequest, "no transition %s → %s", req.From, req.To)
	}
	return mh.h, nil
}

// Hold implements Store.
func (s *MemoryStore) Hold(ctx context.Context, id string) (Hold, error) {
	if err := ctx.Err(); err != nil {
		return Hold{}, err
	}
	mh := s.find(id)
	if mh == nil {
		return Hold{}, errorf(ErrHoldNotFound, "no hold %q", id)
	}
	defer mh.shard.mu.Unlock()
	return mh.h, nil
}

// ApplyUsage implements Store.
func (s *MemoryStore) ApplyUsage(ctx context.Context, req *UsageRequest) (UsageEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return UsageEntry{}, false, err
	}
	for _, c := range req.Counters {
		if c.Project != req.Scope.Project || (c.Provider != "" && c.Provider != req.Scope.Provider) {
			return UsageEntry{}, false, errorf(ErrInvalidRequest, "counter %v is outside scope %v", c, req.Scope)
		}
	}
	sh := s.shard(req.Scope.Project)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	mu := &memUsage{
		e: UsageEntry{Key: req.Key, Scope: req.Scope, Service: req.Service, Amount: req.Amount,
			At: req.At, RecordedAt: req.Now},
		hash: req.RequestHash,
	}
	if old, ok := index(s, s.useKeys, req.Key).putIfAbsent(req.Key, mu); !ok {
		if old.hash != req.RequestHash || old.e.Scope != req.Scope {
			return UsageEntry{}, false, errorf(ErrIdempotencyConflict, "usage key %q was used for a different report", req.Key)
		}
		return old.e, true, nil
	}
	p := sh.project(req.Scope.Project, true)
	for _, c := range req.Counters {
		p.counter(c.Provider, c.Window, true).arrears += req.Amount.Amount
	}
	return mu.e, false, nil
}

// SetCap implements Store.
func (s *MemoryStore) SetCap(ctx context.Context, rec CapRecord) (CapRecord, error) {
	if err := ctx.Err(); err != nil {
		return CapRecord{}, err
	}
	sh := s.shard(rec.Key.Project)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := sh.project(rec.Key.Project, true)
	rec.Previous = nil
	if old, ok := p.caps[rec.Key]; ok {
		rec.Previous = &old
	}
	p.caps[rec.Key] = rec.Limit
	p.history = append(p.history, rec)
	return rec, nil
}

// CapHistory implements Store.
func (s *MemoryStore) CapHistory(ctx context.Context, project string) ([]CapRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := s.shard(project)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := sh.project(project, false)
	if p == nil {
		return nil, nil
	}
	out := make([]CapRecord, len(p.history))
	for i, r := range p.history {
		if r.Previous != nil {
			m := *r.Previous
			r.Previous = &m
		}
		out[i] = r
	}
	return out, nil
}

// Usage implements Store.
func (s *MemoryStore) Usage(ctx context.Context, checks []CapCheck, now time.Time) ([]CounterUsage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]CounterUsage, len(checks))
	// Counters of one project share a shard: read them under one lock so
	// that they form one snapshot.
	var sh *memShard
	defer func() {
		if sh != nil {
			sh.mu.Unlock()
		}
	}()
	for i, c := range checks {
		if next := s.shard(c.Counter.Project); next != sh {
			if sh != nil {
				sh.mu.Unlock()
			}
			sh = next
			sh.mu.Lock()
		}
		out[i] = CounterUsage{Counter: c.Counter, Limit: c.Default}
		if p := sh.project(c.Counter.Project, false); p != nil {
			p.expire(now)
			if m, ok := p.limit(c); ok {
				out[i].Limit = &m
			}
			if ctr := p.counter(c.Counter.Provider, c.Counter.Window, false); ctr != nil {
				out[i].Committed, out[i].Held, out[i].Arrears = ctr.committed, ctr.held, ctr.arrears
			}
		}
		if out[i].Limit != nil {
			m := *out[i].Limit
			out[i].Limit = &m
		}
	}
	return out, nil
}

// Windows implements Store.
func (s *MemoryStore) Windows(ctx context.Context, project, provider string, period Period, now time.Time) ([]CounterUsage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := s.shard(project)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := sh.project(project, false)
	if p == nil || p.scopes[provider] == nil {
		return nil, nil
	}
	p.expire(now)
	var out []CounterUsage
	prefix := string(period) + ":"
	for w, c := range p.scopes[provider].windows {
		if !strings.HasPrefix(string(w), prefix) {
			continue
		}
		u := CounterUsage{Counter: Counter{Project: project, Provider: provider, Window: w},
			Committed: c.committed, Held: c.held, Arrears: c.arrears}
		if m, ok := p.caps[CapKey{Project: project, Provider: provider, Period: period}]; ok {
			u.Limit = &m
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b CounterUsage) int {
		return strings.Compare(string(a.Counter.Window), string(b.Counter.Window))
	})
	return out, nil
}

// MarkAlert implements Store.
func (s *MemoryStore) MarkAlert(ctx context.Context, key string, at time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.alertsMu.Lock()
	defer s.alertsMu.Unlock()
	if _, ok := s.alerts[key]; ok {
		return false, nil
	}
	s.alerts[key] = at
	return true, nil
}

// holdHeap orders active holds by expiry.
type holdHeap []*memHold

func (h holdHeap) Len() int           { return len(h) }
func (h holdHeap) Less(i, j int) bool { return h[i].h.ExpiresAt.Before(h[j].h.ExpiresAt) }
func (h holdHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *holdHeap) Push(x any) {
	mh := x.(*memHold)
	mh.heapIdx = len(*h)
	*h = append(*h, mh)
}
func (h *holdHeap) Pop() any {
	old := *h
	mh := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	mh.heapIdx = -1
	return mh
}

func (h *holdHeap) remove(mh *memHold) {
	if mh.heapIdx >= 0 && mh.heapIdx < len(*h) && (*h)[mh.heapIdx] == mh {
		heap.Remove(h, mh.heapIdx)
	}
}
