package authz

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/oauthwire"
)

// JOSE "typ" values of the objects this package signs (PROTOCOL §2.3).
const (
	TypeAttestation = "agentprov-attestation+jwt"
	TypeConsent     = "agentprov-consent+jwt"
)

// Default lifetimes and limits.
const (
	DefaultAttestationLifetime = 5 * time.Minute
	DefaultMaxLifetime         = 10 * time.Minute
	DefaultLeeway              = 30 * time.Second
	MaxLeeway                  = 60 * time.Second
	DefaultMaxTokenBytes       = 8 << 10
)

// Actor is the RFC 8693 "act" claim: the agent acting for the subject.
// Sub is the agent's own identifier at the orchestrator, ClientID the OAuth
// client id of the agent software, if it has one.
type Actor struct {
	Sub      string `json:"sub,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

// Attestation is a verified identity attestation: the orchestrator vouches
// that Subject (pairwise per provider) is its signed-in user with Email, and
// that Actor drives the request on that user's behalf.
type Attestation struct {
	Issuer        string
	Subject       string
	Audience      string
	Email         string
	EmailVerified bool
	Name          string
	// ID is the "jti": random, single use.
	ID        string
	IssuedAt  time.Time
	Expiry    time.Time
	NotBefore time.Time
	Actor     *Actor
	// Project is the orchestrator-side project id (opaque to providers).
	Project string
	// Service is the service ref the attestation is for, e.g. "neon/postgres".
	Service string
	// Consent is the compact consent receipt carried with the attestation,
	// if any; ConsentReceipt is that receipt once verified (same issuer,
	// audience and subject as the attestation).
	Consent        string
	ConsentReceipt *ConsentReceipt
}

// AttestRequest is what the orchestrator asserts in one attestation.
type AttestRequest struct {
	// Audience is the provider the attestation is for (required).
	Audience string
	// Subject is the user's identifier for this provider (required). Use
	// PairwiseSubject so that providers cannot correlate users.
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Actor         *Actor
	Project       string
	Service       string
	// Consent is an optional compact consent receipt from SignConsent.
	Consent string
	// Lifetime overrides the attester's default lifetime; it may not
	// exceed AttesterOptions.MaxLifetime.
	Lifetime time.Duration
}

// attestationClaims is the wire form of an attestation's payload.
type attestationClaims struct {
	Issuer        string `json:"iss"`
	Subject       string `json:"sub"`
	Audience      string `json:"aud"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified"`
	Name          string `json:"name,omitempty"`
	ID            string `json:"jti"`
	IssuedAt      int64  `json:"iat"`
	NotBefore     int64  `json:"nbf"`
	Expiry        int64  `json:"exp"`
	Actor         *Actor `json:"act,omitempty"`
	Project       string `json:"project,omitempty"`
	Service       string `json:"service,omitempty"`
	Consent       string `json:"consent,omitempty"`
}

// AttesterOptions tune an Attester. The zero value is safe.
type AttesterOptions struct {
	// Lifetime of attestations; default 5 minutes.
	Lifetime time.Duration
	// MaxLifetime caps AttestRequest.Lifetime; default 10 minutes, which is
	// also the verifiers' default maximum.
	MaxLifetime time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS handler; default
	// 5 minutes. Publish a new key at least this long before activating it.
	JWKSMaxAge time.Duration
	// Clock reads the time; default time.Now.
	Clock func() time.Time
	// Rand is the source of token ids; default crypto/rand.
	Rand io.Reader
	// Logger receives key-rotation events; default slog.Default().
	Logger *slog.Logger
}

// Attester is the orchestrator-side signer of identity attestations,
// consent receipts and other typed JWTs. It holds one or more signing keys:
// the active one signs, all of them are published in the JWKS so tokens
// signed before a rotation keep verifying until the old key is removed.
//
// An Attester is safe for concurrent use, including key rotation while
// signing.
type Attester struct {
	issuer      string
	lifetime    time.Duration
	maxLifetime time.Duration
	maxAge      time.Duration
	now         clock.Func
	rand        io.Reader
	log         *slog.Logger

	mu   sync.Mutex // serialises key-ring changes
	ring atomic.Pointer[keyRing]
}

