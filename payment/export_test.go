package payment

import "time"

// Internals the external tests (package payment_test) reach.

var ChallengeMAC = challengeMAC

var DecodeTokenClaims = decodeTokenClaims

var Discard = discard

var FormatSessionCredential = formatSessionCredential

var HdrDecodeObject = hdrDecodeObject

var JsonNoEscape = jsonNoEscape

var SignJWT = signJWT

var VerifyJWS = verifyJWS

var VerifyJWSJose = verifyJWSJose

// TransportStore calls t's unexported store.
func TransportStore(t *Transport, key, authz string, expires time.Time) { t.store(key, authz, expires) }

// ClaimsWire is c's JSON claims set, as SignToken signs it.
func ClaimsWire(c *TokenClaims) any { return c.wire() }

// ReceiptWire is r's JWT claims set, as SignReceipt signs it.
func ReceiptWire(r *Receipt) any { return r.wire() }
