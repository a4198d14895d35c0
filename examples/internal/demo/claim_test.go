package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/agentprov/agentprov/internal/sqltest"
)

// testClaims runs the reservation rules against one ResourceStore.
func testClaims(t *testing.T, s ResourceStore) {
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	fp, _ := AddFingerprint("registrar/registrar:domain", json.RawMessage(`{"domain":"a.dev"}`))
	claim := func(owner, fp, service string, at time.Time) (*Claimed, error) {
		return s.Claim(ctx, Claim{Project: "p", Name: "site", Service: service, Fingerprint: fp,
			Key: "key-" + owner, Owner: owner, Now: at, Until: at.Add(10 * time.Second)})
	}
	// Many at once: exactly one reservation.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[string]bool{}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("o", i)
			got, err := claim(owner, fp, "registrar/registrar:domain", now)
			var nc *NameConflictError
			switch {
			case err == nil && got.Fresh && got.Key == "key-"+owner:
				mu.Lock()
				won[owner] = true
				mu.Unlock()
			case errors.As(err, &nc) && errors.Is(err, ErrExists) && nc.InFlight && nc.SameRequest && nc.State == StatusPending:
			default:
				t.Errorf("claim %s: %+v %v", owner, got, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("winners: %v", won)
	}
	var winner string
	for o := range won {
		winner = o
	}
	if r, err := s.Get(ctx, "p", "site"); err != nil || r.Status != StatusPending {
		t.Fatalf("pending record: %+v %v", r, err)
	}
	// Renewed, the lease holds past its first end; released, a retry of
	// the same add takes over with the stored key; another add never.
	if err := s.Renew(ctx, "p", "site", winner, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := claim("late", fp, "registrar/registrar:domain", now.Add(30*time.Second)); !errors.Is(err, ErrExists) {
		t.Fatalf("claim during a renewed lease: %v", err)
	}
	if err := s.Release(ctx, "p", "site", winner); err != nil {
		t.Fatal(err)
	}
	other, _ := AddFingerprint("cloud/compute:small", nil)
	var nc *NameConflictError
	if _, err := claim("other", other, "cloud/compute:small", now); !errors.As(err, &nc) || nc.SameRequest || nc.InFlight {
		t.Fatalf("claim by another add: %v", err)
	}
	got, err := claim("retry", fp, "registrar/registrar:domain", now)
	if err != nil || got.Fresh || got.Key != "key-"+winner {
		t.Fatalf("retry: %+v %v", got, err)
	}
	if err := s.Renew(ctx, "p", "site", winner, now.Add(time.Minute)); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewal by the previous holder: %v", err)
	}
	// Abandon only by the holder; done, the name is taken for good.
	if err := s.Abandon(ctx, "p", "site", winner); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "p", "site"); err != nil {
		t.Fatalf("abandoned by a non-holder: %v", err)
	}
	if err := s.Put(ctx, Resource{ID: "res_1", Service: "registrar/registrar:domain", Name: "site", Project: "p", Status: "active", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := claim("after", fp, "registrar/registrar:domain", now.Add(time.Hour)); !errors.As(err, &nc) || nc.State != "active" {
		t.Fatalf("claim of a finished name: %v", err)
	}
	if err := s.Abandon(ctx, "p", "site", "retry"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(ctx, "p", "site"); err != nil || r.Status != "active" {
		t.Fatalf("an active record was abandoned: %+v %v", r, err)
	}
	// A fresh reservation given back frees the name.
	if _, err := s.Claim(ctx, Claim{Project: "p", Name: "tmp", Service: "x/y", Fingerprint: fp, Key: "k", Owner: "t", Now: now, Until: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, "p", "tmp", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "p", "tmp"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abandoned reservation: %v", err)
	}
}

func TestMemoryResourcesClaim(t *testing.T) { testClaims(t, NewMemoryResources()) }

func TestSQLResourcesClaim(t *testing.T) {
	db := sqltest.SQLite(t, sqltest.SQLitePath(t))
	s, err := NewSQLResources(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	testClaims(t, s)
}

// A table made before reservations gains their columns; its resources
// keep their names.
func TestSQLResourcesMigrates(t *testing.T) {
	ctx := context.Background()
	path := sqltest.SQLitePath(t)
	db := sqltest.SQLite(t, path)
	if _, err := db.ExecContext(ctx, `CREATE TABLE demo_resources (
		project TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL,
		PRIMARY KEY (project, name))`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO demo_resources VALUES ('p', 'vm', '2026-01-01T00:00:00.000000000Z', '{"name":"vm","service":"cloud/compute:small","status":"active"}')`); err != nil {
		t.Fatal(err)
	}
	var s *SQLResources
	var err error
	for range 2 { // twice: the second finds the columns
		if s, err = NewSQLResources(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	_, err = s.Claim(ctx, Claim{Project: "p", Name: "vm", Service: "cloud/compute:small", Fingerprint: "f", Key: "k", Owner: "o", Now: now, Until: now.Add(time.Second)})
	var nc *NameConflictError
	if !errors.As(err, &nc) || nc.State != "active" {
		t.Fatalf("claim of an old resource's name: %v", err)
	}
}