// keyRing is an immutable snapshot of the attester's keys.
type keyRing struct {
	keys   []*preparedKey
	active *preparedKey
	jwks   []byte // serialised public JWKS
	etag   string
}

// NewAttester returns an Attester for issuer (the orchestrator's issuer
// identifier, typically its HTTPS origin) signing with key.
func NewAttester(issuer string, key SigningKey, opts *AttesterOptions) (*Attester, error) {
	if opts == nil {
		opts = &AttesterOptions{}
	}
	if issuer == "" || len(issuer) > 512 || !utf8.ValidString(issuer) {
		return nil, errors.New("authz: attester: issuer must be a non-empty string of at most 512 bytes")
	}
	a := &Attester{
		issuer:      issuer,
		lifetime:    opts.Lifetime,
		maxLifetime: opts.MaxLifetime,
		maxAge:      opts.JWKSMaxAge,
		now:         clock.Func(opts.Clock),
		rand:        opts.Rand,
		log:         opts.Logger,
	}
	if a.lifetime == 0 {
		a.lifetime = DefaultAttestationLifetime
	}
	if a.maxLifetime == 0 {
		a.maxLifetime = DefaultMaxLifetime
	}
	if a.lifetime < 0 || a.maxLifetime < 0 || a.lifetime > a.maxLifetime {
		return nil, fmt.Errorf("authz: attester: lifetime %v must be positive and at most MaxLifetime %v", a.lifetime, a.maxLifetime)
	}
	if a.maxAge == 0 {
		a.maxAge = 5 * time.Minute
	}
	if a.maxAge < 0 {
		return nil, errors.New("authz: attester: JWKSMaxAge must not be negative")
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	pk, err := prepareKey(key)
	if err != nil {
		return nil, err
	}
	ring, err := newKeyRing([]*preparedKey{pk}, pk)
	if err != nil {
		return nil, err
	}
	a.ring.Store(ring)
	return a, nil
}

func newKeyRing(keys []*preparedKey, active *preparedKey) (*keyRing, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("authz: marshal JWKS: %w", err)
	}
	sum := sha256.Sum256(b)
	return &keyRing{keys: keys, active: active, jwks: b, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}, nil
}

// Issuer returns the attester's issuer identifier.
func (a *Attester) Issuer() string { return a.issuer }

// ActiveKeyID returns the kid of the key that signs new tokens.
func (a *Attester) ActiveKeyID() string { return a.ring.Load().active.kid }

// AddKey publishes another key in the JWKS without signing with it yet. A
// rotation is AddKey, wait at least JWKSMaxAge, SetActiveKey, wait for the
// last old-key token to expire, RemoveKey.
func (a *Attester) AddKey(key SigningKey) error {
	pk, err := prepareKey(key)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.ring.Load()
	for _, k := range old.keys {
		if k.kid == pk.kid {
			return fmt.Errorf("authz: attester: key %q already present", pk.kid)
		}
	}
	ring, err := newKeyRing(append(append([]*preparedKey(nil), old.keys...), pk), old.active)
	if err != nil {
		return err
	}
	a.ring.Store(ring)
	a.log.Info("authz: attester key added", "kid", pk.kid, "alg", string(pk.alg))
	return nil
}

// SetActiveKey makes the published key kid sign all new tokens.
func (a *Attester) SetActiveKey(kid string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.ring.Load()
	for _, k := range old.keys {
		if k.kid == kid {
			a.ring.Store(&keyRing{keys: old.keys, active: k, jwks: old.jwks, etag: old.etag})
			a.log.Info("authz: attester active key changed", "kid", kid)
			return nil
		}
	}
	return fmt.Errorf("authz: attester: no key %q", kid)
}

