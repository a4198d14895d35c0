package authz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/jwstyp"
	"github.com/agentprov/agentprov/internal/oauthwire"
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

// issuerClaims is a claims set verifySignature decodes a payload into;
// each has an "iss" member, which names the keys to verify with.
type issuerClaims interface{ issuer() string }

func (c *attestationClaims) issuer() string { return c.Issuer }
func (c *consentClaims) issuer() string     { return c.Issuer }
func (c *registeredClaims) issuer() string  { return c.Issuer }

// verifySignature runs the checks common to every typed token up to and
// including the signature and returns the verified payload and issuer.
//
// The payload is decoded once, into claims, before the signature is
// checked: its "iss" chooses whose keys verify it. claims may be used only
// when both errors are nil. claimsErr reports a payload that is JSON but
// does not decode into claims' type; as before this fast path, it is
// reported only once the signature has verified.
//
// EdDSA and ES256 are verified directly with crypto/ed25519 and
// crypto/ecdsa over the signing input as received, from a header decoded
// once (by go-jose's JSON decoder, which refuses duplicate members, as
// go-jose does): parsing the token again with go-jose and re-encoding the
// payload cost about as much as the checks themselves. The header is held
// to exactly what go-jose would accept, and the signature to exactly what
// go-jose's verifier takes, so both paths accept and refuse the same tokens
// (attest_equiv_test.go). ES384 goes through go-jose.
func (v *Verifier) verifySignature(ctx context.Context, token, typ string, claims issuerClaims) (payload []byte, iss string, claimsErr, err error) {
	if err := ctx.Err(); err != nil {
		return nil, "", nil, err
	}
	if len(token) > v.maxBytes {
		return nil, "", nil, errorf(ErrTokenTooLarge, nil, "token of %d bytes exceeds %d", len(token), v.maxBytes)
	}
	if strings.Count(token, ".") != 2 {
		return nil, "", nil, errorf(ErrMalformedToken, nil, "not a compact JWS")
	}
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ := strings.Cut(rest, ".")
	// Strict decoding rejects non-zero trailing bits: without it, changing
	// the last character of a segment can leave the decoded bytes, and so
	// the signature check, unchanged, making tokens malleable.
	hb, err := strictBase64.DecodeString(h)
	if err != nil {
		return nil, "", nil, errorf(ErrMalformedToken, nil, "header is not canonical base64url")
	}
	payload, perr := strictBase64.DecodeString(p)
	sig, serr := strictBase64.DecodeString(s)
	if perr != nil || serr != nil {
		return nil, "", nil, errorf(ErrMalformedToken, nil, "payload or signature is not canonical base64url")
	}
	hdr, joseRefuses, ok := decodeHeader(hb)
	if !ok {
		return nil, "", nil, errorf(ErrMalformedToken, nil, "header is not a JSON object")
	}
	alg, err := jsonString(hdr["alg"])
	if err != nil || alg == "" {
		return nil, "", nil, errorf(ErrMalformedToken, nil, "header has no \"alg\"")
	}
	if !slices.Contains(v.algs, jose.SignatureAlgorithm(alg)) {
		return nil, "", nil, errorf(ErrAlgorithmNotAllowed, nil, "algorithm %q is not allowed", clip(alg))
	}
	for _, name := range forbiddenHeaders {
		if _, ok := hdr[name]; ok {
			return nil, "", nil, errorf(ErrForbiddenHeader, nil, "header %q is not accepted", name)
		}
	}
	if raw, ok := hdr["typ"]; !ok || !typMatches(raw, typ) {
		return nil, "", nil, errorf(ErrWrongTokenType, nil, "typ %s, want %q", orMissing(hdr["typ"]), typ)
	}
	kid, err := jsonString(hdr["kid"])
	if err != nil || kid == "" {
		return nil, "", nil, errorf(ErrMalformedToken, nil, "header has no \"kid\"")
	}
	// jws stays nil on the fast path unless a key is not of the kind
	// the fast path verifies with (see verify).
	var jws *jose.JSONWebSignature
	if alg == string(jose.EdDSA) || alg == string(jose.ES256) {
		if joseRefuses || !joseAcceptsMembers(hdr) {
			return nil, "", nil, errorf(ErrMalformedToken, nil, "unparsable JWS")
		}
	} else {
		if jws, err = jose.ParseSignedCompact(token, v.algs); err != nil {
			return nil, "", nil, errorf(ErrMalformedToken, nil, "unparsable JWS")
		}
	}
	// The issuer is read before verification only to choose whose keys to
	// verify with; claims are returned only once the signature verifies.
	decodeErr := json.Unmarshal(payload, claims)
	if decodeErr == nil {
		iss = claims.issuer()
	} else {
		// Tell a payload that is not JSON, or whose "iss" is not a
		// string (refused now), from other members of the wrong type
		// (refused after the signature check).
		var peek struct {
			Issuer string `json:"iss"`
		}
		if err := json.Unmarshal(payload, &peek); err != nil {
			return nil, "", nil, errorf(ErrMalformedToken, nil, "payload is not a JSON object")
		}
		iss = peek.Issuer
	}
	ik := v.issuers[iss]
	if ik == nil {
		return nil, "", nil, errorf(ErrUnknownIssuer, nil, "issuer %q is not trusted", clip(iss))
	}
	key, err := ik.lookup(ctx, kid, jose.SignatureAlgorithm(alg))
	if err != nil {
		return nil, "", nil, err
	}
	signingInput := []byte(token[:len(h)+1+len(p)])
	verify := func(k *jose.JSONWebKey) bool {
		if jws == nil {
			switch pub := k.Key.(type) {
			case ed25519.PublicKey:
				if alg == string(jose.EdDSA) && len(pub) == ed25519.PublicKeySize {
					return ed25519.Verify(pub, signingInput, sig)
				}
			case *ecdsa.PublicKey:
				if alg == string(jose.ES256) && pub != nil {
					return verifyES256(pub, signingInput, sig)
				}
			}
			// Another kind of key (a jose.OpaqueVerifier, say), or one
			// that does not fit alg: go-jose knows how to use or refuse it.
			parsed, err := jose.ParseSignedCompact(token, v.algs)
			if err != nil {
				return false
			}
			jws = parsed
		}
		_, err := jws.Verify(k)
		return err == nil
	}
	ok = verify(key)
	if !ok && ik.set != nil && !ik.isPinned(kid) {
		// The issuer may have re-created the key under the same kid:
		// refetch once (rate-limited) rather than wait out the cache.
		if fresh, ferr := ik.set.keyAfterFailure(ctx, kid, jose.SignatureAlgorithm(alg), key); ferr == nil && keyFitsAlg(fresh, jose.SignatureAlgorithm(alg)) {
			ok = verify(fresh)
		}
	}
	if !ok {
		return nil, "", nil, errorf(ErrInvalidSignature, nil, "signature does not verify under key %q", clip(kid))
	}
	if decodeErr != nil {
		return payload, iss, decodeClaims(payload, claims), nil
	}
	return payload, iss, nil, nil
}

