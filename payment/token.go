package payment

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/jwstyp"
	"github.com/agentprov/agentprov/internal/keyid"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/internal/signkey"
)

// JOSE typ values of the documents this part of the package signs.
const (
	// TokenType is the JOSE typ of a payment token.
	TokenType = "agentprov-payment+jwt"
	// ReceiptType is the JOSE typ of a redemption receipt.
	ReceiptType = "agentprov-receipt+jwt"
	// ProtocolVersion is the protocol version written into tokens and receipts.
	ProtocolVersion = "0.1"
)

// MaxTokenSize bounds a payment token or receipt on the wire (bytes).
const MaxTokenSize = 8 << 10

// DefaultLeeway is the clock leeway applied to exp checks (§2.8).
const DefaultLeeway = 30 * time.Second

// SigningKey is a private key that signs tokens and receipts, the same type
// as authz.SigningKey: one key made once serves every role. Payment tokens
// and receipts are signed with EdDSA (an ed25519.PrivateKey) or ES256 (an
// *ecdsa.PrivateKey on P-256, or a crypto.Signer holding one in a KMS).
// KeyID is published as "kid" in the JWKS and in every JWS header; an
// Issuer given an empty KeyID uses the key's RFC 7638 thumbprint
// (KeyThumbprint), which is RECOMMENDED: a re-created key then never
// reuses an old kid. Its String and Format never print key material.
type SigningKey = signkey.Key

// KeyThumbprint returns the RFC 7638 SHA-256 JWK thumbprint of key
// (base64url, no padding): the kid a SigningKey with an empty KeyID gets,
// and the same value authz.KeyThumbprint gives. key is a public key or a
// crypto.Signer.
func KeyThumbprint(key any) (string, error) { return keyid.Thumbprint(key) }

// TokenClaims are the claims of a payment token (§5.1). Subject and Project
// both carry the project id ("sub" on the wire); HoldID is the budget hold
// and the token's single-use identifier ("jti"). A plain value: safe to
// share once built.
type TokenClaims struct {
	Issuer    string       // "iss": the orchestrator
	Audience  string       // "aud": the one provider id that may redeem
	Subject   string       // "sub": the project id
	Service   string       // "service": service ref provider/service_id
	Project   string       // same as Subject
	MaxAmount budget.Money // "max_amount"
	HoldID    string       // "jti"
	IssuedAt  time.Time    // "iat"
	NotBefore time.Time    // "nbf": optional; zero when absent
	Expiry    time.Time    // "exp"
	// ChallengeID ("challenge_id") binds the token to one HTTP 402
	// challenge; a Paywall requires it (§5.7.5).
	ChallengeID string
}

// tokenWire is the JSON claims set of a payment token.
type tokenWire struct {
	Iss         string       `json:"iss"`
	Aud         string       `json:"aud"`
	Sub         string       `json:"sub"`
	Jti         string       `json:"jti"`
	Iat         int64        `json:"iat"`
	Nbf         int64        `json:"nbf,omitempty"`
	Exp         int64        `json:"exp"`
	Service     string       `json:"service"`
	MaxAmount   budget.Money `json:"max_amount"`
	ChallengeID string       `json:"challenge_id,omitempty"`
	Version     string       `json:"protocol_version"`
}

func (c *TokenClaims) wire() tokenWire {
	w := tokenWire{
		Iss: c.Issuer, Aud: c.Audience, Sub: c.Subject, Jti: c.HoldID,
		Iat: c.IssuedAt.Unix(), Exp: c.Expiry.Unix(),
		Service: c.Service, MaxAmount: c.MaxAmount, ChallengeID: c.ChallengeID,
		Version: ProtocolVersion,
	}
	if !c.NotBefore.IsZero() {
		w.Nbf = c.NotBefore.Unix()
	}
	return w
}

func (w *tokenWire) claims() *TokenClaims {
	c := &TokenClaims{
		Issuer: w.Iss, Audience: w.Aud, Subject: w.Sub, Project: w.Sub,
		Service: w.Service, MaxAmount: w.MaxAmount, HoldID: w.Jti,
		IssuedAt: time.Unix(w.Iat, 0).UTC(), Expiry: time.Unix(w.Exp, 0).UTC(),
		ChallengeID: w.ChallengeID,
	}
	if w.Nbf != 0 {
		c.NotBefore = time.Unix(w.Nbf, 0).UTC()
	}
	return c
}

