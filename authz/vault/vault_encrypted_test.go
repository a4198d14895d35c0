package vault_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/vault"
)

func vaultKeys() map[string][]byte {
	return map[string][]byte{"2026-01": bytes.Repeat([]byte{1}, 32), "2026-06": bytes.Repeat([]byte{2}, 32)}
}

func TestEncryptedVaultStore(t *testing.T) {
	authztest.RunVaultStore(t, func(ctx context.Context, t *testing.T) (*authztest.VaultHarness, error) {
		inner := vault.NewMemoryVaultStore()
		s, err := vault.NewEncryptedVaultStore(inner, vaultKeys(), "2026-06")
		if err != nil {
			return nil, err
		}
		return &authztest.VaultHarness{
			Store: s,
			Reopen: func(context.Context) (vault.VaultStore, error) {
				return vault.NewEncryptedVaultStore(inner, vaultKeys(), "2026-06")
			},
		}, nil
	})
}

func TestEncryptedVaultStoreHoldsOnlyCiphertext(t *testing.T) {
	inner := vault.NewMemoryVaultStore()
	enc, err := vault.NewEncryptedVaultStore(inner, vaultKeys(), "2026-06")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := vault.NewVault(enc, nil)
	ctx := context.Background()
	if err := v.Put(ctx, idCredential()); err != nil {
		t.Fatal(err)
	}
	k := vault.VaultKey{Project: "proj_1", Provider: "neon", Service: "postgres"}
	rec, err := inner.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secretAccess, secretRefresh, "very-secret", "acct_42"} {
		if bytes.Contains(rec.Data, []byte(s)) {
			t.Fatalf("inner store holds plaintext %q", s)
		}
	}
	got, err := v.Get(ctx, "proj_1", "neon/postgres")
	if err != nil || got.AccessToken.Reveal() != secretAccess {
		t.Fatalf("Get through the wrapper: %v, %v", got, err)
	}
}

func TestEncryptedVaultStoreDetectsTampering(t *testing.T) {
	ctx := context.Background()
	inner := vault.NewMemoryVaultStore()
	enc, _ := vault.NewEncryptedVaultStore(inner, vaultKeys(), "2026-06")
	k := vault.VaultKey{Project: "proj_1", Provider: "neon", Service: "postgres"}
	if _, err := enc.Put(ctx, k, []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	rec, _ := inner.Get(ctx, k)
	for i := range rec.Data {
		if i == 1 { // the key id length: covered by the unknown-key cases
			continue
		}
		bad := bytes.Clone(rec.Data)
		bad[i] ^= 0x40
		if _, err := inner.Put(ctx, k, bad); err != nil {
			t.Fatal(err)
		}
		_, err := enc.Get(ctx, k)
		if !errors.Is(err, vault.ErrVaultTampered) && !errors.Is(err, vault.ErrUnknownVaultKey) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// A record moved to another key (another project) does not open.
	other := vault.VaultKey{Project: "proj_2", Provider: "neon", Service: "postgres"}
	if _, err := inner.Put(ctx, other, rec.Data); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Get(ctx, other); !errors.Is(err, vault.ErrVaultTampered) {
		t.Fatalf("moved record: %v", err)
	}
	// Truncated and empty records.
	for _, d := range [][]byte{{}, {1}, rec.Data[:10], rec.Data[:len(rec.Data)-1]} {
		_, _ = inner.Put(ctx, k, d)
		if _, err := enc.Get(ctx, k); !errors.Is(err, vault.ErrVaultTampered) {
			t.Fatalf("truncated record of %d bytes: %v", len(d), err)
		}
	}
	// A key id the store was not given.
	only, _ := vault.NewEncryptedVaultStore(inner, map[string][]byte{"2027": bytes.Repeat([]byte{3}, 32)}, "2027")
	_, _ = inner.Put(ctx, k, rec.Data)
	if _, err := only.Get(ctx, k); !errors.Is(err, vault.ErrUnknownVaultKey) {
		t.Fatalf("unknown key id: %v", err)
	}
}

func TestEncryptedVaultStoreRotation(t *testing.T) {
	ctx := context.Background()
	inner := vault.NewMemoryVaultStore()
	old, _ := vault.NewEncryptedVaultStore(inner, map[string][]byte{"2026-01": vaultKeys()["2026-01"]}, "2026-01")
	v, _ := vault.NewVault(old, nil)
	for _, svc := range []string{"postgres", "branch"} {
		c := idCredential()
		c.Service = svc
		if err := v.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	rotated, _ := vault.NewEncryptedVaultStore(inner, vaultKeys(), "2026-06")
	n, err := rotated.Rewrap(ctx, "proj_1", "")
	if err != nil || n != 2 {
		t.Fatalf("Rewrap = %d, %v; want 2", n, err)
	}
	if n, _ := rotated.Rewrap(ctx, "proj_1", ""); n != 0 {
		t.Fatalf("second Rewrap rewrote %d records", n)
	}
	// The retired key can go now.
	newOnly, _ := vault.NewEncryptedVaultStore(inner, map[string][]byte{"2026-06": vaultKeys()["2026-06"]}, "2026-06")
	v2, _ := vault.NewVault(newOnly, nil)
	list, err := v2.List(ctx, "proj_1", "")
	if err != nil || len(list) != 2 || list[0].AccessToken.Reveal() != secretAccess {
		t.Fatalf("after rotation: %v, %v", list, err)
	}
}

func TestNewEncryptedVaultStoreValidates(t *testing.T) {
	inner := vault.NewMemoryVaultStore()
	for name, f := range map[string]func() error{
		"short key": func() error {
			_, err := vault.NewEncryptedVaultStore(inner, map[string][]byte{"k": make([]byte, 16)}, "k")
			return err
		},
		"missing active": func() error { _, err := vault.NewEncryptedVaultStore(inner, vaultKeys(), "nope"); return err },
		"empty key id": func() error {
			_, err := vault.NewEncryptedVaultStore(inner, map[string][]byte{"": make([]byte, 32)}, "")
			return err
		},
		"nil inner": func() error { _, err := vault.NewEncryptedVaultStore(nil, vaultKeys(), "2026-06"); return err },
	} {
		if f() == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
