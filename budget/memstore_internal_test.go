package budget

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newTestHold(t testing.TB) (*MemoryStore, Hold) {
	s := NewMemoryStore(&MemoryStoreOptions{Shards: 4})
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	l, err := NewLedger(s, &LedgerOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Reserve(context.Background(), Scope{Project: "p", Provider: "acme"}, USD(5), "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, h
}

// Ids the store assigns are found by position; anything not exactly such
// an id is not found, and never finds another hold.
func TestMemoryStoreAssignedIDs(t *testing.T) {
	s, h := newTestHold(t)
	if !strings.HasPrefix(h.ID, s.idPrefix) {
		t.Fatalf("id %q was not assigned by the store (prefix %q)", h.ID, s.idPrefix)
	}
	if got, err := s.Hold(context.Background(), h.ID); err != nil || got.ID != h.ID {
		t.Fatalf("Hold(%q) = %+v, %v", h.ID, got, err)
	}
	rest := strings.TrimPrefix(h.ID, s.idPrefix)
	shard, pos, _ := strings.Cut(rest, ".")
	for _, bad := range []string{
		s.idPrefix, s.idPrefix + shard, s.idPrefix + shard + ".", s.idPrefix + shard + ".0" + pos,
		s.idPrefix + "0" + shard + "." + pos, s.idPrefix + shard + "." + pos + "0", s.idPrefix + "zz." + pos,
		s.idPrefix + shard + ".-1", s.idPrefix + shard + ".+0", s.idPrefix + shard + "." + pos + ".0",
		strings.ToUpper(h.ID), h.ID + " ", "hold_x." + rest,
	} {
		if bad == h.ID {
			continue
		}
		if got, err := s.Hold(context.Background(), bad); !errors.Is(err, ErrHoldNotFound) {
			t.Errorf("Hold(%q) = %+v, %v; want ErrHoldNotFound", bad, got, err)
		}
	}
}

func FuzzMemoryStoreHoldID(f *testing.F) {
	s, h := newTestHold(f)
	f.Add(h.ID)
	f.Add(h.ID + "0")
	f.Add(s.idPrefix + "1.0")
	f.Add("hold_")
	f.Fuzz(func(t *testing.T, id string) {
		got, err := s.Hold(context.Background(), id)
		switch {
		case err == nil && got.ID != id:
			t.Fatalf("Hold(%q) found %q", id, got.ID)
		case err != nil && !errors.Is(err, ErrHoldNotFound):
			t.Fatalf("Hold(%q): %v", id, err)
		case err != nil && id == h.ID:
			t.Fatalf("Hold(%q) lost the hold", id)
		}
	})
}

// The key index is an open-addressing table: keys whose hashes are equal
// must still be told apart, and every key must survive the table growing.
func TestMemKeyIndex(t *testing.T) {
	x := memKeyIndex{tab: make([]memKeySlot, 16)}
	const n = 1000
	holds := make([]memHold, n)
	for i := range holds {
		holds[i].key = "k" + strconv.Itoa(i)
		h := uint64(i%7) << 32 // few distinct hashes: long collision runs
		if got, free := x.find(h, holds[i].key); got != nil {
			t.Fatalf("key %q found before insertion", holds[i].key)
		} else {
			x.insert(free, h, &holds[i])
		}
	}
	if x.used != n || len(x.tab)&(len(x.tab)-1) != 0 || x.used*4 >= len(x.tab)*3 {
		t.Fatalf("used %d of %d slots", x.used, len(x.tab))
	}
	for i := range holds {
		if got, _ := x.find(uint64(i%7)<<32, holds[i].key); got != &holds[i] {
			t.Fatalf("key %q: found %v", holds[i].key, got)
		}
		if got, _ := x.find(uint64(i%7)<<32, holds[i].key+"x"); got != nil {
			t.Fatalf("key %q found for %q", got.key, holds[i].key+"x")
		}
	}
}

// Ids are lower-case hex without leading zeros: one hold, one id.
func TestParseHex(t *testing.T) {
	for s, want := range map[string]uint64{"0": 0, "9": 9, "a": 10, "f0": 240, "ffffffff": 1<<32 - 1} {
		if got, ok := parseHex(s); !ok || got != want {
			t.Errorf("parseHex(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "00", "01", "A", "fG", "-1", "+1", "100000000", " 1", "0x1"} {
		if got, ok := parseHex(s); ok {
			t.Errorf("parseHex(%q) = %d; want refusal", s, got)
		}
	}
}

// Under a Ledger the store gets no request hash and compares the fields a
// hash covers itself; a request that carries a hash never matches a hold
// stored without one.
func TestMemoryStoreMatchesRequests(t *testing.T) {
	s, h := newTestHold(t)
	ctx := context.Background()
	req := func(hash string, amount int64, service string) *ReserveRequest {
		return &ReserveRequest{Key: h.Key, Scope: h.Scope, Service: service, Amount: USD(amount),
			Now: h.CreatedAt, ExpiresAt: h.ExpiresAt, RequestHash: hash}
	}
	if got, replayed, err := s.Reserve(ctx, req("", h.Amount.Amount, "")); err != nil || !replayed || got.ID != h.ID {
		t.Fatalf("same fields: %+v, %v, %v; want a replay of %s", got, replayed, err, h.ID)
	}
	for name, r := range map[string]*ReserveRequest{
		"amount":  req("", h.Amount.Amount+1, ""),
		"service": req("", h.Amount.Amount, "registrar:domain"),
		"hash":    req("x", h.Amount.Amount, ""),
	} {
		if _, _, err := s.Reserve(ctx, r); !errors.Is(err, ErrIdempotencyConflict) {
			t.Errorf("other %s: %v; want ErrIdempotencyConflict", name, err)
		}
	}
}
