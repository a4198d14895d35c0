package vault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/internal/clock"
)

// idT0 is the fixed "now" of the vault tests (the same instant as the
// identity tests in package authz).
var idT0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestMemoryVaultStore(t *testing.T) {
	authztest.RunVaultStore(t, func(ctx context.Context, t *testing.T) (*authztest.VaultHarness, error) {
		s := vault.NewMemoryVaultStore()
		return &authztest.VaultHarness{
			Store:  s,
			Reopen: func(context.Context) (vault.VaultStore, error) { return s, nil },
		}, nil
	})
}

const (
	secretAccess  = "at-very-secret-1234"
	secretRefresh = "rt-very-secret-5678"
	secretDB      = "postgres://u:pw-very-secret@db/x"
)

func idCredential() vault.Credential {
	return vault.Credential{
		Project:      "proj_1",
		Provider:     "neon",
		Service:      "postgres",
		AccessToken:  secretAccess,
		RefreshToken: secretRefresh,
		TokenType:    "Bearer",
		Expiry:       idT0.Add(time.Hour),
		Scopes:       []string{"projects:write"},
		Env:          map[string]vault.Secret{"DATABASE_URL": secretDB},
		AccountID:    "acct_42",
		LinkAction:   "created",
	}
}

func assertNoSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{secretAccess, secretRefresh, secretDB, "very-secret"} {
		if strings.Contains(out, s) {
			t.Fatalf("%s leaked a secret: %s", what, out)
		}
	}
	if !strings.Contains(out, "REDACTED") {
		t.Fatalf("%s shows no redaction marker: %s", what, out)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	c := idCredential()
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoSecrets(t, "credential "+f, fmt.Sprintf(f, c))
		assertNoSecrets(t, "pointer "+f, fmt.Sprintf(f, &c))
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		assertNoSecrets(t, "secret "+f, fmt.Sprintf(f, c.AccessToken))
	}
	assertNoSecrets(t, "String", c.AccessToken.String())
	assertNoSecrets(t, "Sprint", fmt.Sprint(c.AccessToken, c.Env))
	assertNoSecrets(t, "Errorf", fmt.Errorf("failed with %v", c).Error())
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, "JSON", string(b))
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(w *bytes.Buffer) slog.Handler { return slog.NewTextHandler(w, nil) },
		"slog JSON": func(w *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("stored", "token", c.AccessToken, "credential", c, "env", c.Env)
		assertNoSecrets(t, name, buf.String())
	}
	if c.AccessToken.Reveal() != secretAccess {
		t.Fatal("Reveal lost the value")
	}
	if fmt.Sprint(vault.Secret("")) != "" {
		t.Fatal("an empty secret should print empty")
	}
}

