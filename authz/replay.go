package authz

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/agentprov/agentprov/internal/clock"
)

// ReplayStore remembers single-use token ids until they expire.
//
// PutIfAbsent records id until expiresAt and reports true if id was not
// already recorded, or was recorded with an expiry at or before the store's
// current time (an expired entry is taken over). It reports false when id is
// recorded and still live. The check and the write are one atomic step: of
// any number of concurrent calls with the same live id, exactly one reports
// true. Implementations must be safe for concurrent use;
// authztest.RunReplayStore checks all of this.
type ReplayStore interface {
	PutIfAbsent(ctx context.Context, id string, expiresAt time.Time) (bool, error)
}

// MemoryReplayStoreOptions tune a MemoryReplayStore.
type MemoryReplayStoreOptions struct {
	// MaxEntries bounds the number of live ids held; default 1,000,000.
	// When full and nothing has expired, PutIfAbsent fails with
	// ErrReplayStoreFull: refusing tokens is safer than forgetting ids.
	MaxEntries int
	// Clock reads the time; default time.Now.
	Clock func() time.Time
}

// maxReplayShards bounds lock striping; small stores use fewer shards so
// that the per-shard bound stays close to MaxEntries/shards in practice.
const maxReplayShards = 32

// MemoryReplayStore is an in-process ReplayStore: a sharded map with lazy
// expiry (a shard is swept when it reaches its bound, and every few thousand
// inserts). It suits a single provider instance; several instances need a
// shared store such as authz/sqlstore. It is safe for concurrent use.
type MemoryReplayStore struct {
	now    clock.Func
	seed   maphash.Seed
	perCap int
	shards []replayShard
}

type replayShard struct {
	mu      sync.Mutex
	entries map[string]time.Time
	inserts int
}

// NewMemoryReplayStore returns an empty store. Nil options, and zero or
// negative values, mean the defaults.
func NewMemoryReplayStore(opts *MemoryReplayStoreOptions) *MemoryReplayStore {
	if opts == nil {
		opts = &MemoryReplayStoreOptions{}
	}
	max := opts.MaxEntries
	if max <= 0 {
		max = 1_000_000
	}
	n := min(maxReplayShards, 1+max/4096)
	per := (max + n - 1) / n
	s := &MemoryReplayStore{now: clock.Func(opts.Clock), seed: maphash.MakeSeed(), perCap: per, shards: make([]replayShard, n)}
	for i := range s.shards {
		s.shards[i].entries = make(map[string]time.Time)
	}
	return s
}

// PutIfAbsent implements ReplayStore.
func (s *MemoryReplayStore) PutIfAbsent(ctx context.Context, id string, expiresAt time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	sh := &s.shards[maphash.String(s.seed, id)%uint64(len(s.shards))]
	now := s.now.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if exp, ok := sh.entries[id]; ok && exp.After(now) {
		return false, nil
	}
	sh.inserts++
	if len(sh.entries) >= s.perCap || sh.inserts%4096 == 0 {
		sh.sweep(now)
	}
	if _, ok := sh.entries[id]; !ok && len(sh.entries) >= s.perCap {
		return false, errorf(ErrReplayStoreFull, nil, "replay store holds %d live ids", s.perCap*len(s.shards))
	}
	sh.entries[id] = expiresAt
	return true, nil
}

// Len reports the number of ids held, expired or not.
func (s *MemoryReplayStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

func (sh *replayShard) sweep(now time.Time) {
	for id, exp := range sh.entries {
		if !exp.After(now) {
			delete(sh.entries, id)
		}
	}
}
