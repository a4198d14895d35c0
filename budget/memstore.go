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
// a commit finds its hold without a global index, and it compares a replayed
// reservation with the stored hold field by field instead of by a hash.
//
// A MemoryStore is safe for concurrent use.
type MemoryStore struct {
	seed     maphash.Seed
	idPrefix string
	projects []memShard            // by project
	holdIDs  []memIndex[*memHold]  // hold id → hold, for ids the caller chose
	holdKeys []memKeyIndex         // idempotency key → hold
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

// holdChunk is how many holds a shard allocates at once. Holds are kept
// for the life of the store, so allocating them in blocks loses nothing
// and spares the allocator and the collector one object per hold.
const holdChunk = 128

type memShard struct {
	mu       sync.Mutex
	idx      int
	projects map[string]*memProject
	// last is the project found last: reservations come in runs on one
	// project, and comparing its name is cheaper than the map.
	last *memProject
	// holds are the shard's holds by position, in chunks that never move;
	// the first n are in use. An id the store assigned names its shard and
	// position, so finding it needs no index.
	holds [][]memHold
	n     int
	// 64 bytes in all: one cache line per shard.
}

// slot returns the hold at position pos, which may be n (the next free
// slot, allocated here when needed).
func (sh *memShard) slot(pos int) *memHold {
	i := pos / holdChunk
	if i == len(sh.holds) {
		sh.holds = append(sh.holds, make([]memHold, holdChunk))
	}
	return &sh.holds[i][pos%holdChunk]
}

type memIndex[V any] struct {
	mu sync.Mutex
	m  map[string]V
	_  [48]byte
}

// memKeyIndex finds holds by idempotency key, in an open-addressing table
// keyed by the key's 64-bit hash (whose low bits also pick the index
// shard). Keys are never removed — nothing is inserted before a
// reservation has passed every check — so the table needs no tombstones and
// one linear probe both finds a key and the place to insert it. Growing
// rehashes nothing: the hash is stored. Keys whose hashes collide simply
// occupy further slots; a hit compares the key itself.
type memKeyIndex struct {
	mu   sync.Mutex
	tab  []memKeySlot // power-of-two length; a nil hold marks a free slot
	used int
	_    [24]byte
}

type memKeySlot struct {
	h  uint64
	mh *memHold
}

// find returns the hold with key k (hash h), or nil and the free slot where
// it would go. The caller holds x.mu.
func (x *memKeyIndex) find(h uint64, k string) (*memHold, int) {
	mask := len(x.tab) - 1
	// The low bits chose the index shard: probe from the high ones.
	for i := int(h>>32) & mask; ; i = (i + 1) & mask {
		s := &x.tab[i]
		if s.mh == nil {
			return nil, i
		}
		if s.h == h && s.mh.key == k {
			return s.mh, i
		}
	}
}

// insert puts mh (key hash h) in the free slot i that find returned. The
// caller holds x.mu.
func (x *memKeyIndex) insert(i int, h uint64, mh *memHold) {
	x.tab[i] = memKeySlot{h: h, mh: mh}
	x.used++
	if x.used*4 >= len(x.tab)*3 { // at most 3/4 full keeps probes short
		old := x.tab
		x.tab = make([]memKeySlot, 2*len(old))
		mask := len(x.tab) - 1
		for _, s := range old {
			if s.mh == nil {
				continue
			}
			j := int(s.h>>32) & mask
			for x.tab[j].mh != nil {
				j = (j + 1) & mask
			}
			x.tab[j] = s
		}
	}
}

type memProject struct {
	// The fields a reservation reads come first, to share cache lines.

	// lastScope caches the scope of lastProvider: checks come grouped by
	// provider, so most lookups skip the map.
	lastScope    *memScope
	lastProvider string
	// lastSet is the counter set of the latest hold: holds placed in the
	// same scope and windows share it. The first set is set0.
	lastSet *memCounterSet
	caps    map[CapKey]Money // nil until a cap is set
	active  holdHeap         // active holds by expiry, in activeInline while few
	// first is the first provider's scope and whole is scopes[""], kept in
	// the project so that a reservation finds its project, scopes and
	// current counters in one place in memory rather than nine.
	first, whole memScope
	set0         memCounterSet
	// activeInline backs active while it is short, so that placing and
	// ending a hold touch no memory outside the project.
	activeInline [4]*memHold
	name         string
	shard        *memShard
	scopes       map[string]*memScope // by provider; "" is project-wide
	history      []CapRecord
	// reasons are the reasons given for reversals, which are rare.
	reasons map[*memHold]string
}

type memScope struct {
	windows map[Window]*memCounter // nil until the scope is created
	cur     [3]*memCounter         // the latest counter per period: the hot path
	// inline holds the scope's first counters, next to it in memory.
	inline [3]memCounter
	used   int
}

func (sc *memScope) init() { sc.windows = map[Window]*memCounter{} }

func (sc *memScope) newCounter(w Window) *memCounter {
	var c *memCounter
	if sc.used < len(sc.inline) {
		c = &sc.inline[sc.used]
		sc.used++
		c.window = w
	} else {
		c = &memCounter{window: w}
	}
	sc.windows[w] = c
	return c
}

type memCounter struct {
	window                   Window
	committed, held, arrears int64
}

// memCounterSet is the counters a hold counts in, with the hold's provider
// and currency, which holds placed together share too. It never changes
// once built, so holds share it, and it is set before the hold is
// published.
type memCounterSet struct {
	provider, currency string
	c                  []*memCounter
	inline             [6]*memCounter // backs c in the common case: one allocation
}

// memHold is a hold as stored. It is kept compact, since every hold is
// kept for replays: the project name is the project's, the provider, the
// currency and the counters are in a shared set, the state is a byte, an
// assigned id is its position and rarely set strings live in extra.
//
// Once a hold is published in the key index, reservations in other shards
// read its key, amount, set, proj and extra: those never change.
type memHold struct {
	key                           string
	amount                        int64
	committed                     int64 // the committed amount (committed and reversed holds)
	createdAt, expiresAt, endedAt time.Time
	extra                         *memHoldExtra // nil when all its fields are empty
	set                           *memCounterSet
	proj                          *memProject
	pos                           uint32 // position in the shard
	heapIdx                       int32  // index in proj.active, -1 when not in it
	state                         memState
}

// memHoldExtra is what most holds leave empty.
type memHoldExtra struct {
	service, memo, hash string
	// id is the id the caller chose; "" when the store assigned it.
	id string
}

// memState is a HoldState in a byte.
type memState uint8

const (
	memActive memState = iota
	memCommitted
	memReleased
	memExpired
	memReversed
)

var memStates = [...]HoldState{HoldActive, HoldCommitted, HoldReleased, HoldExpired, HoldReversed}

func memStateOf(s HoldState) (memState, bool) {
	for i, n := range memStates {
		if n == s {
			return memState(i), true
		}
	}
	return 0, false
}

func (mh *memHold) scope() Scope { return Scope{Project: mh.proj.name, Provider: mh.set.provider} }

func (mh *memHold) hash() string {
	if mh.extra == nil {
		return ""
	}
	return mh.extra.hash
}

// hold returns mh as a Hold with id. The caller holds mh's shard lock.
func (mh *memHold) hold(id string) Hold {
	h := Hold{
		ID: id, Key: mh.key, Scope: mh.scope(),
		Amount:    Money{Amount: mh.amount, Currency: mh.set.currency},
		Committed: Money{Amount: mh.committed, Currency: mh.set.currency},
		State:     memStates[mh.state],
		CreatedAt: mh.createdAt, ExpiresAt: mh.expiresAt, EndedAt: mh.endedAt,
	}
	if x := mh.extra; x != nil {
		h.Service, h.Memo = x.service, x.memo
	}
	if mh.state == memReversed {
		h.Reason = mh.proj.reasons[mh]
	}
	return h
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
		holdKeys: make([]memKeyIndex, n),
		useKeys:  make([]memIndex[*memUsage], n),
		alerts:   map[string]time.Time{},
	}
	for i := 0; i < n; i++ {
		s.projects[i].projects = map[string]*memProject{}
		s.projects[i].idx = i
		s.holdIDs[i].m = map[string]*memHold{}
		s.holdKeys[i].tab = make([]memKeySlot, 16)
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
	if p := sh.last; p != nil && p.name == name {
		return p
	}
	p := sh.projects[name]
	if p == nil && create {
		p = &memProject{name: name, shard: sh, scopes: map[string]*memScope{}}
		p.active = p.activeInline[:0]
		sh.projects[name] = p
	}
	if p != nil {
		sh.last = p
	}
	return p
}

func (p *memProject) scope(provider string, create bool) *memScope {
	if provider == "" {
		if p.whole.windows == nil {
			if !create {
				return nil
			}
			p.whole.init()
			p.scopes[""] = &p.whole
		}
		return &p.whole
	}
	if p.lastScope != nil && p.lastProvider == provider {
		return p.lastScope
	}
	sc := p.scopes[provider]
	if sc == nil {
		if !create {
			return nil
		}
		if p.first.windows == nil {
			sc = &p.first
		} else {
			sc = &memScope{}
		}
		sc.init()
		p.scopes[provider] = sc
	}
	p.lastScope, p.lastProvider = sc, provider
	return sc
}

func (p *memProject) counter(provider string, w Window, create bool) *memCounter {
	sc := p.scope(provider, create)
	if sc == nil {
		return nil
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
		c = sc.newCounter(w)
	}
	sc.cur[slot] = c
	return c
}

// counterSet returns a set of the counters cs for provider and currency,
// sharing the latest one when it is the same.
func (p *memProject) counterSet(provider, currency string, cs []*memCounter) *memCounterSet {
	if last := p.lastSet; last != nil && last.provider == provider && last.currency == currency && slices.Equal(last.c, cs) {
		return last
	}
	set := &p.set0
	if set.c != nil {
		set = &memCounterSet{}
	}
	set.provider, set.currency = provider, currency
	set.c = append(set.inline[:0], cs...)
	p.lastSet = set
	return set
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
	for len(p.active) > 0 && !now.Before(p.active[0].expiresAt) {
		mh := heap.Pop(&p.active).(*memHold)
		mh.finish(memExpired, mh.expiresAt)
	}
}

// finish moves an active hold out of the held sums.
func (mh *memHold) finish(to memState, at time.Time) {
	for _, c := range mh.set.c {
		c.held -= mh.amount
	}
	mh.state = to
	mh.endedAt = at
}

// limit returns the cap in force for c; the stored cap wins over the default.
func (p *memProject) limit(c CapCheck) (Money, bool) {
	if p.caps != nil {
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
	var extra *memHoldExtra
	if req.Service != "" || req.Memo != "" || req.RequestHash != "" || req.HoldID != "" {
		extra = &memHoldExtra{service: req.Service, memo: req.Memo, hash: req.RequestHash, id: req.HoldID}
	}
	kh := maphash.String(s.seed, req.Key)
	keys := &s.holdKeys[kh&uint64(len(s.holdKeys)-1)]
	sh := s.shard(req.Scope.Project)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// The key index stays locked (after the shard: the lock order) from
	// the look-up to the insertion, so that the key is claimed in one step
	// and yet nothing is published before every check has passed. A
	// replay is answered before any check.
	keys.mu.Lock()
	v, free := keys.find(kh, req.Key)
	if v != nil {
		keys.mu.Unlock()
		return s.replayHold(v, req)
	}
	p := sh.project(req.Scope.Project, true)
	p.expire(req.Now)
	var buf [2 * len(periods)]*memCounter
	found := buf[:0] // counters the checks found, reused below
	for _, c := range req.Checks {
		ctr := p.counter(c.Counter.Provider, c.Counter.Window, false)
		found = append(found, ctr)
		lim, ok := p.limit(c)
		if !ok {
			continue
		}
		var used int64
		if ctr != nil {
			used = ctr.committed + ctr.held + ctr.arrears
		}
		if used+req.Amount.Amount > lim.Amount {
			keys.mu.Unlock()
			return Hold{}, false, &CapError{Counter: c.Counter, Limit: lim, Used: used, Requested: req.Amount.Amount}
		}
	}
	// The next slot is unused until sh.n counts it.
	mh := sh.slot(sh.n)
	// The slot is zero (fresh, or cleared below): setting the fields
	// one by one spares copying a whole hold.
	mh.key, mh.amount, mh.createdAt, mh.expiresAt = req.Key, req.Amount.Amount, req.Now, req.ExpiresAt
	mh.extra, mh.proj, mh.pos, mh.heapIdx, mh.state = extra, p, uint32(sh.n), -1, memActive
	if req.HoldID != "" {
		// Found by this id, the hold is read under the shard lock held
		// here, so its set may come after.
		if _, ok := index(s, s.holdIDs, req.HoldID).putIfAbsent(req.HoldID, mh); !ok {
			keys.mu.Unlock()
			*mh = memHold{}
			return Hold{}, false, errorf(ErrInvalidRequest, "hold id %q already exists", req.HoldID)
		}
	}
	// Nothing can fail now. The counters are created, and the set built,
	// before the key is published: replays in other shards read the set.
	for i, c := range req.Checks {
		ctr := found[i]
		if ctr == nil {
			ctr = p.counter(c.Counter.Provider, c.Counter.Window, true)
			found[i] = ctr
		}
		ctr.held += req.Amount.Amount
	}
	mh.set = p.counterSet(req.Scope.Provider, req.Amount.Currency, found)
	keys.insert(free, kh, mh)
	keys.mu.Unlock()
	sh.n++
	heap.Push(&p.active, mh)
	return mh.hold(s.holdID(mh)), false, nil
}

// assignsHoldIDs tells a Ledger to leave ReserveRequest.HoldID empty: the
// store's own ids find a hold without an index.
func (s *MemoryStore) assignsHoldIDs() {}

// matchesRequests tells a Ledger to leave ReserveRequest.RequestHash empty:
// this store keeps every field the hash covers and compares them on a
// replay, exactly and without hashing. A request with a hash is matched by
// its hash, as the Store contract says.
func (s *MemoryStore) matchesRequests() {}

// holdID returns the id of mh: the caller's, or the one the store assigned.
func (s *MemoryStore) holdID(mh *memHold) string {
	if mh.extra != nil && mh.extra.id != "" {
		return mh.extra.id
	}
	var b [64]byte
	return string(s.appendSlotID(b[:0], mh.proj.shard.idx, int(mh.pos)))
}

// appendSlotID appends the id of the hold at position pos of shard idx.
func (s *MemoryStore) appendSlotID(b []byte, idx, pos int) []byte {
	b = append(b, s.idPrefix...)
	b = strconv.AppendUint(b, uint64(idx), 16)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(pos), 16)
}

// find returns the hold with id with its shard locked, or nil.
func (s *MemoryStore) find(id string) *memHold {
	if rest, ok := strings.CutPrefix(id, s.idPrefix); ok {
		a, b, ok := strings.Cut(rest, ".")
		idx, ok1 := parseHex(a)
		pos, ok2 := parseHex(b)
		if !ok || !ok1 || !ok2 || idx >= uint64(len(s.projects)) {
			return nil
		}
		sh := &s.projects[idx]
		sh.mu.Lock()
		// The hold must be one whose id the store assigned.
		if pos < uint64(sh.n) {
			if mh := sh.slot(int(pos)); mh.extra == nil || mh.extra.id == "" {
				return mh
			}
		}
		sh.mu.Unlock()
		return nil
	}
	mh, ok := index(s, s.holdIDs, id).get(id)
	if !ok {
		return nil
	}
	mh.proj.shard.mu.Lock()
	return mh
}

// parseHex parses s as appendSlotID writes numbers: 1–8 lower-case hex
// digits without leading zeros, so that a hold has exactly one id.
func parseHex(s string) (uint64, bool) {
	if s == "" || len(s) > 8 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// replayHold answers a reservation whose key exists. The stored hold may
// belong to another shard, so only immutable fields are read unless it is in
// the caller's (locked) project.
func (s *MemoryStore) replayHold(mh *memHold, req *ReserveRequest) (Hold, bool, error) {
	if mh.proj.name != req.Scope.Project || mh.set.provider != req.Scope.Provider || mh.hash() != req.RequestHash ||
		(req.RequestHash == "" && !mh.sameRequest(req)) {
		return Hold{}, false, errorf(ErrIdempotencyConflict, "idempotency key %q was used for a different request", req.Key)
	}
	return mh.hold(s.holdID(mh)), true, nil
}

// sameRequest compares what a Ledger's request hash covers (scope, service
// and amount) with the request directly: a Ledger sends no hash to this
// store (see matchesRequests).
func (mh *memHold) sameRequest(req *ReserveRequest) bool {
	var service string
	if mh.extra != nil {
		service = mh.extra.service
	}
	return mh.scope() == req.Scope && mh.amount == req.Amount.Amount && mh.set.currency == req.Amount.Currency && service == req.Service
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
	h, err := mh.transition(req)
	mh.proj.shard.mu.Unlock()
	return h, err
}

// transition is Transition on a found hold, under its shard lock.
func (mh *memHold) transition(req *TransitionRequest) (Hold, error) {
	p := mh.proj
	if mh.state == memActive && !req.Now.Before(mh.expiresAt) {
		p.active.remove(mh)
		mh.finish(memExpired, mh.expiresAt)
	}
	from, okFrom := memStateOf(req.From)
	to, okTo := memStateOf(req.To)
	switch {
	case okTo && mh.state == to:
		if to == memCommitted && req.Actual.Amount != mh.committed {
			return mh.hold(req.HoldID), errorf(ErrIdempotencyConflict, "hold %q was committed with %d, not %d", req.HoldID, mh.committed, req.Actual.Amount)
		}
		return mh.hold(req.HoldID), nil
	case mh.state == memExpired:
		return mh.hold(req.HoldID), errorf(ErrHoldExpired, "hold %q expired at %s", req.HoldID, mh.expiresAt.Format(time.RFC3339Nano))
	case !okFrom || mh.state != from:
		return mh.hold(req.HoldID), errorf(ErrHoldEnded, "hold %q is %s", req.HoldID, memStates[mh.state])
	}
	switch {
	case from == memActive && to == memCommitted && okTo:
		if req.Actual.Amount < 0 || req.Actual.Amount > mh.amount {
			return mh.hold(req.HoldID), errorf(ErrInvalidAmount, "commit of %d exceeds the %d held", req.Actual.Amount, mh.amount)
		}
		p.active.remove(mh)
		mh.finish(memCommitted, req.Now)
		mh.committed = req.Actual.Amount
		for _, c := range mh.set.c {
			c.committed += req.Actual.Amount
		}
	case from == memActive && to == memReleased && okTo:
		p.active.remove(mh)
		mh.finish(memReleased, req.Now)
	case from == memCommitted && to == memReversed && okTo:
		for _, c := range mh.set.c {
			c.committed -= mh.committed
		}
		mh.state = memReversed
		if req.Reason != "" {
			if p.reasons == nil {
				p.reasons = map[*memHold]string{}
			}
			p.reasons[mh] = req.Reason
		}
	default:
		return mh.hold(req.HoldID), errorf(ErrInvalidRequest, "no transition %s → %s", req.From, req.To)
	}
	return mh.hold(req.HoldID), nil
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
	h := mh.hold(id)
	mh.proj.shard.mu.Unlock()
	return h, nil
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
	if p.caps == nil {
		p.caps = map[CapKey]Money{}
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
func (h holdHeap) Less(i, j int) bool { return h[i].expiresAt.Before(h[j].expiresAt) }
func (h holdHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}
func (h *holdHeap) Push(x any) {
	mh := x.(*memHold)
	mh.heapIdx = int32(len(*h))
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
	if i := int(mh.heapIdx); i >= 0 && i < len(*h) && (*h)[i] == mh {
		heap.Remove(h, i)
	}
}