// verifyES256 checks an ES256 signature as go-jose's verifier does: the key
// must be on P-256, the signature exactly r||s of 32 bytes each (RFC 7518
// §3.4), and r and s are handed to ecdsa.Verify as they are, so a
// high-S signature verifies here exactly when it does in go-jose.
func verifyES256(pub *ecdsa.PublicKey, signingInput, sig []byte) bool {
	if pub.Curve != elliptic.P256() || len(sig) != 64 {
		return false
	}
	digest := sha256.Sum256(signingInput)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, digest[:], r, s)
}

// strictBase64 is unpadded base64url refusing non-zero trailing bits, so
// that a token has a single spelling.
var strictBase64 = base64.RawURLEncoding.Strict()

// decodeHeader decodes a JWS protected header once, with go-jose's JSON
// decoder, which refuses duplicate members. If that decoder refuses it
// (joseRefuses) but encoding/json takes it, the header is returned as
// encoding/json reads it, so that the checks that come before go-jose's
// run as they did before the fast path. ok is false when the header is
// not a JSON object at all.
func decodeHeader(hb []byte) (hdr map[string]json.RawMessage, joseRefuses, ok bool) {
	if hdr, ok := flatStringObject(hb); ok {
		return hdr, false, true
	}
	if josejson.Unmarshal(hb, &hdr) == nil {
		return hdr, false, hdr != nil
	}
	hdr = nil
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr == nil {
		return nil, true, false
	}
	return hdr, true, true
}