// validate checks the claims' shape (not signature, audience or time).
func (w *tokenWire) validate() error {
	switch {
	case w.Iss == "":
		return errors.New("iss is missing")
	case !paywire.ValidProvider(w.Aud):
		return fmt.Errorf("aud %q is not a provider id", w.Aud)
	case !paywire.ValidProject(w.Sub):
		return fmt.Errorf("sub %q is not a project id", w.Sub)
	case w.Jti == "" || len(w.Jti) > 256:
		return errors.New("jti is missing or too long")
	case w.Iat <= 0 || w.Exp <= w.Iat:
		return errors.New("iat/exp are missing or out of order")
	case w.Nbf < 0 || (w.Nbf != 0 && w.Nbf >= w.Exp):
		return errors.New("nbf is not before exp")
	case !paywire.MajorOK(w.Version):
		return fmt.Errorf("unsupported protocol_version %q", w.Version)
	case len(w.ChallengeID) > 256:
		return errors.New("challenge_id is too long")
	}
	p, _, err := paywire.SplitRef(w.Service)
	if err != nil {
		return err
	}
	if p != w.Aud {
		return fmt.Errorf("service %q is not offered by the audience %q", w.Service, w.Aud)
	}
	if err := paywire.CheckMoney(w.MaxAmount); err != nil {
		return fmt.Errorf("max_amount: %w", err)
	}
	if w.MaxAmount.Amount == 0 {
		return errors.New("max_amount: must be positive")
	}
	return nil
}

