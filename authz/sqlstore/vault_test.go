package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/sqlstore"
	"github.com/agentprov/agentprov/authz/vault"
)

func newVault(ctx context.Context, db *sql.DB, d sqlstore.Dialect) (*sqlstore.VaultStore, error) {
	prefixed := func(db *sql.DB, d sqlstore.Dialect, _ *sqlstore.Options) (*sqlstore.VaultStore, error) {
		return sqlstore.NewVaultStore(db, d, &sqlstore.Options{TablePrefix: "ap_"})
	}
	return migrated(ctx, prefixed, db, d)
}

func TestVaultStore(t *testing.T) {
	for name, op := range dialects {
		t.Run(name, func(t *testing.T) {
			authztest.RunVaultStore(t, func(ctx context.Context, t *testing.T) (*authztest.VaultHarness, error) {
				open, d := op(t)
				s, err := newVault(ctx, open(), d)
				if err != nil {
					return nil, err
				}
				return &authztest.VaultHarness{
					Store:  s,
					Reopen: func(ctx context.Context) (vault.VaultStore, error) { return newVault(ctx, open(), d) },
				}, nil
			})
		})
	}
}

var encKeys = map[string][]byte{"k1": bytes.Repeat([]byte{9}, 32)}

func TestEncryptedVaultStoreOverSQL(t *testing.T) {
	for name, op := range dialects {
		t.Run(name, func(t *testing.T) {
			authztest.RunVaultStore(t, func(ctx context.Context, t *testing.T) (*authztest.VaultHarness, error) {
				open, d := op(t)
				inner, err := newVault(ctx, open(), d)
				if err != nil {
					return nil, err
				}
				s, err := vault.NewEncryptedVaultStore(inner, encKeys, "k1")
				if err != nil {
					return nil, err
				}
				return &authztest.VaultHarness{
					Store: s,
					Reopen: func(ctx context.Context) (vault.VaultStore, error) {
						inner, err := newVault(ctx, open(), d)
						if err != nil {
							return nil, err
						}
						return vault.NewEncryptedVaultStore(inner, encKeys, "k1")
					},
				}, nil
			})
		})
	}
}

// TestOnlyCiphertextReachesSQL reads the table directly.
func TestOnlyCiphertextReachesSQL(t *testing.T) {
	for name, op := range dialects {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			open, d := op(t)
			db := open()
			inner, err := newVault(ctx, db, d)
			if err != nil {
				t.Fatal(err)
			}
			enc, _ := vault.NewEncryptedVaultStore(inner, encKeys, "k1")
			v, _ := vault.NewVault(enc, nil)
			c := vault.Credential{Project: "p", Provider: "neon", Service: "postgres",
				AccessToken: "plain-secret-token", Expiry: time.Now().Add(time.Hour),
				Env: map[string]vault.Secret{"DATABASE_URL": "postgres://plain-secret-pw@x"}}
			if err := v.Put(ctx, c); err != nil {
				t.Fatal(err)
			}
			rows, err := db.QueryContext(ctx, `SELECT data FROM ap_vault`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var data []byte
				if err := rows.Scan(&data); err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(data, []byte("plain-secret")) {
					t.Fatalf("plaintext in SQL: %q", data)
				}
				n++
			}
			if n != 1 {
				t.Fatalf("%d rows", n)
			}
			got, err := v.Get(ctx, "p", "neon/postgres")
			if err != nil || got.AccessToken.Reveal() != "plain-secret-token" {
				t.Fatalf("Get: %v %v", got, err)
			}
		})
	}
}