// flatStringObject reads the usual header, a JSON object whose members
// and values are all plain strings (printable ASCII, no escapes) with no
// member twice; each value keeps its quotes. ok is false for anything
// else, which then goes to the JSON decoders: for the objects it takes,
// encoding/json and go-jose's decoder read the same members and values.
func flatStringObject(b []byte) (obj map[string]json.RawMessage, ok bool) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return nil, false
	}
	obj = make(map[string]json.RawMessage, 4)
	for {
		i = skipSpace(b, i+1)
		name, end, ok := plainString(b, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(b, end)
		if i == len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		_, end, ok = plainString(b, i)
		if !ok {
			return nil, false
		}
		if _, dup := obj[string(name)]; dup {
			return nil, false
		}
		obj[string(name)] = json.RawMessage(b[i:end])
		i = skipSpace(b, end)
		if i == len(b) {
			return nil, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return nil, false
		}
	}
	if skipSpace(b, i+1) != len(b) {
		return nil, false
	}
	return obj, true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] made only of printable ASCII
// without escapes, returning its content and the index after its closing
// quote.
func plainString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// jsonString decodes a JSON string value as encoding/json does, without
// its reflection for the plain strings plainString reads.
func jsonString(raw json.RawMessage) (string, error) {
	if s, end, ok := plainString(raw, 0); ok && end == len(raw) {
		return string(s), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// typMatches reports whether raw is a JSON string naming typ.
func typMatches(raw json.RawMessage, typ string) bool {
	got, err := jsonString(raw)
	return err == nil && jwstyp.Matches(got, typ)
}

// joseAcceptsMembers reports whether go-jose's parser would take the
// members of a header that has already passed our own checks: "alg",
// "kid" and "typ" are strings by then and the members go-jose reads as
// keys or certificates are forbidden; it reads "nonce" as a string and
// every other member as a JSON value of any type.
func joseAcceptsMembers(hdr map[string]json.RawMessage) bool {
	for name, raw := range hdr {
		switch name {
		case "alg", "kid", "typ":
		case "nonce":
			var s string
			if josejson.Unmarshal(raw, &s) != nil {
				return false
			}
		default:
			var x any
			if josejson.Unmarshal(raw, &x) != nil {
				return false
			}
		}
	}
	return true
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
	var c attestationClaims
	_, iss, claimsErr, err := v.verifySignature(ctx, token, TypeAttestation, &c)
	if err != nil {
		return nil, err
	}
	if claimsErr != nil {
		return nil, claimsErr
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
	if c.Service != "" && !oauthwire.ValidServiceRef(c.Service) {
		return nil, errorf(ErrMalformedToken, nil, "service %q is not a valid service ref", clip(c.Service))
	}
	if p, _, _ := strings.Cut(c.Service, "/"); c.Service != "" && p != c.Audience {
		return nil, errorf(ErrMalformedToken, nil, "service %q is not offered by the audience", clip(c.Service))
	}
	if c.Project != "" && !oauthwire.ValidProjectID(c.Project) {
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
		var cc consentClaims
		_, ciss, claimsErr, err := v.verifySignature(ctx, c.Consent, TypeConsent, &cc)
		if err != nil {
			return nil, fmt.Errorf("authz: embedded consent receipt: %w", err)
		}
		if claimsErr != nil {
			return nil, claimsErr
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
	return v.VerifyTypedFunc(ctx, token, typ, claims, nil)
}

// VerifyTypedFunc is VerifyTyped with a hook: check, when not nil, runs
// after every other check and the decoding of claims but before "jti" is
// consumed, so a caller that refuses the token's content (an invalid
// revocation event) leaves its jti unspent. check's error is returned as is.
func (v *Verifier) VerifyTypedFunc(ctx context.Context, token, typ string, claims any, check func() error) error {
	var c registeredClaims
	payload, iss, claimsErr, err := v.verifySignature(ctx, token, typ, &c)
	if err != nil {
		return err
	}
	if claimsErr != nil {
		return claimsErr
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
