package authztest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz/provision"
)

// GrantHarness is what a GrantStore implementation hands the suite. The
// store must read the real clock: the suite uses expiries a minute in the
// past or an hour in the future.
type GrantHarness struct {
	// Store is a fresh, empty store.
	Store provision.GrantStore
	// Reopen, when set, returns a new store over the same data.
	Reopen func(ctx context.Context) (provision.GrantStore, error)
}

// GrantHarnessMaker builds a fresh harness for one subtest.
type GrantHarnessMaker func(ctx context.Context, t *testing.T) (*GrantHarness, error)

func deviceGrant(key, userCode string, exp time.Time) provision.Grant {
	return provision.Grant{
		Key: key, Kind: provision.GrantDevice, UserCode: userCode, ClientID: "https://orch.example",
		User:  provision.UserRef{Issuer: "https://orch.example", Subject: "u"},
		Email: "u@example.com", Name: "U", Service: "acme/dns", Project: "proj_1", Scope: "zones:read",
		ExpiresAt: exp.UTC().Truncate(time.Microsecond), Interval: 5 * time.Second, State: provision.GrantPending,
	}
}

// sameGrant compares everything but Version, times by instant.
func sameGrant(a, b *provision.Grant) bool {
	x, y := *a, *b
	if !x.ExpiresAt.Equal(y.ExpiresAt) || !x.LastPoll.Equal(y.LastPoll) {
		return false
	}
	x.Version, y.Version = 0, 0
	x.ExpiresAt, y.ExpiresAt, x.LastPoll, y.LastPoll = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return x == y
}

