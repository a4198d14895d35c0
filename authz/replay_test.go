package authz_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/internal/authztesting"
	"github.com/agentprov/agentprov/internal/clock"
)

func TestMemoryReplayStore(t *testing.T) {
	authztest.RunReplayStore(t, func(ctx context.Context, t *testing.T) (*authztest.ReplayHarness, error) {
		s := authz.NewMemoryReplayStore(nil)
		return &authztest.ReplayHarness{
			Store:  s,
			Reopen: func(context.Context) (authz.ReplayStore, error) { return s, nil },
		}, nil
	})
}

func TestMemoryReplayStoreIsBounded(t *testing.T) {
	clk := clock.NewFake(idT0)
	s := authz.NewMemoryReplayStore(&authz.MemoryReplayStoreOptions{MaxEntries: 64, Clock: clk.Now})
	ctx := context.Background()
	full := 0
	for i := range 1000 {
		_, err := s.PutIfAbsent(ctx, fmt.Sprint("id-", i), idT0.Add(time.Minute))
		if err != nil {
			authztesting.WantErr(t, err, authz.ErrReplayStoreFull)
			full++
		}
	}
	if full == 0 || s.Len() > 64 {
		t.Fatalf("store grew to %d entries, %d refusals", s.Len(), full)
	}
	// Once the entries expire they make room again.
	clk.Advance(2 * time.Minute)
	for i := range 64 {
		if ok, err := s.PutIfAbsent(ctx, fmt.Sprint("new-", i), idT0.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("after expiry: %v, %v", ok, err)
		}
	}
	if s.Len() > 64 {
		t.Fatalf("store holds %d entries, bound 64", s.Len())
	}
}
