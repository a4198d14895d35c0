package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/jwstyp"
)

// TrustedIssuer is an orchestrator a provider accepts attestations from.
// Keys pins its public keys; JWKSURL names its JWKS for fetching (through a
// KeySet). At least one must be set; pinned keys are tried first.
type TrustedIssuer struct {
	Issuer  string
	Keys    *jose.JSONWebKeySet
	JWKSURL string
}

// VerifierOptions tune a Verifier. The zero value is safe.
type VerifierOptions struct {
	// Algorithms is the JWS allow-list; default EdDSA and ES256. Only
	// EdDSA, ES256 and ES384 may appear.
	Algorithms []jose.SignatureAlgorithm
	// Leeway allowed on exp, nbf and iat; default 30 seconds, at most 60.
	Leeway time.Duration
	// MaxLifetime bounds exp−iat; default 10 minutes.
	MaxLifetime time.Duration
	// MaxTokenBytes bounds a token's length, checked before any parsing;
	// default 8 KiB.
	MaxTokenBytes int
	// MaxConsentAge, if positive, bounds the age of consent receipts.
	MaxConsentAge time.Duration
	// KeySet configures the KeySets built for issuers given by JWKSURL.
	KeySet *KeySetOptions
	// Clock reads the time; default time.Now. It is also handed to the
	// KeySets unless KeySet.Clock is set.
	Clock func() time.Time
}

// Verifier is the provider-side checker of identity attestations, consent
// receipts and other typed JWTs issued by trusted orchestrators. Checks run
// in the order of PROTOCOL §4.1.3, cheapest and most hostile-input-facing
// first; the single-use "jti" is consumed last, only once everything else
// has passed, so a rejected token never burns its id.
//
// A Verifier is safe for concurrent use.
type Verifier struct {
	audience      string
	algs          []jose.SignatureAlgorithm
	leeway        time.Duration
	maxLifetime   time.Duration
	maxBytes      int
	maxConsentAge time.Duration
	now           clock.Func
	replay        ReplayStore
	issuers       map[string]*issuerKeys
}

type issuerKeys struct {
	pinned map[string][]jose.JSONWebKey
	set    *KeySet
}

// isPinned reports whether kid is one of the pinned keys.
func (ik *issuerKeys) isPinned(kid string) bool { return len(ik.pinned[kid]) > 0 }

