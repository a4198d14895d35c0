package provision

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// validPKCEString reports whether s is 43–128 characters of the RFC 7636
// §4.1 alphabet (unreserved characters), the shape of both a code verifier
// and an S256 challenge.
func validPKCEString(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// pkceS256 derives the S256 challenge of verifier (RFC 7636 §4.2).
func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// verifyPKCE checks verifier against an S256 challenge in constant time.
func verifyPKCE(verifier, challenge string) bool {
	if !validPKCEString(verifier) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(pkceS256(verifier)), []byte(challenge)) == 1
}
