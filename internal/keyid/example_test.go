package keyid_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/agentprov/agentprov/internal/keyid"
)

func ExampleThumbprint() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	kid, err := keyid.Thumbprint(key)
	fmt.Println(len(kid), err)
	// Output: 43 <nil>
}
