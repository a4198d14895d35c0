package authztest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
)

// AccountHarness is what an AccountStore implementation hands the suite.
type AccountHarness struct {
	// Store is a fresh, empty store.
	Store provision.AccountStore
	// Seed inserts an account that predates the protocol: no linked
	// identity. It must fail with provision.ErrEmailTaken on a used email.
	Seed func(ctx context.Context, acct provision.Account) error
	// Reopen, when set, returns a new store over the same data (a process
	// restart); the suite then checks durability.
	Reopen func(ctx context.Context) (provision.AccountStore, error)
}

// AccountHarnessMaker builds a fresh harness for one subtest.
type AccountHarnessMaker func(ctx context.Context, t *testing.T) (*AccountHarness, error)

// TokenHarness is what a TokenStore implementation hands the suite.
type TokenHarness struct {
	// Store is a fresh, empty store.
	Store provision.TokenStore
	// Reopen, when set, returns a new store over the same data.
	Reopen func(ctx context.Context) (provision.TokenStore, error)
}

// ExpiredTokenDeleter is the optional clean-up capability of a token
// store; RunTokenStore checks it when the store has it.
type ExpiredTokenDeleter interface {
	DeleteExpired(ctx context.Context, before time.Time) (int64, error)
}

// TokenHarnessMaker builds a fresh harness for one subtest.
type TokenHarnessMaker func(ctx context.Context, t *testing.T) (*TokenHarness, error)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func acct(id, email string) provision.Account {
	return provision.Account{ID: id, Email: email, Name: "User " + id, CreatedAt: t0}
}

