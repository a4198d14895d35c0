// Package keyid derives key ids from keys: the RFC 7638 JWK thumbprint
// (SHA-256, base64url without padding), so that a new key never reuses the
// kid of an old one and every role names a key the same way.
package keyid

import (
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of key's public half,
// base64url-encoded without padding. key is a public key, or a
// crypto.Signer (a private key, or one held in a KMS) whose Public is used.
func Thumbprint(key any) (string, error) {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	if key == nil {
		return "", errors.New("no key")
	}
	jwk := jose.JSONWebKey{Key: key}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