func (ik *issuerKeys) lookup(ctx context.Context, kid string, alg jose.SignatureAlgorithm) (*jose.JSONWebKey, error) {
	if k, ok := pickKey(ik.pinned[kid], alg); ok {
		return k, nil
	}
	if ik.set == nil {
		return nil, errorf(ErrUnknownKey, nil, "no pinned key %q", clip(kid))
	}
	k, err := ik.set.lookup(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	if !keyFitsAlg(k, alg) {
		return nil, errorf(ErrUnknownKey, nil, "key %q does not fit %s", clip(kid), alg)
	}
	return k, nil
}

// NewVerifier returns a Verifier for attestations addressed to audience
// (this provider's id), trusting the given issuers. replay records used
// token ids and is required: without it an intercepted attestation could be
// replayed until it expires.
func NewVerifier(audience string, trust []TrustedIssuer, replay ReplayStore, opts *VerifierOptions) (*Verifier, error) {
	if opts == nil {
		opts = &VerifierOptions{}
	}
	if audience == "" {
		return nil, errors.New("authz: verifier: audience is required")
	}
	if replay == nil {
		return nil, errors.New("authz: verifier: a ReplayStore is required")
	}
	if len(trust) == 0 {
		return nil, errors.New("authz: verifier: at least one trusted issuer is required")
	}
	v := &Verifier{
		audience:      audience,
		algs:          opts.Algorithms,
		leeway:        opts.Leeway,
		maxLifetime:   opts.MaxLifetime,
		maxBytes:      opts.MaxTokenBytes,
		maxConsentAge: opts.MaxConsentAge,
		now:           clock.Func(opts.Clock),
		replay:        replay,
		issuers:       make(map[string]*issuerKeys, len(trust)),
	}
	if len(v.algs) == 0 {
		v.algs = DefaultAlgorithms()
	} else {
		v.algs = slices.Clone(v.algs)
	}
	for _, a := range v.algs {
		if !supportedAlgorithms[a] {
			return nil, fmt.Errorf("authz: verifier: algorithm %q may not be allowed (only EdDSA, ES256, ES384)", a)
		}
	}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	if v.leeway < 0 || v.leeway > MaxLeeway {
		return nil, fmt.Errorf("authz: verifier: leeway %v outside [0, %v]", v.leeway, MaxLeeway)
	}
	if v.maxLifetime == 0 {
		v.maxLifetime = DefaultMaxLifetime
	}
	if v.maxLifetime < 0 {
		return nil, errors.New("authz: verifier: MaxLifetime must be positive")
	}
	if v.maxBytes == 0 {
		v.maxBytes = DefaultMaxTokenBytes
	}
	if v.maxBytes < 0 {
		return nil, errors.New("authz: verifier: MaxTokenBytes must be positive")
	}
	for _, ti := range trust {
		if ti.Issuer == "" {
			return nil, errors.New("authz: verifier: trusted issuer with an empty Issuer")
		}
		if _, dup := v.issuers[ti.Issuer]; dup {
			return nil, fmt.Errorf("authz: verifier: issuer %q listed twice", ti.Issuer)
		}
		ik := &issuerKeys{pinned: map[string][]jose.JSONWebKey{}}
		if ti.Keys == nil && ti.JWKSURL == "" {
			return nil, fmt.Errorf("authz: verifier: issuer %q has neither Keys nor JWKSURL", ti.Issuer)
		}
		if ti.Keys != nil {
			for _, k := range ti.Keys.Keys {
				if k.KeyID == "" {
					return nil, fmt.Errorf("authz: verifier: issuer %q: pinned key without kid", ti.Issuer)
				}
				pub := k.Public()
				if !pub.Valid() {
					return nil, fmt.Errorf("authz: verifier: issuer %q: pinned key %q is not an asymmetric key", ti.Issuer, k.KeyID)
				}
				ik.pinned[k.KeyID] = append(ik.pinned[k.KeyID], pub)
			}
		}
		if ti.JWKSURL != "" {
			var kso KeySetOptions
			if opts.KeySet != nil {
				kso = *opts.KeySet
			}
			if kso.Clock == nil {
				kso.Clock = opts.Clock
			}
			set, err := NewKeySet(ti.JWKSURL, &kso)
			if err != nil {
				return nil, fmt.Errorf("authz: verifier: issuer %q: %w", ti.Issuer, err)
			}
			ik.set = set
		}
		v.issuers[ti.Issuer] = ik
	}
	return v, nil
}

// Audience returns the audience the verifier accepts.
func (v *Verifier) Audience() string { return v.audience }

// KeySet returns the KeySet used for issuer, or nil when the issuer is
// unknown or only has pinned keys.
func (v *Verifier) KeySet(issuer string) *KeySet {
	if ik := v.issuers[issuer]; ik != nil {
		return ik.set
	}
	return nil
}

// forbiddenHeaders may carry or point at a key, or change how the JWS is
// processed; keys come only from the trusted issuer's JWKS.
var forbiddenHeaders = []string{"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"}

// verifySignature runs the checks common to every typed token up to and
// including the signature and returns the verified payload and issuer.
func (v *Verifier) verifySignature(ctx context.Context, token, typ string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if len(token) > v.maxBytes {
		return nil, "", errorf(ErrTokenTooLarge, nil, "token of %d bytes exceeds %d", len(token), v.maxBytes)
	}
	if strings.Count(token, ".") != 2 {
		return nil, "", errorf(ErrMalformedToken, nil, "not a compact JWS")
	}
	h, rest, _ := strings.Cut(token, ".")
	p, sig, _ := strings.Cut(rest, ".")
	// Strict decoding rejects non-zero trailing bits: without it, changing
	// the last character of a segment can leave the decoded bytes, and so
	// the signature check, unchanged, making tokens malleable.
	hb, err := base64.RawURLEncoding.Strict().DecodeString(h)
	if err != nil {
		return nil, "", errorf(ErrMalformedToken, nil, "header is not canonical base64url")
	}
	if !canonicalBase64(p) || !canonicalBase64(sig) {
		return nil, "", errorf(ErrMalformedToken, nil, "payload or signature is not canonical base64url")
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr == nil {
		return nil, "", errorf(ErrMalformedToken, nil, "header is not a JSON object")
	}
	var alg string
	if json.Unmarshal(hdr["alg"], &alg) != nil || alg == "" {
		return nil, "", errorf(ErrMalformedToken, nil, "header has no \"alg\"")
	}
	if !slices.Contains(v.algs, jose.SignatureAlgorithm(alg)) {
		return nil, "", errorf(ErrAlgorithmNotAllowed, nil, "algorithm %q is not allowed", clip(alg))
	}
	for _, name := range forbiddenHeaders {
		if _, ok := hdr[name]; ok {
			return nil, "", errorf(ErrForbiddenHeader, nil, "header %q is not accepted", name)
		}
	}
	var gotTyp string
	if raw, ok := hdr["typ"]; !ok || json.Unmarshal(raw, &gotTyp) != nil || !jwstyp.Matches(gotTyp, typ) {
		return nil, "", errorf(ErrWrongTokenType, nil, "typ %s, want %q", orMissing(hdr["typ"]), typ)
	}
	var kid string
	if json.Unmarshal(hdr["kid"], &kid) != nil || kid == "" {
		return nil, "", errorf(ErrMalformedToken, nil, "header has no \"kid\"")
	}
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		return nil, "", errorf(ErrMalformedToken, nil, "unparsable JWS")
	}
	// The issuer is read before verification only to choose whose keys to
	// verify with; the claim is re-checked against the verified payload.
	var peek struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &peek); err != nil {
		return nil, "", errorf(ErrMalformedToken, nil, "payload is not a JSON object")
	}
	ik := v.issuers[peek.Issuer]
	if ik == nil {
		return nil, "", errorf(ErrUnknownIssuer, nil, "issuer %q is not trusted", clip(peek.Issuer))
	}
	key, err := ik.lookup(ctx, kid, jose.SignatureAlgorithm(alg))
	if err != nil {
		return nil, "", err
	}
	payload, err := jws.Verify(key)
	if err != nil && ik.set != nil && !ik.isPinned(kid) {
		// The issuer may have re-created the key under the same kid:
		// refetch once (rate-limited) rather than wait out the cache.
		if fresh, ferr := ik.set.keyAfterFailure(ctx, kid, jose.SignatureAlgorithm(alg), key); ferr == nil && keyFitsAlg(fresh, jose.SignatureAlgorithm(alg)) {
			payload, err = jws.Verify(fresh)
		}
	}
	if err != nil {
		return nil, "", errorf(ErrInvalidSignature, nil, "signature does not verify under key %q", clip(kid))
	}
	return payload, peek.Issuer, nil
}