func newIDVault(t *testing.T, opts *vault.VaultOptions) (*vault.Vault, *vault.MemoryVaultStore) {
	t.Helper()
	s := vault.NewMemoryVaultStore()
	v, err := vault.NewVault(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

func TestVaultPutGetListDelete(t *testing.T) {
	v, _ := newIDVault(t, nil)
	ctx := context.Background()
	c := idCredential()
	if err := v.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(ctx, "proj_1", "neon/postgres")
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken.Reveal() != secretAccess || got.Env["DATABASE_URL"].Reveal() != secretDB ||
		!got.Expiry.Equal(c.Expiry) || got.AccountID != "acct_42" || got.LinkAction != "created" || got.Scopes[0] != "projects:write" {
		t.Fatalf("Get = %+v", got)
	}
	if err := v.Create(ctx, c); !errors.Is(err, vault.ErrVersionConflict) {
		t.Fatalf("Create over an existing credential: %v", err)
	}
	c2 := idCredential()
	c2.Provider, c2.Service = "cloudflare", "registrar:domain"
	if err := v.Create(ctx, c2); err != nil {
		t.Fatal(err)
	}
	c3 := idCredential()
	c3.Project = "proj_2"
	if err := v.Put(ctx, c3); err != nil {
		t.Fatal(err)
	}
	list, err := v.List(ctx, "proj_1", "")
	if err != nil || len(list) != 2 || list[0].Ref() != "cloudflare/registrar:domain" || list[1].Ref() != "neon/postgres" {
		t.Fatalf("List = %v, %v", list, err)
	}
	list, err = v.List(ctx, "proj_1", "neon")
	if err != nil || len(list) != 1 {
		t.Fatalf("List by provider = %v, %v", list, err)
	}
	if err := v.Delete(ctx, "proj_1", "neon/postgres"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, "proj_1", "neon/postgres"); !errors.Is(err, vault.ErrCredentialNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := v.Get(ctx, "proj_2", "neon/postgres"); err != nil {
		t.Fatalf("other project's credential lost: %v", err)
	}
}

func TestVaultRejectsBadInput(t *testing.T) {
	v, s := newIDVault(t, nil)
	ctx := context.Background()
	for name, mod := range map[string]func(*vault.Credential){
		"bad project":     func(c *vault.Credential) { c.Project = "a b" },
		"bad provider":    func(c *vault.Credential) { c.Provider = "Neon" },
		"bad service":     func(c *vault.Credential) { c.Service = "" },
		"bad env name":    func(c *vault.Credential) { c.Env = map[string]vault.Secret{"database-url": "x"} },
		"bad link action": func(c *vault.Credential) { c.LinkAction = "stolen" },
	} {
		c := idCredential()
		mod(&c)
		if err := v.Put(ctx, c); !errors.Is(err, authz.ErrInvalidRequest) {
			t.Errorf("%s: Put = %v", name, err)
		}
	}
	if l, _ := s.List(ctx, "proj_1", ""); len(l) != 0 {
		t.Fatalf("invalid credentials reached the store: %d", len(l))
	}
	for _, ref := range []string{"neon", "neon/", "/postgres", "neon/postgres/x", "Neon/postgres"} {
		if _, err := v.Get(ctx, "proj_1", ref); !errors.Is(err, authz.ErrInvalidRequest) {
			t.Errorf("Get(%q) = %v", ref, err)
		}
	}
}

func TestVaultUpdateLosesNothing(t *testing.T) {
	v, _ := newIDVault(t, nil)
	ctx := context.Background()
	if err := v.Put(ctx, idCredential()); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := v.Update(ctx, "proj_1", "neon/postgres", func(c *vault.Credential) error {
				c.Scopes = append(c.Scopes, fmt.Sprint("s", i))
				return nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	c, _ := v.Get(ctx, "proj_1", "neon/postgres")
	if len(c.Scopes) != n+1 {
		t.Fatalf("%d scopes after %d concurrent updates, want %d: %v", len(c.Scopes), n, n+1, c.Scopes)
	}
	_, err := v.Update(ctx, "proj_1", "neon/postgres", func(c *vault.Credential) error { c.Project = "other"; return nil })
	if !errors.Is(err, authz.ErrInvalidRequest) {
		t.Fatalf("Update moving the key: %v", err)
	}
}

func TestVaultTokenAndEnv(t *testing.T) {
	clk := clock.NewFake(idT0)
	v, _ := newIDVault(t, &vault.VaultOptions{Clock: clk.Now})
	ctx := context.Background()
	if err := v.Put(ctx, idCredential()); err != nil {
		t.Fatal(err)
	}
	tok, err := v.TokenSource("proj_1", "neon/postgres").Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != secretAccess || tok.RefreshToken != secretRefresh || tok.TokenType != "Bearer" || !tok.Expiry.Equal(idT0.Add(time.Hour)) {
		t.Fatalf("token = %+v", tok)
	}
	env, err := v.Env(ctx, "proj_1", "neon/postgres")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"NEON_API_TOKEN": secretAccess, "DATABASE_URL": secretDB}
	if fmt.Sprint(env) != fmt.Sprint(want) {
		t.Fatalf("Env = %v", env)
	}
	if got := vault.EnvName("fly-io"); got != "FLY_IO_API_TOKEN" {
		t.Fatalf("EnvName = %s", got)
	}
	clk.Advance(2 * time.Hour)
	if _, err := v.Token(ctx, "proj_1", "neon/postgres"); !errors.Is(err, vault.ErrCredentialExpired) {
		t.Fatalf("expired token without refresher: %v", err)
	}
}

func TestVaultRefreshStoresOneWinner(t *testing.T) {
	clk := clock.NewFake(idT0)
	var calls atomic.Int32
	v, s := newIDVault(t, &vault.VaultOptions{Clock: clk.Now, Logger: slog.New(slog.DiscardHandler),
		Refresh: func(ctx context.Context, c vault.Credential) (vault.Credential, error) {
			n := calls.Add(1)
			c.AccessToken = vault.Secret(fmt.Sprint("refreshed-", n))
			c.Expiry = idT0.Add(3 * time.Hour)
			return c, nil
		}})
	ctx := context.Background()
	if err := v.Put(ctx, idCredential()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour - 30*time.Second) // inside the early-refresh window
	const n = 10
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, err := v.Token(ctx, "proj_1", "neon/postgres")
			if err != nil {
				t.Errorf("Token: %v", err)
				return
			}
			got[i] = tok.AccessToken
		})
	}
	wg.Wait()
	rec, _ := s.Get(ctx, vault.VaultKey{Project: "proj_1", Provider: "neon", Service: "postgres"})
	stored, _ := v.Get(ctx, "proj_1", "neon/postgres")
	for _, g := range got {
		if g != stored.AccessToken.Reveal() {
			t.Fatalf("callers saw %v, stored %s", got, stored.AccessToken.Reveal())
		}
	}
	if rec.Version != 2 || calls.Load() != 1 {
		t.Fatalf("refresh called %d times and wrote %d times, want once each", calls.Load(), rec.Version-1)
	}
	// Fresh now: no further refresh.
	before := calls.Load()
	if _, err := v.Token(ctx, "proj_1", "neon/postgres"); err != nil || calls.Load() != before {
		t.Fatalf("fresh token refreshed again (%d calls), %v", calls.Load(), err)
	}
}