// RunAccountStore runs the AccountStore conformance suite. Every subtest is
// parallel and gets its own harness.
func RunAccountStore(t *testing.T, mk AccountHarnessMaker) {
	t.Run("CreateThenFind", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		id := provision.UserRef{Issuer: "https://orch.example", Subject: "u1"}
		got, created, err := h.Store.CreateIfAbsent(ctx, acct("acct_1", "Alice@Example.com"), id)
		if err != nil || !created {
			t.Fatalf("CreateIfAbsent = %v, created=%v; want created", err, created)
		}
		if got.ID != "acct_1" || got.Email != "alice@example.com" {
			t.Fatalf("created %+v; want id acct_1, normalized email", got)
		}
		for name, find := range map[string]func() (*provision.Account, error){
			"subject": func() (*provision.Account, error) { return h.Store.FindBySubject(ctx, id) },
			"email":   func() (*provision.Account, error) { return h.Store.FindByEmail(ctx, " ALICE@example.COM") },
		} {
			a, err := find()
			if err != nil {
				t.Fatalf("find by %s: %v", name, err)
			}
			if a.ID != "acct_1" || !a.CreatedAt.Equal(t0) || a.Name != "User acct_1" {
				t.Fatalf("find by %s = %+v", name, a)
			}
			if len(a.Users) != 1 || a.Users[0] != id {
				t.Fatalf("find by %s identities = %v, want [%v]", name, a.Users, id)
			}
		}
		again, created, err := h.Store.CreateIfAbsent(ctx, acct("acct_2", "other@example.com"), id)
		if err != nil || created || again.ID != "acct_1" {
			t.Fatalf("second CreateIfAbsent = %+v, %v, %v; want existing acct_1", again, created, err)
		}
		if _, err := h.Store.FindByEmail(ctx, "other@example.com"); !errors.Is(err, provision.ErrAccountNotFound) {
			t.Fatalf("second create must not write: FindByEmail err = %v", err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if _, err := h.Store.FindBySubject(ctx, provision.UserRef{Issuer: "i", Subject: "s"}); !errors.Is(err, provision.ErrAccountNotFound) {
			t.Fatalf("FindBySubject err = %v, want ErrAccountNotFound", err)
		}
		if _, err := h.Store.FindByEmail(ctx, "nobody@example.com"); !errors.Is(err, provision.ErrAccountNotFound) {
			t.Fatalf("FindByEmail err = %v, want ErrAccountNotFound", err)
		}
		if _, err := h.Store.LinkSubject(ctx, "acct_missing", provision.UserRef{Issuer: "i", Subject: "s"}); !errors.Is(err, provision.ErrAccountNotFound) {
			t.Fatalf("LinkSubject err = %v, want ErrAccountNotFound", err)
		}
		err := h.Store.AttachConsent(ctx, "acct_missing", provision.ConsentRecord{TermsVersion: "1", Receipt: "r", AcceptedAt: t0})
		if !errors.Is(err, provision.ErrAccountNotFound) {
			t.Fatalf("AttachConsent err = %v, want ErrAccountNotFound", err)
		}
	})

	t.Run("EmailTakenCreatesNothing", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Seed(ctx, acct("acct_old", "bob@example.com")); err != nil {
			t.Fatal(err)
		}
		id := provision.UserRef{Issuer: "https://orch.example", Subject: "bob"}
		_, created, err := h.Store.CreateIfAbsent(ctx, acct("acct_new", "BOB@example.com"), id)
		if !errors.Is(err, provision.ErrEmailTaken) || created {
			t.Fatalf("CreateIfAbsent = created %v, err %v; want ErrEmailTaken", created, err)
		}
		if _, err := h.Store.FindBySubject(ctx, id); !errors.Is(err, provision.ErrAccountNotFound) {
			t.Fatalf("identity must stay unlinked, FindBySubject err = %v", err)
		}
		if err := h.Seed(ctx, acct("acct_dup", "bob@example.com")); !errors.Is(err, provision.ErrEmailTaken) {
			t.Fatalf("Seed on used email err = %v, want ErrEmailTaken", err)
		}
	})

	t.Run("LinkSubjectCAS", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Seed(ctx, acct("acct_a", "a@example.com")); err != nil {
			t.Fatal(err)
		}
		if err := h.Seed(ctx, acct("acct_b", "b@example.com")); err != nil {
			t.Fatal(err)
		}
		id := provision.UserRef{Issuer: "https://orch.example", Subject: "sa"}
		if linked, err := h.Store.LinkSubject(ctx, "acct_a", id); err != nil || !linked {
			t.Fatalf("first link = %v, %v; want linked", linked, err)
		}
		if linked, err := h.Store.LinkSubject(ctx, "acct_a", id); err != nil || linked {
			t.Fatalf("repeat link = %v, %v; want no-op", linked, err)
		}
		if _, err := h.Store.LinkSubject(ctx, "acct_b", id); !errors.Is(err, provision.ErrAlreadyLinked) {
			t.Fatalf("link elsewhere err = %v, want ErrAlreadyLinked", err)
		}
		a, err := h.Store.FindBySubject(ctx, id)
		if err != nil || a.ID != "acct_a" {
			t.Fatalf("FindBySubject = %+v, %v; want acct_a", a, err)
		}
		// A second orchestrator may be linked to the same account.
		id2 := provision.UserRef{Issuer: "https://other.example", Subject: "sa"}
		if linked, err := h.Store.LinkSubject(ctx, "acct_a", id2); err != nil || !linked {
			t.Fatalf("second identity link = %v, %v", linked, err)
		}
		a, _ = h.Store.FindByEmail(ctx, "a@example.com")
		if len(a.Users) != 2 {
			t.Fatalf("identities = %v, want 2", a.Users)
		}
		// CreateIfAbsent on a linked identity returns the linked account.
		got, created, err := h.Store.CreateIfAbsent(ctx, acct("acct_x", "x@example.com"), id2)
		if err != nil || created || got.ID != "acct_a" {
			t.Fatalf("CreateIfAbsent on linked identity = %+v, %v, %v", got, created, err)
		}
	})

	t.Run("Consent", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		id := provision.UserRef{Issuer: "https://orch.example", Subject: "c"}
		a := acct("acct_c", "c@example.com")
		a.Consents = []provision.ConsentRecord{{TermsVersion: "2026-01", AcceptedAt: t0, Receipt: "eyJ.receipt.1"}}
		if _, _, err := h.Store.CreateIfAbsent(ctx, a, id); err != nil {
			t.Fatal(err)
		}
		rec := provision.ConsentRecord{TermsVersion: "2026-05", AcceptedAt: t0.Add(time.Hour), Receipt: "eyJ.receipt.2"}
		if err := h.Store.AttachConsent(ctx, "acct_c", rec); err != nil {
			t.Fatal(err)
		}
		got, err := h.Store.FindBySubject(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Consents) != 2 || got.Consents[0].Receipt != "eyJ.receipt.1" || got.Consents[1].TermsVersion != "2026-05" ||
			!got.Consents[1].AcceptedAt.Equal(rec.AcceptedAt) {
			t.Fatalf("consents = %+v", got.Consents)
		}
		if err := h.Store.AttachConsent(ctx, "acct_c", provision.ConsentRecord{}); !errors.Is(err, provision.ErrInvalidAccount) {
			t.Fatalf("empty consent err = %v, want ErrInvalidAccount", err)
		}
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		id := provision.UserRef{Issuer: "i", Subject: "s"}
		cases := []struct {
			a  provision.Account
			id provision.UserRef
		}{
			{acct("", "e@example.com"), id},
			{acct("acct_1", " "), id},
			{acct("acct_1", "e@example.com"), provision.UserRef{Issuer: "i"}},
			{acct("acct_1", "e@example.com"), provision.UserRef{Subject: "s"}},
		}
		for i, c := range cases {
			if _, _, err := h.Store.CreateIfAbsent(ctx, c.a, c.id); !errors.Is(err, provision.ErrInvalidAccount) {
				t.Errorf("case %d: err = %v, want ErrInvalidAccount", i, err)
			}
		}
		if _, err := h.Store.FindByEmail(ctx, "e@example.com"); !errors.Is(err, provision.ErrAccountNotFound) {
			t.Fatalf("invalid input wrote an account: %v", err)
		}
	})

	t.Run("ConcurrentCreateSameIdentity", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		id := provision.UserRef{Issuer: "https://orch.example", Subject: "race"}
		const n = 64
		var createdN atomic.Int32
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				a, created, err := h.Store.CreateIfAbsent(ctx, acct(fmt.Sprintf("acct_%d", i), "race@example.com"), id)
				if err != nil {
					errs[i] = err
					return
				}
				if created {
					createdN.Add(1)
				}
				ids[i] = a.ID
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("goroutine %d: %v", i, err)
			}
		}
		if createdN.Load() != 1 {
			t.Fatalf("%d accounts created, want exactly 1", createdN.Load())
		}
		for i := range ids {
			if ids[i] != ids[0] {
				t.Fatalf("goroutine %d got account %s, goroutine 0 got %s", i, ids[i], ids[0])
			}
		}
	})

	t.Run("ConcurrentCreateSameEmail", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		const n = 64
		var createdN, taken atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				id := provision.UserRef{Issuer: fmt.Sprintf("https://orch%d.example", i), Subject: "same"}
				_, created, err := h.Store.CreateIfAbsent(ctx, acct(fmt.Sprintf("acct_%d", i), "same@example.com"), id)
				switch {
				case errors.Is(err, provision.ErrEmailTaken):
					taken.Add(1)
				case err != nil:
					t.Errorf("goroutine %d: %v", i, err)
				case created:
					createdN.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if createdN.Load() != 1 || taken.Load() != n-1 {
			t.Fatalf("created %d, email taken %d; want 1 and %d", createdN.Load(), taken.Load(), n-1)
		}
	})

	t.Run("Model", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		runAccountModel(ctx, t, h)
	})

	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if h.Reopen == nil {
			t.Skip("harness has no Reopen")
		}
		id := provision.UserRef{Issuer: "https://orch.example", Subject: "d"}
		if _, _, err := h.Store.CreateIfAbsent(ctx, acct("acct_d", "d@example.com"), id); err != nil {
			t.Fatal(err)
		}
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s2.FindBySubject(ctx, id)
		if err != nil || a.ID != "acct_d" {
			t.Fatalf("after reopen FindBySubject = %+v, %v", a, err)
		}
	})
}

