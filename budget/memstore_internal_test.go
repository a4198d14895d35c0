package budget

import (
	"context"
	"errors"
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