// canonicalBase64 reports whether s is unpadded base64url with zero
// trailing bits.
func canonicalBase64(s string) bool {
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// clip shortens attacker-controlled text before it goes into an error
// detail, which may be sent back on the wire.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

func orMissing(raw json.RawMessage) string {
	if raw == nil {
		return "missing"
	}
	if len(raw) > 64 {
		return string(raw[:64]) + "…"
	}
	return string(raw)
}

// decodeClaims decodes a verified payload into dst; type mismatches are
// malformed tokens, unknown members are ignored (PROTOCOL §2.1).
func decodeClaims(payload []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(dst); err != nil {
		return errorf(ErrMalformedToken, nil, "claims do not decode: %s", jsonErrorText(err))
	}
	return nil
}

func jsonErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "member " + strconv.Quote(te.Field) + " has the wrong type"
	}
	return "invalid JSON"
}

// checkTimes applies the exp, nbf, iat and lifetime rules.
func (v *Verifier) checkTimes(iat, nbf, exp int64) error {
	if iat == 0 || exp == 0 {
		return errorf(ErrMalformedToken, nil, "token lacks iat or exp")
	}
	if exp <= iat {
		return errorf(ErrMalformedToken, nil, "exp is not after iat")
	}
	now := v.now.Now()
	if !now.Before(time.Unix(exp, 0).Add(v.leeway)) {
		return errorf(ErrTokenExpired, nil, "expired at %s", time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	if nbf != 0 && now.Add(v.leeway).Before(time.Unix(nbf, 0)) {
		return errorf(ErrTokenNotYetValid, nil, "not valid before %s", time.Unix(nbf, 0).UTC().Format(time.RFC3339))
	}
	if now.Add(v.leeway).Before(time.Unix(iat, 0)) {
		return errorf(ErrTokenNotYetValid, nil, "issued in the future, at %s", time.Unix(iat, 0).UTC().Format(time.RFC3339))
	}
	if time.Duration(exp-iat)*time.Second > v.maxLifetime {
		return errorf(ErrLifetimeTooLong, nil, "lifetime %v exceeds %v", time.Duration(exp-iat)*time.Second, v.maxLifetime)
	}
	return nil
}

// consume records jti as used until exp plus leeway. Ids are scoped by
// token type and issuer, so two issuers (or two kinds of token) can never
// burn each other's ids.
func (v *Verifier) consume(ctx context.Context, typ, iss, jti string, exp int64) error {
	if jti == "" || len(jti) > 256 {
		return errorf(ErrMalformedToken, nil, "jti missing or longer than 256 bytes")
	}
	key := typ + " " + strconv.Itoa(len(iss)) + ":" + iss + " " + jti
	fresh, err := v.replay.PutIfAbsent(ctx, key, time.Unix(exp, 0).Add(v.leeway))
	if err != nil {
		if AsError(err) != nil {
			return err
		}
		return fmt.Errorf("authz: replay store: %w", err)
	}
	if !fresh {
		return errorf(ErrTokenReplayed, nil, "token id already used")
	}
	return nil
}

// Verify verifies an identity attestation and consumes its "jti". See
// PROTOCOL §4.1.3 for the order of checks; each failure is an *Error whose
// code names what was wrong.
func (v *Verifier) Verify(ctx context.Context, token string) (*Attestation, error) {
	payload, iss, err := v.verifySignature(ctx, token, TypeAttestation)
	if err != nil {
		return nil, err
	}
	var c attestationClaims
	if err := decodeClaims(payload, &c); err != nil {
		return nil, err
	}
	if c.Issuer != iss {
		return nil, errorf(ErrMalformedToken, nil, "issuer changed during verification")
	}
	if c.Audience != v.audience {
		return nil, errorf(ErrWrongAudience, nil, "attestation is for %q", clip(c.Audience))
	}
	if c.Subject == "" || c.ID == "" {
		return nil, errorf(ErrMalformedToken, nil, "attestation lacks sub or jti")
	}
	if err := v.checkTimes(c.IssuedAt, c.NotBefore, c.Expiry); err != nil {
		return nil, err
	}
	if c.Service != "" && !validServiceRef(c.Service) {
		return nil, errorf(ErrMalformedToken, nil, "service %q is not a valid service ref", clip(c.Service))
	}
	if p, _, _ := strings.Cut(c.Service, "/"); c.Service != "" && p != c.Audience {
		return nil, errorf(ErrMalformedToken, nil, "service %q is not offered by the audience", clip(c.Service))
	}
	if c.Project != "" && !validProjectID(c.Project) {
		return nil, errorf(ErrMalformedToken, nil, "project %q is not a valid project id", clip(c.Project))
	}
	att := &Attestation{
		Issuer:        c.Issuer,
		Subject:       c.Subject,
		Audience:      c.Audience,
		Email:         c.Email,
		EmailVerified: c.EmailVerified,
		Name:          c.Name,
		ID:            c.ID,
		IssuedAt:      time.Unix(c.IssuedAt, 0).UTC(),
		Expiry:        time.Unix(c.Expiry, 0).UTC(),
		Actor:         c.Actor,
		Project:       c.Project,
		Service:       c.Service,
		Consent:       c.Consent,
	}
	if c.NotBefore != 0 {
		att.NotBefore = time.Unix(c.NotBefore, 0).UTC()
	}
	if c.Consent != "" {
		cp, ciss, err := v.verifySignature(ctx, c.Consent, TypeConsent)
		if err != nil {
			return nil, fmt.Errorf("authz: embedded consent receipt: %w", err)
		}
		var cc consentClaims
		if err := decodeClaims(cp, &cc); err != nil {
			return nil, err
		}
		r, err := v.checkConsentClaims(&cc, ciss)
		if err != nil {
			return nil, fmt.Errorf("authz: embedded consent receipt: %w", err)
		}
		if r.Issuer != c.Issuer || r.Subject != c.Subject {
			return nil, errorf(ErrMalformedToken, nil, "embedded consent receipt is for another issuer or subject")
		}
		att.ConsentReceipt = r
	}
	if err := v.consume(ctx, TypeAttestation, iss, c.ID, c.Expiry); err != nil {
		return nil, err
	}
	return att, nil
}

// registeredClaims are the claims VerifyTyped checks.
type registeredClaims struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"`
	ID        string `json:"jti"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
}

// VerifyTyped verifies a JWT of JOSE type typ signed by a trusted issuer
// (see Attester.Sign) with the same checks as Verify — size, algorithm
// allow-list, header, typ, issuer, key, signature, "aud" equal to the
// verifier's audience, exp/nbf/iat with leeway, maximum lifetime, and
// single use of "jti" — then decodes the payload into claims.
func (v *Verifier) VerifyTyped(ctx context.Context, token, typ string, claims any) error {
	return v.verifyTyped(ctx, token, typ, claims, nil)
}

// verifyTyped is VerifyTyped with a hook: check, when not nil, runs after
// every other check and the decoding of claims but before "jti" is
// consumed, so a caller that refuses the token's content (an invalid
// revocation event) leaves its jti unspent. check's error is returned as is.
func (v *Verifier) verifyTyped(ctx context.Context, token, typ string, claims any, check func() error) error {
	payload, iss, err := v.verifySignature(ctx, token, typ)
	if err != nil {
		return err
	}
	var c registeredClaims
	if err := decodeClaims(payload, &c); err != nil {
		return err
	}
	if c.Issuer != iss {
		return errorf(ErrMalformedToken, nil, "issuer changed during verification")
	}
	if c.Audience != v.audience {
		return errorf(ErrWrongAudience, nil, "token is for %q", clip(c.Audience))
	}
	if err := v.checkTimes(c.IssuedAt, c.NotBefore, c.Expiry); err != nil {
		return err
	}
	if claims != nil {
		if err := decodeClaims(payload, claims); err != nil {
			return err
		}
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	return v.consume(ctx, typ, iss, c.ID, c.Expiry)
}