// RemoveKey withdraws key kid from the JWKS; tokens it signed stop verifying
// once verifiers refresh. The active key cannot be removed.
func (a *Attester) RemoveKey(kid string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.ring.Load()
	if old.active.kid == kid {
		return fmt.Errorf("authz: attester: key %q is active; activate another first", kid)
	}
	keys := make([]*preparedKey, 0, len(old.keys))
	for _, k := range old.keys {
		if k.kid != kid {
			keys = append(keys, k)
		}
	}
	if len(keys) == len(old.keys) {
		return fmt.Errorf("authz: attester: no key %q", kid)
	}
	ring, err := newKeyRing(keys, old.active)
	if err != nil {
		return err
	}
	a.ring.Store(ring)
	a.log.Info("authz: attester key removed", "kid", kid)
	return nil
}

// JWKS returns the public keys, a fresh copy the caller may modify.
func (a *Attester) JWKS() *jose.JSONWebKeySet {
	ring := a.ring.Load()
	set := &jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(ring.keys))}
	for _, k := range ring.keys {
		set.Keys = append(set.Keys, k.public)
	}
	return set
}

// newID returns a random 128-bit token id, base64url without padding.
func (a *Attester) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(a.rand, b[:]); err != nil {
		return "", fmt.Errorf("authz: token id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Attest signs an identity attestation and returns it in compact form.
func (a *Attester) Attest(ctx context.Context, req AttestRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := checkAttestRequest(&req); err != nil {
		return "", err
	}
	life := a.lifetime
	if req.Lifetime != 0 {
		if req.Lifetime < 0 || req.Lifetime > a.maxLifetime {
			return "", errorf(ErrInvalidRequest, nil, "lifetime %v outside (0, %v]", req.Lifetime, a.maxLifetime)
		}
		life = req.Lifetime
	}
	id, err := a.newID()
	if err != nil {
		return "", err
	}
	now := a.now.Now().Unix()
	c := attestationClaims{
		Issuer:        a.issuer,
		Subject:       req.Subject,
		Audience:      req.Audience,
		Email:         req.Email,
		EmailVerified: req.EmailVerified,
		Name:          req.Name,
		ID:            id,
		IssuedAt:      now,
		NotBefore:     now,
		Expiry:        now + int64(life/time.Second),
		Project:       req.Project,
		Service:       req.Service,
		Consent:       req.Consent,
	}
	if req.Actor != nil {
		act := *req.Actor
		c.Actor = &act
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("authz: marshal attestation: %w", err)
	}
	return a.signPayload(TypeAttestation, payload)
}

func checkAttestRequest(req *AttestRequest) error {
	if err := checkText("audience", req.Audience, 256, true); err != nil {
		return err
	}
	if err := checkText("subject", req.Subject, 256, true); err != nil {
		return err
	}
	if err := checkText("email", req.Email, 320, false); err != nil {
		return err
	}
	if req.EmailVerified && req.Email == "" {
		return errorf(ErrInvalidRequest, nil, "email_verified is set without an email")
	}
	if req.Email != "" && !strings.Contains(req.Email, "@") {
		return errorf(ErrInvalidRequest, nil, "email %q has no '@'", req.Email)
	}
	if err := checkText("name", req.Name, 256, false); err != nil {
		return err
	}
	if req.Actor != nil {
		if req.Actor.Sub == "" && req.Actor.ClientID == "" {
			return errorf(ErrInvalidRequest, nil, "actor has neither sub nor client_id")
		}
		if err := checkText("actor sub", req.Actor.Sub, 256, false); err != nil {
			return err
		}
		if err := checkText("actor client_id", req.Actor.ClientID, 256, false); err != nil {
			return err
		}
	}
	if req.Project != "" && !oauthwire.ValidProjectID(req.Project) {
		return errorf(ErrInvalidRequest, nil, "project %q is not a valid project id", req.Project)
	}
	if req.Service != "" && !oauthwire.ValidServiceRef(req.Service) {
		return errorf(ErrInvalidRequest, nil, "service %q is not a valid service ref", req.Service)
	}
	if p, _, _ := strings.Cut(req.Service, "/"); req.Service != "" && p != req.Audience {
		return errorf(ErrInvalidRequest, nil, "service %q belongs to another provider than audience %q", req.Service, req.Audience)
	}
	if len(req.Consent) > DefaultMaxTokenBytes/2 {
		return errorf(ErrInvalidRequest, nil, "consent receipt longer than %d bytes", DefaultMaxTokenBytes/2)
	}
	return nil
}

// checkText validates a free-text claim: valid UTF-8, bounded, no control characters.
func checkText(what, s string, max int, required bool) error {
	if s == "" {
		if required {
			return errorf(ErrInvalidRequest, nil, "%s is required", what)
		}
		return nil
	}
	if len(s) > max {
		return errorf(ErrInvalidRequest, nil, "%s longer than %d bytes", what, max)
	}
	if !utf8.ValidString(s) {
		return errorf(ErrInvalidRequest, nil, "%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errorf(ErrInvalidRequest, nil, "%s contains a control character", what)
		}
	}
	return nil
}

// Sign signs claims (any value that marshals to a JSON object) as a JWT with
// header typ. It fills in "iss" (the attester's issuer), "iat", "jti" and
// "exp" (iat plus the default lifetime) when absent; an "iss" naming another
// issuer is refused, and "aud" is required. Other packages use it for their
// own signed events (for example revocation events); Verifier.VerifyTyped is
// its counterpart.
func (a *Attester) Sign(ctx context.Context, typ string, claims any) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if typ == "" || len(typ) > 128 || strings.ContainsAny(typ, "\" \t\r\n") {
		return "", errorf(ErrInvalidRequest, nil, "typ %q is not a valid JOSE type", typ)
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("authz: marshal claims: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return "", errorf(ErrInvalidRequest, err, "claims must marshal to a JSON object")
	}
	if v, ok := m["iss"]; ok {
		var iss string
		if json.Unmarshal(v, &iss) != nil || iss != a.issuer {
			return "", errorf(ErrInvalidRequest, nil, "claims name issuer %s, not %q", v, a.issuer)
		}
	} else {
		m["iss"], _ = json.Marshal(a.issuer)
	}
	if v, ok := m["aud"]; !ok || string(v) == `""` || string(v) == "null" {
		return "", errorf(ErrInvalidRequest, nil, "claims need an \"aud\"")
	}
	now := a.now.Now().Unix()
	if _, ok := m["iat"]; !ok {
		m["iat"], _ = json.Marshal(now)
	}
	if _, ok := m["exp"]; !ok {
		m["exp"], _ = json.Marshal(now + int64(a.lifetime/time.Second))
	}
	if _, ok := m["jti"]; !ok {
		id, err := a.newID()
		if err != nil {
			return "", err
		}
		m["jti"], _ = json.Marshal(id)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("authz: marshal claims: %w", err)
	}
	return a.signPayload(typ, payload)
}

// signPayload signs pre-marshalled claims with the active key. Signing the
// bytes directly (rather than through a JWT builder that marshals again)
// keeps the cost to one JSON encoding and one signature.
func (a *Attester) signPayload(typ string, payload []byte) (string, error) {
	k := a.ring.Load().active
	s, err := k.signer(typ)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("authz: sign with %q: %w", k.kid, err)
	}
	return jws.CompactSerialize()
}

// PairwiseSubject derives the subject identifier of userID at providerID:
// base64url(HMAC-SHA256(secret, providerID || 0x00 || userID)). The same user
// gets unrelated subjects at different providers, so providers cannot join
// their records, while each provider sees a stable subject. The secret is an
// orchestrator-wide key of at least 32 random bytes; changing it changes
// every subject.
func PairwiseSubject(secret []byte, userID, providerID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(providerID))
	m.Write([]byte{0})
	m.Write([]byte(userID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
