package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/jwstyp"
)

// verifySignatureJose is the reference: verifySignature as it was before
// the EdDSA and ES256 fast path, parsing and verifying every token with
// go-jose.
func (v *Verifier) verifySignatureJose(ctx context.Context, token, typ string) ([]byte, string, error) {
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
