package payment

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"github.com/agentprov/agentprov/internal/paywire"
)

// ChallengeID computes the HMAC-bound challenge id the draft recommends:
// base64url(no pad) of HMAC-SHA256(secret, realm|method|intent|request|
// expires|digest|opaque), the seven slots fixed and positional, each the
// exact wire string (empty when absent). Binding every parameter means a
// client cannot alter the price, the expiry or the server state it echoes.
func ChallengeID(secret []byte, c *Challenge) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("payment: challenge secret is empty")
	}
	e, err := c.Echo()
	if err != nil {
		return "", err
	}
	return challengeMAC(secret, &e), nil
}

// challengeMAC is the id of the challenge whose wire parameters e carries
// (e.ID itself is not an input).
func challengeMAC(secret []byte, e *ChallengeEcho) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strings.Join([]string{e.Realm, e.Method, e.Intent, e.Request, e.Expires, e.Digest, e.Opaque}, "|")))
	return paywire.HdrB64.EncodeToString(m.Sum(nil))
}

// VerifyEchoID reports whether the echo's id is the HMAC of its slots
// under one of the secrets. The first secret signs new challenges; the
// others stay accepted so that rotation does not break challenges that
// are still outstanding.
func VerifyEchoID(secrets [][]byte, e *ChallengeEcho) bool {
	ok := false
	for _, s := range secrets {
		want := challengeMAC(s, e)
		// Constant time, and no early exit, so timing reveals nothing.
		if subtle.ConstantTimeCompare([]byte(want), []byte(e.ID)) == 1 {
			ok = true
		}
	}
	return ok
}