// signJWT signs claims as a compact JWS with the given signer.
func signJWT(s jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// SignToken signs c as a payment token (JOSE typ TokenType) with s, a
// signer made for TokenType. It is how an Issuer (package payment/issuer)
// mints; verify with a TokenVerifier.
func SignToken(s jose.Signer, c *TokenClaims) (string, error) { return signJWT(s, c.wire()) }

// SignReceipt signs r as a redemption receipt (JOSE typ ReceiptType) with
// s, a signer made for ReceiptType. It is how an Issuer (package
// payment/issuer) signs receipts; verify with VerifyReceipt.
func SignReceipt(s jose.Signer, r *Receipt) (string, error) { return signJWT(s, r.wire()) }

// verifyJWS checks a compact JWS of the expected typ against keys and
// returns its payload. The header is inspected before any key is used so
// that embedded or remote keys (jwk, jku, x5u, x5c, x5t, x5t#S256), crit
// and b64 are refused.
//
// EdDSA, the algorithm of every key this package issues, is verified here
// directly with crypto/ed25519 over the signing input as received: going
// through go-jose parsed the header a second time and re-encoded the
// payload, which cost almost as much as the signature check. Its parts
// must be canonical base64url (strict decoding), so a token has exactly one
// spelling. Any other algorithm on the allow-list goes through go-jose.
func verifyJWS(token, typ string, keys *jose.JSONWebKeySet) ([]byte, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("longer than %d bytes", MaxTokenSize)
	}
	if strings.Count(token, ".") != 2 {
		return nil, errors.New("not a compact JWS")
	}
	h64, rest, _ := strings.Cut(token, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	rawHeader, err := strictB64.DecodeString(h64)
	if err != nil {
		return nil, errors.New("header is not base64url")
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(rawHeader, &hdr); err != nil || hdr == nil {
		return nil, errors.New("header is not a JSON object")
	}
	for _, banned := range []string{"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"} {
		if _, ok := hdr[banned]; ok {
			return nil, fmt.Errorf("header member %q is not accepted", banned)
		}
	}
	var gotTyp, kid, alg string
	if err := json.Unmarshal(hdr["typ"], &gotTyp); err != nil || !jwstyp.Matches(gotTyp, typ) {
		return nil, fmt.Errorf("typ is not %q", typ)
	}
	if err := json.Unmarshal(hdr["kid"], &kid); err != nil || kid == "" {
		return nil, errors.New("kid is missing")
	}
	if err := json.Unmarshal(hdr["alg"], &alg); err != nil || alg != string(jose.EdDSA) {
		// Not EdDSA: go-jose parses, enforces the allow-list and verifies.
		return verifyJWSJose(token, kid, keys)
	}
	payload, err := strictB64.DecodeString(p64)
	if err != nil {
		return nil, errors.New("malformed JWS or algorithm not allowed")
	}
	sig, err := strictB64.DecodeString(s64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errors.New("malformed JWS or algorithm not allowed")
	}
	if keys == nil {
		return nil, errors.New("no verification keys")
	}
	found := keys.Key(kid)
	if len(found) == 0 {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	signingInput := []byte(token[:len(h64)+1+len(p64)])
	other := false
	for _, k := range found {
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		var pub ed25519.PublicKey
		switch key := k.Key.(type) {
		case ed25519.PublicKey:
			pub = key
		case ed25519.PrivateKey:
			pub, _ = key.Public().(ed25519.PublicKey)
		default:
			other = true // e.g. a jose.OpaqueVerifier: go-jose knows it
			continue
		}
		if len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, signingInput, sig) {
			return payload, nil
		}
	}
	if other {
		return verifyJWSJose(token, kid, keys)
	}
	return nil, errBadSignature
}

// errBadSignature: the key named by kid was found and the signature does
// not verify under it; a KeyRefetcher may know a newer key.
var errBadSignature = errors.New("signature does not verify")

// strictB64 rejects non-canonical base64url (non-zero trailing bits), so
// that a token verified by the EdDSA path has a single spelling.
var strictB64 = base64.RawURLEncoding.Strict()

// verifyJWSJose verifies a JWS whose header verifyJWS already checked
// (typ, kid, no embedded keys) with go-jose and the algorithm allow-list.
func verifyJWSJose(token, kid string, keys *jose.JSONWebKeySet) ([]byte, error) {
	obj, err := jose.ParseSignedCompact(token, paywire.AllowedAlgs)
	if err != nil {
		return nil, errors.New("malformed JWS or algorithm not allowed")
	}
	if keys == nil {
		return nil, errors.New("no verification keys")
	}
	found := keys.Key(kid)
	if len(found) == 0 {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	alg := obj.Signatures[0].Header.Algorithm
	for _, k := range found {
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if payload, err := obj.Verify(k.Public().Key); err == nil {
			return payload, nil
		}
	}
	return nil, errBadSignature
}

// ParseTokenClaims decodes a token's claims WITHOUT verifying its signature,
// for display and routing only. Use a TokenVerifier before trusting them.
func ParseTokenClaims(token string) (*TokenClaims, error) {
	if len(token) > MaxTokenSize {
		return nil, ErrTokenInvalid.With(nil, "token longer than %d bytes", MaxTokenSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrTokenInvalid.With(nil, "not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, ErrTokenInvalid.With(nil, "payload is not base64url")
	}
	return decodeTokenClaims(payload)
}

func decodeTokenClaims(payload []byte) (*TokenClaims, error) {
	var w tokenWire
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&w); err != nil {
		return nil, ErrTokenInvalid.With(nil, "claims are not a JSON object")
	}
	if dec.More() {
		return nil, ErrTokenInvalid.With(nil, "trailing data after claims")
	}
	if err := w.validate(); err != nil {
		return nil, ErrTokenInvalid.With(nil, "%v", err)
	}
	return w.claims(), nil
}

// TokenVerifierOptions tune a TokenVerifier. The zero value is usable.
// Options are read once by NewTokenVerifier.
type TokenVerifierOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Leeway is the allowed clock skew on exp; 0 means DefaultLeeway.
	// It is capped at 60 seconds.
	Leeway time.Duration
}

// TokenVerifier is the provider-side local check of a payment token:
// signature against the orchestrator's JWKS, typ, iss, aud equal to this
// provider, and exp. It does not tell whether the token was already
// redeemed or revoked: only redemption at the orchestrator does. It is
// safe for concurrent use.
type TokenVerifier struct {
	issuer, provider string
	keys             *jose.JSONWebKeySet
	resolver         KeyResolver // set by NewResolvingTokenVerifier instead of keys
	now              clock.Func
	leeway           time.Duration
}

// NewTokenVerifier returns a verifier for tokens issued by orchestratorIssuer
// for providerID, checked against keys (the orchestrator's JWKS, which the
// caller fetched safely and keeps current). To follow key rotations, use
// NewResolvingTokenVerifier.
func NewTokenVerifier(orchestratorIssuer, providerID string, keys *jose.JSONWebKeySet, opts *TokenVerifierOptions) (*TokenVerifier, error) {
	return newTokenVerifier(orchestratorIssuer, providerID, keys, nil, opts)
}

// newTokenVerifier builds a verifier over a static set or, when resolver
// is non-nil, a resolver.
func newTokenVerifier(orchestratorIssuer, providerID string, keys *jose.JSONWebKeySet, resolver KeyResolver, opts *TokenVerifierOptions) (*TokenVerifier, error) {
	switch {
	case orchestratorIssuer == "":
		return nil, errors.New("payment: token verifier: issuer is required")
	case !paywire.ValidProvider(providerID):
		return nil, fmt.Errorf("payment: token verifier: %q is not a provider id", providerID)
	case resolver == nil && (keys == nil || len(keys.Keys) == 0):
		return nil, errors.New("payment: token verifier: keys are required")
	}
	if opts == nil {
		opts = &TokenVerifierOptions{}
	}
	return &TokenVerifier{issuer: orchestratorIssuer, provider: providerID, keys: keys, resolver: resolver,
		now: opts.Now, leeway: paywire.Leeway(opts.Leeway)}, nil
}

// Verify checks token and returns its claims. Errors are *Error with code
// token_invalid or token_expired.
func (v *TokenVerifier) Verify(ctx context.Context, token string) (*TokenClaims, error) {
	keys := v.keys
	if v.resolver != nil {
		var err error
		if keys, err = resolveKeySet(ctx, v.resolver, token); err != nil {
			return nil, ErrTokenInvalid.With(err, "no verification key")
		}
	}
	at := TokenTime{Now: v.now.Now(), Leeway: v.leeway, CheckExp: true}
	c, err := VerifyToken(token, keys, v.issuer, v.provider, at)
	if err != nil && v.resolver != nil {
		if fresh := refetchedKeySet(ctx, v.resolver, token, TokenType, keys); fresh != nil {
			return VerifyToken(token, fresh, v.issuer, v.provider, at)
		}
	}
	return c, err
}

// TokenTime is the time policy of one verification point: every point
// checks nbf and iat against Now (with Leeway); CheckExp says whether exp
// is checked too (false only where §5.2 lets an expired token through:
// the release, and the replay of a finished redemption, which checks exp
// itself when the redemption is new).
type TokenTime struct {
	Now      time.Time
	Leeway   time.Duration
	CheckExp bool
}

// check applies the policy to c.
func (p TokenTime) Check(c *TokenClaims) error {
	if !c.NotBefore.IsZero() && p.Now.Add(p.Leeway).Before(c.NotBefore) {
		return ErrTokenInvalid.With(nil, "not valid before %s", c.NotBefore.Format(time.RFC3339))
	}
	if c.IssuedAt.After(p.Now.Add(p.Leeway)) {
		return ErrTokenInvalid.With(nil, "issued in the future (%s)", c.IssuedAt.Format(time.RFC3339))
	}
	if p.CheckExp && !p.Now.Before(c.Expiry.Add(p.Leeway)) {
		return ErrTokenExpired.With(nil, "expired at %s", c.Expiry.Format(time.RFC3339))
	}
	return nil
}

// VerifyToken is the one verification path of payment tokens: header,
// signature, claims, iss, aud, then the time policy at.
func VerifyToken(token string, keys *jose.JSONWebKeySet, issuer, provider string, at TokenTime) (*TokenClaims, error) {
	payload, err := verifyJWS(token, TokenType, keys)
	if err != nil {
		return nil, ErrTokenInvalid.With(nil, "%v", err)
	}
	c, err := decodeTokenClaims(payload)
	if err != nil {
		return nil, err
	}
	if c.Issuer != issuer {
		return nil, ErrTokenInvalid.With(nil, "iss %q is not %q", c.Issuer, issuer)
	}
	if c.Audience != provider {
		return nil, ErrForbidden.With(nil, "token is for provider %q", c.Audience)
	}
	if err := at.Check(c); err != nil {
		return nil, err
	}
	return c, nil
}