// RunGrantStore runs the GrantStore conformance suite. Every subtest is
// parallel and gets its own harness.
func RunGrantStore(t *testing.T, mk GrantHarnessMaker) {
	later := time.Now().Add(time.Hour)

	t.Run("PutGet", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		g := deviceGrant("k1", "BCDF-GHJK", later)
		if err := h.Store.Put(ctx, g); err != nil {
			t.Fatal(err)
		}
		for name, get := range map[string]func() (*provision.Grant, error){
			"key":       func() (*provision.Grant, error) { return h.Store.Get(ctx, "k1") },
			"user code": func() (*provision.Grant, error) { return h.Store.GetByUserCode(ctx, "BCDF-GHJK") },
		} {
			got, err := get()
			if err != nil || got.Version != 1 || !sameGrant(got, &g) {
				t.Fatalf("by %s = %+v, %v; want %+v at version 1", name, got, err, g)
			}
		}
		code := provision.Grant{Key: "k2", Kind: provision.GrantCode, ClientID: "c", RedirectURI: "http://127.0.0.1/cb",
			Challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", AccountID: "acct_1", State: provision.GrantApproved,
			ExpiresAt: later.UTC().Truncate(time.Microsecond)}
		if err := h.Store.Put(ctx, code); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Store.Get(ctx, "k2"); err != nil || !sameGrant(got, &code) {
			t.Fatalf("code grant = %+v, %v", got, err)
		}
		if err := h.Store.Put(ctx, deviceGrant("k1", "ZZZZ-ZZZZ", later)); !errors.Is(err, provision.ErrGrantExists) {
			t.Fatalf("same key err = %v, want ErrGrantExists", err)
		}
		if err := h.Store.Put(ctx, deviceGrant("k3", "BCDF-GHJK", later)); !errors.Is(err, provision.ErrGrantExists) {
			t.Fatalf("same user code err = %v, want ErrGrantExists", err)
		}
		if _, err := h.Store.Get(ctx, "k3"); !errors.Is(err, provision.ErrGrantNotFound) {
			t.Fatalf("refused Put wrote: %v", err)
		}
		if _, err := h.Store.GetByUserCode(ctx, ""); !errors.Is(err, provision.ErrGrantNotFound) {
			t.Fatalf("empty user code err = %v", err)
		}
	})

	t.Run("ExpiredReplaced", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Store.Put(ctx, deviceGrant("old", "MMMM-NNNN", time.Now().Add(-time.Minute))); err != nil {
			t.Fatal(err)
		}
		if err := h.Store.Put(ctx, deviceGrant("new", "MMMM-NNNN", later)); err != nil {
			t.Fatalf("user code of an expired grant not reusable: %v", err)
		}
		if g, err := h.Store.GetByUserCode(ctx, "MMMM-NNNN"); err != nil || g.Key != "new" {
			t.Fatalf("GetByUserCode = %+v, %v", g, err)
		}
	})

	t.Run("UpdateCAS", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Store.Put(ctx, deviceGrant("k", "PPPP-QQQQ", later)); err != nil {
			t.Fatal(err)
		}
		g, _ := h.Store.Get(ctx, "k")
		stale := *g
		g.State, g.AccountID = provision.GrantApproved, "acct_9"
		g.LastPoll = time.Now().UTC().Truncate(time.Microsecond)
		g.Interval = 10 * time.Second
		if err := h.Store.Update(ctx, *g); err != nil {
			t.Fatal(err)
		}
		got, err := h.Store.Get(ctx, "k")
		if err != nil || got.Version != 2 || !sameGrant(got, g) {
			t.Fatalf("after update = %+v, %v; want %+v at version 2", got, err, g)
		}
		if err := h.Store.Update(ctx, stale); !errors.Is(err, provision.ErrGrantConflict) {
			t.Fatalf("stale update err = %v, want ErrGrantConflict", err)
		}
		missing := deviceGrant("nope", "", later)
		missing.Version = 1
		if err := h.Store.Update(ctx, missing); !errors.Is(err, provision.ErrGrantConflict) {
			t.Fatalf("update of missing grant err = %v, want ErrGrantConflict", err)
		}
	})

	t.Run("DeleteOnce", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Store.Put(ctx, deviceGrant("k", "RRRR-SSSS", later)); err != nil {
			t.Fatal(err)
		}
		if ok, err := h.Store.Delete(ctx, "k"); err != nil || !ok {
			t.Fatalf("Delete = %v, %v", ok, err)
		}
		if ok, err := h.Store.Delete(ctx, "k"); err != nil || ok {
			t.Fatalf("second Delete = %v, %v; want false", ok, err)
		}
		if _, err := h.Store.Get(ctx, "k"); !errors.Is(err, provision.ErrGrantNotFound) {
			t.Fatalf("Get after delete: %v", err)
		}
		if _, err := h.Store.GetByUserCode(ctx, "RRRR-SSSS"); !errors.Is(err, provision.ErrGrantNotFound) {
			t.Fatalf("GetByUserCode after delete: %v", err)
		}
	})

	t.Run("ConcurrentUpdateAndDelete", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Store.Put(ctx, deviceGrant("k", "TTTT-VVVV", later)); err != nil {
			t.Fatal(err)
		}
		g, _ := h.Store.Get(ctx, "k")
		const n = 32
		var updated, deleted atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := *g
				u.AccountID = "acct_" + string(rune('a'+i%26))
				switch err := h.Store.Update(ctx, u); {
				case err == nil:
					updated.Add(1)
				case !errors.Is(err, provision.ErrGrantConflict):
					t.Errorf("update: %v", err)
				}
			}()
		}
		wg.Wait()
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := h.Store.Delete(ctx, "k")
				if err != nil {
					t.Error(err)
				}
				if ok {
					deleted.Add(1)
				}
			}()
		}
		wg.Wait()
		if updated.Load() != 1 || deleted.Load() != 1 {
			t.Fatalf("%d updates and %d deletes won; want exactly one each", updated.Load(), deleted.Load())
		}
	})

	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if h.Reopen == nil {
			t.Skip("harness has no Reopen")
		}
		g := deviceGrant("k", "WWWW-XXXX", later)
		if err := h.Store.Put(ctx, g); err != nil {
			t.Fatal(err)
		}
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s2.GetByUserCode(ctx, "WWWW-XXXX"); err != nil || !sameGrant(got, &g) {
			t.Fatalf("after reopen = %+v, %v", got, err)
		}
	})
}
