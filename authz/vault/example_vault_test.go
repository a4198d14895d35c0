package vault_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/agentprov/agentprov/authz/vault"
)

// The vault keeps provider credentials encrypted at rest and never prints
// their secrets.
func ExampleVault() {
	ctx := context.Background()
	// A 32-byte AES-256 key from the platform's key management, by id.
	store, err := vault.NewEncryptedVaultStore(vault.NewMemoryVaultStore(),
		map[string][]byte{"vault-2026": []byte("0123456789abcdef0123456789abcdef")}, "vault-2026")
	if err != nil {
		log.Fatal(err)
	}
	vlt, err := vault.NewVault(store, nil)
	if err != nil {
		log.Fatal(err)
	}
	err = vlt.Put(ctx, vault.Credential{
		Project:     "proj_1",
		Provider:    "neon",
		Service:     "postgres",
		AccessToken: "neon_at_s3cr3t",
		Expiry:      time.Now().Add(time.Hour),
		Env:         map[string]vault.Secret{"DATABASE_URL": "postgres://app:pw@db.neon.example/app"},
		LinkAction:  "created",
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := vlt.Get(ctx, "proj_1", "neon/postgres")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%v %+v\n", c.AccessToken, c.Env)

	env, err := vlt.Env(ctx, "proj_1", "neon/postgres")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(env["NEON_API_TOKEN"])
	// Output:
	// [REDACTED] map[DATABASE_URL:[REDACTED]]
	// neon_at_s3cr3t
}
