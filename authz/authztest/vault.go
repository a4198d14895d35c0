package authztest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/vault"
)

// VaultHarness is what a VaultStore implementation hands the suite.
type VaultHarness struct {
	// Store is a fresh, empty store.
	Store vault.VaultStore
	// Reopen, when set, returns a new store over the same data; the suite
	// then checks durability.
	Reopen func(ctx context.Context) (vault.VaultStore, error)
}

// VaultHarnessMaker builds a fresh harness for one subtest.
type VaultHarnessMaker func(ctx context.Context, t *testing.T) (*VaultHarness, error)

func vkey(project, provider, service string) vault.VaultKey {
	return vault.VaultKey{Project: project, Provider: provider, Service: service}
}

func wantCode(t *testing.T, what string, err error, sentinel *authz.Error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s: got error %v, want %s", what, err, sentinel.Code)
	}
}

func mustGet(ctx context.Context, t *testing.T, s vault.VaultStore, k vault.VaultKey, data []byte, version int64) {
	t.Helper()
	rec, err := s.Get(ctx, k)
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	if !bytes.Equal(rec.Data, data) || rec.Version != version {
		t.Fatalf("Get(%s) = %q v%d, want %q v%d", k, rec.Data, rec.Version, data, version)
	}
}

// RunVaultStore runs the VaultStore conformance suite: put, get, list and
// delete; versioning; compare-and-set conflicts; exactly one winner among
// concurrent compare-and-sets; no aliasing of data slices; and durability
// when the harness can reopen. Every subtest is parallel and gets its own
// harness.
func RunVaultStore(t *testing.T, mk VaultHarnessMaker) {
	k := vkey("proj-1", "neon", "postgres")

	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		_, err := h.Store.Get(ctx, k)
		wantCode(t, "Get of a missing key", err, vault.ErrCredentialNotFound)
	})

	t.Run("PutBumpsVersion", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		for i, d := range []string{"one", "two", "three"} {
			v, err := h.Store.Put(ctx, k, []byte(d))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if v != int64(i+1) {
				t.Fatalf("Put #%d returned version %d, want %d", i+1, v, i+1)
			}
			mustGet(ctx, t, h.Store, k, []byte(d), int64(i+1))
		}
	})

	t.Run("BinaryData", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		data := make([]byte, 512)
		for i := range data {
			data[i] = byte(i)
		}
		if _, err := h.Store.Put(ctx, k, data); err != nil {
			t.Fatalf("Put: %v", err)
		}
		mustGet(ctx, t, h.Store, k, data, 1)
	})

	t.Run("CompareAndSwap", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		_, err := h.Store.CompareAndSwap(ctx, k, 3, []byte("x"))
		wantCode(t, "CAS on a missing key", err, vault.ErrCredentialNotFound)
		v, err := h.Store.CompareAndSwap(ctx, k, 0, []byte("created"))
		if err != nil || v != 1 {
			t.Fatalf("create = %d, %v; want 1, nil", v, err)
		}
		_, err = h.Store.CompareAndSwap(ctx, k, 0, []byte("again"))
		wantCode(t, "create of an existing key", err, vault.ErrVersionConflict)
		v, err = h.Store.CompareAndSwap(ctx, k, 1, []byte("rotated"))
		if err != nil || v != 2 {
			t.Fatalf("CAS from 1 = %d, %v; want 2, nil", v, err)
		}
		_, err = h.Store.CompareAndSwap(ctx, k, 1, []byte("stale"))
		wantCode(t, "CAS from a stale version", err, vault.ErrVersionConflict)
		mustGet(ctx, t, h.Store, k, []byte("rotated"), 2)
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		wantCode(t, "Delete of a missing key", h.Store.Delete(ctx, k), vault.ErrCredentialNotFound)
		if _, err := h.Store.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := h.Store.Delete(ctx, k); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := h.Store.Get(ctx, k)
		wantCode(t, "Get after Delete", err, vault.ErrCredentialNotFound)
		wantCode(t, "second Delete", h.Store.Delete(ctx, k), vault.ErrCredentialNotFound)
		// A deleted key can be created again.
		if v, err := h.Store.CompareAndSwap(ctx, k, 0, []byte("y")); err != nil || v != 1 {
			t.Fatalf("re-create = %d, %v; want 1, nil", v, err)
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		keys := []vault.VaultKey{
			vkey("p", "neon", "postgres"),
			vkey("p", "cloudflare", "registrar:domain"),
			vkey("p", "cloudflare", "dns"),
			vkey("p", "cloudflare-2", "a"),
			vkey("other", "neon", "postgres"),
		}
		for _, key := range keys {
			if _, err := h.Store.Put(ctx, key, []byte(key.String())); err != nil {
				t.Fatal(err)
			}
		}
		got := func(project, provider string) []string {
			recs, err := h.Store.List(ctx, project, provider)
			if err != nil {
				t.Fatalf("List(%q, %q): %v", project, provider, err)
			}
			out := []string{}
			for _, r := range recs {
				if string(r.Data) != r.Key.String() || r.Version != 1 {
					t.Fatalf("List returned %s with data %q v%d", r.Key, r.Data, r.Version)
				}
				out = append(out, r.Key.String())
			}
			return out
		}
		for _, tc := range []struct {
			project, provider string
			want              []string
		}{
			{"p", "", []string{"p:cloudflare/dns", "p:cloudflare/registrar:domain", "p:cloudflare-2/a", "p:neon/postgres"}},
			{"p", "cloudflare", []string{"p:cloudflare/dns", "p:cloudflare/registrar:domain"}},
			{"other", "", []string{"other:neon/postgres"}},
			{"nobody", "", []string{}},
			{"p", "absent", []string{}},
		} {
			if g := got(tc.project, tc.provider); fmt.Sprint(g) != fmt.Sprint(tc.want) {
				t.Errorf("List(%q, %q) = %v, want %v", tc.project, tc.provider, g, tc.want)
			}
		}
	})

	t.Run("NoAliasing", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		data := []byte("secret")
		if _, err := h.Store.Put(ctx, k, data); err != nil {
			t.Fatal(err)
		}
		data[0] = 'X'
		rec, err := h.Store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		rec.Data[1] = 'Y'
		mustGet(ctx, t, h.Store, k, []byte("secret"), 1)
	})

	t.Run("ConcurrentCompareAndSwapExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if _, err := h.Store.Put(ctx, k, []byte("v1")); err != nil {
			t.Fatal(err)
		}
		const n = 50
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, err := h.Store.CompareAndSwap(ctx, k, 1, []byte(fmt.Sprintf("writer-%d", i)))
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, vault.ErrVersionConflict):
					t.Errorf("CAS: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d of %d concurrent compare-and-sets won, want exactly 1", wins.Load(), n)
		}
		rec, err := h.Store.Get(ctx, k)
		if err != nil || rec.Version != 2 {
			t.Fatalf("after the race: version %d, %v; want 2", rec.Version, err)
		}
	})

	t.Run("ConcurrentCreateExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		const n = 30
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				_, err := h.Store.CompareAndSwap(ctx, k, 0, []byte("mine"))
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, vault.ErrVersionConflict):
					t.Errorf("create: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d of %d concurrent creates won, want exactly 1", wins.Load(), n)
		}
	})

	t.Run("ConcurrentPutsLoseNoVersion", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		const n = 20
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := h.Store.Put(ctx, k, []byte(fmt.Sprint(i))); err != nil {
					t.Errorf("Put: %v", err)
				}
			})
		}
		wg.Wait()
		rec, err := h.Store.Get(ctx, k)
		if err != nil || rec.Version != n {
			t.Fatalf("after %d puts: version %d, %v", n, rec.Version, err)
		}
	})

	t.Run("Model", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		runVaultModel(ctx, t, h.Store)
	})

	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if h.Reopen == nil {
			t.Skip("harness cannot reopen")
		}
		if _, err := h.Store.Put(ctx, k, []byte("a")); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Store.CompareAndSwap(ctx, k, 1, []byte("b")); err != nil {
			t.Fatal(err)
		}
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		mustGet(ctx, t, s2, k, []byte("b"), 2)
		_, err = s2.CompareAndSwap(ctx, k, 1, []byte("stale"))
		wantCode(t, "stale CAS after reopen", err, vault.ErrVersionConflict)
	})
}

