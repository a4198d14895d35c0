package payment

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strconv"
	"strings"
	"sync"

	"github.com/agentprov/agentprov/internal/paywire"
)

// IntentSession is the payment intent of a metered session (§5.9): one
// payment token covers many calls to one service, each call carrying a
// small authorization the provider checks locally, and the provider
// redeems the total once when the session ends.
const IntentSession = "session"

// MinSessionSecretBytes is the shortest session secret accepted.
const MinSessionSecretBytes = 32

// Sentinels of metered sessions (§5.9.8). Compare with errors.Is.
var (
	// ErrSessionUnknown: the call names a session this provider has not
	// opened; the client sends the session token again.
	ErrSessionUnknown = sentinel("session_unknown", 402, "payment session is unknown; send its token")
	// ErrSessionExhausted: the session's maximum cannot cover this call;
	// the client opens a new session.
	ErrSessionExhausted = sentinel("session_exhausted", 402, "payment session is used up")
	// ErrSessionClosed: the session is closed, settling or past its last
	// call time; the client opens a new session.
	ErrSessionClosed = sentinel("session_closed", 402, "payment session is closed")
	// ErrSessionReplay: the call's sequence number was used before (or is
	// too old for the replay window); nothing was served or charged.
	ErrSessionReplay = sentinel("session_replay", 409, "payment session sequence number was already used")
)

const (
	sessionKeyLabel  = "agentprov-session-key/v1"
	sessionCallLabel = "agentprov-session-call/v1"
)

// SessionKey derives the per-session key both the orchestrator and the
// provider compute (§5.9.1): HMAC-SHA256(secret, "agentprov-session-key/v1"
// || 0x00 || session id), where secret is the session secret the provider
// and the orchestrator agreed on at registration and the session id is the
// session token's jti. The orchestrator hands the key to the payer together
// with the token; the provider derives it from the jti, so nothing secret
// travels in the token. A key is 32 bytes.
func SessionKey(secret []byte, sessionID string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(sessionKeyLabel))
	m.Write([]byte{0})
	m.Write([]byte(sessionID))
	return m.Sum(nil)
}

// SessionCall is one call's authorization inside a session: the amount the
// payer authorizes for this call, a sequence number unique within the
// session, and the request it was made for. A plain value.
type SessionCall struct {
	ChallengeID string // the session challenge's id (the token's challenge_id)
	SessionID   string // the session token's jti
	Seq         uint64 // 1, 2, …; each is accepted once
	Amount      int64  // minor units authorized for this call
	Currency    string
	Route       string // request method, one space, request-target
}

var macPool = sync.Pool{New: func() any { return new(macBuf) }}

type macBuf struct {
	b []byte
}

// SessionMAC is the call authorization tag of §5.9.4: base64url (no
// padding) of HMAC-SHA256(key, "agentprov-session-call/v1" LF challenge id
// LF session id LF seq LF amount SP currency LF route).
func SessionMAC(key []byte, c *SessionCall) string {
	var sum [sha256.Size]byte
	return paywire.HdrB64.EncodeToString(sessionMAC(hmac.New(sha256.New, key), c, sum[:0]))
}

func sessionMAC(m hash.Hash, c *SessionCall, dst []byte) []byte {
	mb := macPool.Get().(*macBuf)
	b := mb.b[:0]
	b = append(b, sessionCallLabel...)
	b = append(b, '\n')
	b = append(b, c.ChallengeID...)
	b = append(b, '\n')
	b = append(b, c.SessionID...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, c.Amount, 10)
	b = append(b, ' ')
	b = append(b, c.Currency...)
	b = append(b, '\n')
	b = append(b, c.Route...)
	m.Reset()
	m.Write(b)
	mb.b = b
	macPool.Put(mb)
	return m.Sum(dst)
}

// CheckSessionMAC verifies tag (base64url) against c in constant time.
func CheckSessionMAC(m hash.Hash, c *SessionCall, tag string) bool {
	var want, got [sha256.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(tag)) != sha256.Size {
		return false
	}
	if _, err := base64.RawURLEncoding.Strict().Decode(got[:], []byte(tag)); err != nil {
		return false
	}
	w := sessionMAC(m, c, want[:0])
	return subtle.ConstantTimeCompare(w, got[:]) == 1
}

// SessionPayload is the credential payload of a session call (§5.9.4).
// Token is present on the calls that open (or reopen) the session at the
// provider and may be left out afterwards.
type SessionPayload struct {
	Token   string `json:"token,omitempty"`
	Session string `json:"session"`
	Seq     uint64 `json:"seq"`
	Amount  string `json:"amount"`
	MAC     string `json:"mac"`
}

// SessionCredential is the decoded Authorization value of a session call.
type SessionCredential struct {
	Challenge ChallengeEcho  `json:"challenge"`
	Source    string         `json:"source,omitempty"`
	Payload   SessionPayload `json:"payload"`
}

// ParseSessionCredential is the hot-path parser of a session call's
// Authorization value: "Payment" SP token68, the token68 base64url of the
// credential JSON. It accepts exactly what FormatCredential writes for a
// session call (one credential, no other schemes in the same value).
func ParseSessionCredential(v string) (*SessionCredential, error) {
	if len(v) > MaxHeaderBytes {
		return nil, ErrMalformedCredential.With(nil, "Authorization value is %d bytes, above the %d-byte limit", len(v), MaxHeaderBytes)
	}
	if len(v) <= len(SchemeName)+1 || !strings.EqualFold(v[:len(SchemeName)], SchemeName) || v[len(SchemeName)] != ' ' {
		return nil, ErrMalformedCredential.With(nil, "not a Payment credential")
	}
	raw, err := paywire.HdrDecodeB64(strings.TrimSpace(v[len(SchemeName)+1:]))
	if err != nil {
		return nil, ErrMalformedCredential.With(err, "credential is not base64url")
	}
	var c SessionCredential
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, ErrMalformedCredential.With(err, "session credential does not parse")
	}
	p := &c.Payload
	if p.Session == "" || len(p.Session) > 256 || p.Seq == 0 || p.MAC == "" || len(p.Token) > MaxTokenSize {
		return nil, ErrMalformedCredential.With(nil, "session payload needs session, seq > 0 and mac")
	}
	return &c, nil
}

// formatSessionCredential renders a session call's Authorization value
// from the pre-encoded JSON of its challenge echo.
func formatSessionCredential(echoJSON []byte, p *SessionPayload) (string, error) {
	pj, err := json.Marshal(p)
	if err != nil {
		return "", ErrMalformedCredential.With(err, "encode session payload")
	}
	b := make([]byte, 0, len(echoJSON)+len(pj)+26)
	b = append(b, `{"challenge":`...)
	b = append(b, echoJSON...)
	b = append(b, `,"payload":`...)
	b = append(b, pj...)
	b = append(b, '}')
	out := make([]byte, len(SchemeName)+1+paywire.HdrB64.EncodedLen(len(b)))
	copy(out, SchemeName+" ")
	paywire.HdrB64.Encode(out[len(SchemeName)+1:], b)
	if len(out) > MaxHeaderBytes {
		return "", ErrMalformedCredential.With(nil, "credential is %d bytes, above the %d-byte limit", len(out), MaxHeaderBytes)
	}
	return string(out), nil
}

// jsonNoEscape encodes v as compact JSON without HTML escaping, so that
// echoed wire strings come back byte for byte.
func jsonNoEscape(v any) ([]byte, error) {
	var j bytes.Buffer
	enc := json.NewEncoder(&j)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(j.Bytes(), "\n"), nil
}