func tok(secret, account, issuer string) provision.IssuedToken {
	return provision.IssuedToken{
		Hash:      authz.HashToken(secret),
		AccountID: account,
		User:      provision.UserRef{Issuer: issuer, Subject: "sub-" + account},
		Scopes:    []string{"dns:write", "zones:read"},
		Service:   "example/dns",
		Project:   "proj_1",
		IssuedAt:  t0,
		ExpiresAt: t0.Add(time.Hour),
	}
}

// RunTokenStore runs the TokenStore conformance suite. Every subtest is
// parallel and gets its own harness.
func RunTokenStore(t *testing.T, mk TokenHarnessMaker) {
	const iss = "https://orch.example"

	t.Run("PutLookup", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		want := tok("s1", "acct_1", iss)
		if err := h.Store.Put(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := h.Store.Lookup(ctx, authz.HashToken("s1"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash != want.Hash || got.AccountID != want.AccountID || got.User != want.User ||
			len(got.Scopes) != 2 || got.Scopes[0] != "dns:write" || got.Scopes[1] != "zones:read" ||
			got.Service != want.Service || got.Project != want.Project ||
			!got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || got.Revoked() {
			t.Fatalf("Lookup = %+v, want %+v", got, want)
		}
		if err := h.Store.Put(ctx, tok("s1", "acct_2", iss)); !errors.Is(err, provision.ErrTokenExists) {
			t.Fatalf("duplicate Put err = %v, want ErrTokenExists", err)
		}
		got, _ = h.Store.Lookup(ctx, authz.HashToken("s1"))
		if got.AccountID != "acct_1" {
			t.Fatalf("duplicate Put overwrote: %+v", got)
		}
		if _, err := h.Store.Lookup(ctx, authz.HashToken("nope")); !errors.Is(err, provision.ErrTokenNotFound) {
			t.Fatalf("Lookup unknown err = %v, want ErrTokenNotFound", err)
		}
	})

	t.Run("InvalidRecord", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		bad := []provision.IssuedToken{tok("a", "", iss), tok("b", "acct", "")}
		noHash := tok("c", "acct", iss)
		noHash.Hash = authz.TokenHash{}
		noExp := tok("d", "acct", iss)
		noExp.ExpiresAt = time.Time{}
		badScope := tok("e", "acct", iss)
		badScope.Scopes = []string{"two words"}
		bad = append(bad, noHash, noExp, badScope)
		for i, b := range bad {
			if err := h.Store.Put(ctx, b); !errors.Is(err, provision.ErrInvalidTokenRecord) {
				t.Errorf("case %d: err = %v, want ErrInvalidTokenRecord", i, err)
			}
		}
	})

	t.Run("RevokeIdempotentAndIssuerBound", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Store.Put(ctx, tok("s", "acct_1", iss)); err != nil {
			t.Fatal(err)
		}
		hs := authz.HashToken("s")
		if ok, err := h.Store.Revoke(ctx, hs, "https://evil.example", t0); err != nil || ok {
			t.Fatalf("revoke by other issuer = %v, %v; want no-op", ok, err)
		}
		if got, _ := h.Store.Lookup(ctx, hs); got.Revoked() {
			t.Fatal("other issuer revoked the token")
		}
		at := t0.Add(time.Minute)
		if ok, err := h.Store.Revoke(ctx, hs, iss, at); err != nil || !ok {
			t.Fatalf("revoke = %v, %v; want revoked", ok, err)
		}
		if ok, err := h.Store.Revoke(ctx, hs, iss, at.Add(time.Hour)); err != nil || ok {
			t.Fatalf("second revoke = %v, %v; want no-op", ok, err)
		}
		got, _ := h.Store.Lookup(ctx, hs)
		if !got.Revoked() || !got.RevokedAt.Equal(at) {
			t.Fatalf("RevokedAt = %v, want first revocation time %v", got.RevokedAt, at)
		}
		if ok, err := h.Store.Revoke(ctx, authz.HashToken("unknown"), iss, at); err != nil || ok {
			t.Fatalf("revoke unknown = %v, %v; want no-op without error", ok, err)
		}
	})

	t.Run("RevokeAccount", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		for _, tk := range []provision.IssuedToken{
			tok("a1", "acct_a", iss), tok("a2", "acct_a", iss), tok("a3", "acct_a", "https://other.example"),
			tok("b1", "acct_b", iss),
		} {
			if err := h.Store.Put(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.Store.Revoke(ctx, authz.HashToken("a2"), iss, t0); err != nil {
			t.Fatal(err)
		}
		n, err := h.Store.RevokeAccount(ctx, "acct_a", iss, t0.Add(time.Second))
		if err != nil || n != 1 {
			t.Fatalf("RevokeAccount = %d, %v; want 1 (a2 already revoked)", n, err)
		}
		want := map[string]bool{"a1": true, "a2": true, "a3": false, "b1": false}
		for s, revoked := range want {
			got, err := h.Store.Lookup(ctx, authz.HashToken(s))
			if err != nil {
				t.Fatal(err)
			}
			if got.Revoked() != revoked {
				t.Errorf("token %s revoked = %v, want %v", s, got.Revoked(), revoked)
			}
		}
		if n, err := h.Store.RevokeAccount(ctx, "acct_a", iss, t0.Add(2*time.Second)); err != nil || n != 0 {
			t.Fatalf("repeat RevokeAccount = %d, %v; want 0", n, err)
		}
	})

	t.Run("DeleteExpired", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		del, ok := h.Store.(ExpiredTokenDeleter)
		if !ok {
			t.Skip("store has no DeleteExpired")
		}
		old := tok("old", "acct_e", iss) // expires t0+1h
		young := tok("young", "acct_e", iss)
		young.ExpiresAt = t0.Add(48 * time.Hour)
		for _, tk := range []provision.IssuedToken{old, young} {
			if err := h.Store.Put(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		n, err := del.DeleteExpired(ctx, t0.Add(24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
		}
		if _, err := h.Store.Lookup(ctx, authz.HashToken("old")); !errors.Is(err, provision.ErrTokenNotFound) {
			t.Fatalf("expired token still there: %v", err)
		}
		if _, err := h.Store.Lookup(ctx, authz.HashToken("young")); err != nil {
			t.Fatalf("live token deleted: %v", err)
		}
	})

	t.Run("ConcurrentRevoke", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if err := h.Store.Put(ctx, tok("c", "acct_c", iss)); err != nil {
			t.Fatal(err)
		}
		const n = 32
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := h.Store.Revoke(ctx, authz.HashToken("c"), iss, t0.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Errorf("revoke %d: %v", i, err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d revocations reported success, want exactly 1", wins.Load())
		}
	})

	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if h.Reopen == nil {
			t.Skip("harness has no Reopen")
		}
		if err := h.Store.Put(ctx, tok("d", "acct_d", iss)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Store.Revoke(ctx, authz.HashToken("d"), iss, t0); err != nil {
			t.Fatal(err)
		}
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s2.Lookup(ctx, authz.HashToken("d"))
		if err != nil || !got.Revoked() {
			t.Fatalf("after reopen = %+v, %v; want revoked token", got, err)
		}
	})
}

// runAccountModel drives the store with random operation sequences and
// compares every answer with a plain map model. Each sequence uses names no
// other sequence uses, so one store serves all of them.
func runAccountModel(ctx context.Context, t *testing.T, h *AccountHarness) {
	var run atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		ns := fmt.Sprintf("m%d-", run.Add(1))
		users := make([]provision.UserRef, 4)
		for i := range users {
			users[i] = provision.UserRef{Issuer: fmt.Sprintf("https://%so%d.example", ns, i%2), Subject: fmt.Sprintf("s%d", i/2)}
		}
		emails := []string{ns + "a@example.com", ns + "b@example.com", ns + "c@example.com"}
		byUser := map[provision.UserRef]string{}
		byEmail := map[string]string{}
		var ids []string
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for step := range steps {
			u := users[rapid.IntRange(0, len(users)-1).Draw(rt, "user")]
			email := emails[rapid.IntRange(0, len(emails)-1).Draw(rt, "email")]
			switch op := rapid.IntRange(0, 2).Draw(rt, "op"); op {
			case 0: // create
				id := fmt.Sprintf("acct_%s%d", ns, step)
				got, created, err := h.Store.CreateIfAbsent(ctx, acct(id, email), u)
				switch want, linked := byUser[u]; {
				case linked:
					if err != nil || created || got.ID != want {
						rt.Fatalf("create for linked %v = %v, %v, %v; want %s", u, got, created, err, want)
					}
				case byEmail[email] != "":
					if !errors.Is(err, provision.ErrEmailTaken) {
						rt.Fatalf("create with taken email = %v, %v", created, err)
					}
				default:
					if err != nil || !created || got.ID != id {
						rt.Fatalf("create = %v, %v, %v", got, created, err)
					}
					byUser[u], byEmail[email] = id, id
					ids = append(ids, id)
				}
			case 1: // seed
				id := fmt.Sprintf("acct_%s%d", ns, step)
				err := h.Seed(ctx, acct(id, email))
				if byEmail[email] != "" {
					if !errors.Is(err, provision.ErrEmailTaken) {
						rt.Fatalf("seed on taken email: %v", err)
					}
					continue
				}
				if err != nil {
					rt.Fatalf("seed: %v", err)
				}
				byEmail[email] = id
				ids = append(ids, id)
			case 2: // link
				if len(ids) == 0 {
					continue
				}
				target := ids[rapid.IntRange(0, len(ids)-1).Draw(rt, "target")]
				linked, err := h.Store.LinkSubject(ctx, target, u)
				switch cur, ok := byUser[u]; {
				case !ok:
					if err != nil || !linked {
						rt.Fatalf("link = %v, %v", linked, err)
					}
					byUser[u] = target
				case cur == target:
					if err != nil || linked {
						rt.Fatalf("relink = %v, %v", linked, err)
					}
				default:
					if !errors.Is(err, provision.ErrAlreadyLinked) {
						rt.Fatalf("link elsewhere = %v, %v", linked, err)
					}
				}
			}
			for _, u := range users {
				got, err := h.Store.FindBySubject(ctx, u)
				want, ok := byUser[u]
				if ok != (err == nil) || (ok && got.ID != want) {
					rt.Fatalf("FindBySubject(%v) = %v, %v; model %q", u, got, err, want)
				}
			}
			for _, e := range emails {
				got, err := h.Store.FindByEmail(ctx, e)
				want := byEmail[e]
				if (want != "") != (err == nil) || (want != "" && got.ID != want) {
					rt.Fatalf("FindByEmail(%s) = %v, %v; model %q", e, got, err, want)
				}
			}
		}
	})
}