// runVaultModel drives the store with random operation sequences and
// compares every result with a map-based model. Each sequence works in its
// own project, so one store serves all of them.
func runVaultModel(ctx context.Context, t *testing.T, s vault.VaultStore) {
	type entry struct {
		data    string
		version int64
	}
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		project := fmt.Sprintf("model-%d", run)
		model := map[vault.VaultKey]entry{}
		keyGen := rapid.Custom(func(rt *rapid.T) vault.VaultKey {
			return vkey(project, rapid.SampledFrom([]string{"neon", "fly"}).Draw(rt, "provider"),
				rapid.SampledFrom([]string{"db", "app"}).Draw(rt, "service"))
		})
		// Short sequences keep the suite quick on durable (fsyncing) stores.
		ops := map[string]func(*rapid.T){
			"Put": func(rt *rapid.T) {
				k := keyGen.Draw(rt, "key")
				d := rapid.StringN(0, 8, 8).Draw(rt, "data")
				v, err := s.Put(ctx, k, []byte(d))
				if err != nil {
					rt.Fatalf("Put: %v", err)
				}
				want := model[k].version + 1
				if v != want {
					rt.Fatalf("Put version %d, model %d", v, want)
				}
				model[k] = entry{d, want}
			},
			"CompareAndSwap": func(rt *rapid.T) {
				k := keyGen.Draw(rt, "key")
				cur, ok := model[k]
				ver := rapid.Int64Range(0, cur.version+1).Draw(rt, "version")
				d := rapid.StringN(0, 8, 8).Draw(rt, "data")
				v, err := s.CompareAndSwap(ctx, k, ver, []byte(d))
				switch {
				case ok && ver == cur.version || !ok && ver == 0:
					if err != nil || v != ver+1 {
						rt.Fatalf("CAS(%d) = %d, %v; model wants success", ver, v, err)
					}
					model[k] = entry{d, ver + 1}
				case !ok:
					if !errors.Is(err, vault.ErrCredentialNotFound) {
						rt.Fatalf("CAS(%d) on a missing key = %v", ver, err)
					}
				default:
					if !errors.Is(err, vault.ErrVersionConflict) {
						rt.Fatalf("CAS(%d) at version %d = %v", ver, cur.version, err)
					}
				}
			},
			"Delete": func(rt *rapid.T) {
				k := keyGen.Draw(rt, "key")
				err := s.Delete(ctx, k)
				if _, ok := model[k]; ok {
					if err != nil {
						rt.Fatalf("Delete: %v", err)
					}
					delete(model, k)
				} else if !errors.Is(err, vault.ErrCredentialNotFound) {
					rt.Fatalf("Delete of a missing key = %v", err)
				}
			},
			"List": func(rt *rapid.T) {
				recs, err := s.List(ctx, project, "")
				if err != nil {
					rt.Fatalf("List: %v", err)
				}
				if len(recs) != len(model) {
					rt.Fatalf("List has %d records, model %d", len(recs), len(model))
				}
				for _, r := range recs {
					m, ok := model[r.Key]
					if !ok || m.data != string(r.Data) || m.version != r.Version {
						rt.Fatalf("record %s = %q v%d, model %+v", r.Key, r.Data, r.Version, m)
					}
				}
			},
		}
		for range rapid.IntRange(1, 10).Draw(rt, "steps") {
			ops[rapid.SampledFrom([]string{"Put", "CompareAndSwap", "Delete", "List"}).Draw(rt, "op")](rt)
		}
		ops["List"](rt)
	})
}
