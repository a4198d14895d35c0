package discovery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/jwstyp"
)

// AllowedAlgorithms are the only JWS algorithms a signed catalog may use.
var allowedAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

// headers a signed catalog must not carry: keys come only from the JWKS the
// verifier already trusts (§2.3), and no extension is understood.
var forbiddenHeaders = []string{"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"}

// maxProtectedHeader bounds the decoded protected header; a real one is
// under 200 bytes.
const maxProtectedHeader = 4 << 10

// SignatureInfo describes how an accepted catalog was signed.
type SignatureInfo struct {
	KeyID     string `json:"kid"` // kid of the verifying key
	Algorithm string `json:"alg"` // "EdDSA" or "ES256"
}

// SignCatalog marshals cat and signs the bytes as a compact JWS with typ
// CatalogJWSType and the given kid. It is what Handler does once per catalog
// version; it is exported for tools that publish catalogs elsewhere (object
// storage, CDNs). The key's Algorithm must be EdDSA or ES256.
func SignCatalog(cat *catalogschema.Catalog, key jose.SigningKey, kid string) ([]byte, error) {
	if key.Algorithm != jose.EdDSA && key.Algorithm != jose.ES256 {
		return nil, fmt.Errorf("discovery: sign catalog: algorithm %q not allowed", key.Algorithm)
	}
	if kid == "" {
		return nil, errors.New("discovery: sign catalog: kid is required")
	}
	payload, err := json.Marshal(cat)
	if err != nil {
		return nil, fmt.Errorf("discovery: sign catalog: %w", err)
	}
	s, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType(CatalogJWSType).WithHeader("kid", kid))
	if err != nil {
		return nil, fmt.Errorf("discovery: sign catalog: %w", err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("discovery: sign catalog: %w", err)
	}
	c, err := obj.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("discovery: sign catalog: %w", err)
	}
	return []byte(c), nil
}

// VerifyCatalog checks a compact-JWS catalog against a trusted key set and
// returns the validated catalog. It enforces the algorithm allow-list (EdDSA,
// ES256), the typ CatalogJWSType (case-insensitive, "application/" prefix
// optional, as RFC 7515 §4.1.9 says), a kid present in keys, and rejects
// the jwk, jku, x5u, x5c, x5t, crit and b64 headers. Signature failures wrap
// ErrSignature, an untrusted kid wraps ErrUnknownKey, and payload problems
// are catalogschema's errors.
func VerifyCatalog(jws []byte, keys *jose.JSONWebKeySet, lim *catalogschema.Limits) (*catalogschema.Catalog, *SignatureInfo, error) {
	payload, info, err := verifyJWS(jws, keys)
	if err != nil {
		return nil, nil, err
	}
	cat, err := catalogschema.ParseCatalog(payload, lim)
	if err != nil {
		return nil, nil, err
	}
	return cat, info, nil
}

func verifyJWS(raw []byte, keys *jose.JSONWebKeySet) ([]byte, *SignatureInfo, error) {
	raw = bytes.TrimSpace(raw)
	if bytes.Count(raw, []byte{'.'}) != 2 {
		return nil, nil, fmt.Errorf("%w: not a compact JWS", ErrSignature)
	}
	hdrB64, _, _ := bytes.Cut(raw, []byte{'.'})
	if base64.RawURLEncoding.DecodedLen(len(hdrB64)) > maxProtectedHeader {
		return nil, nil, fmt.Errorf("%w: protected header too large", ErrSignature)
	}
	hdrJSON := make([]byte, base64.RawURLEncoding.DecodedLen(len(hdrB64)))
	n, err := base64.RawURLEncoding.Decode(hdrJSON, hdrB64)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: protected header: bad base64url", ErrSignature)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(hdrJSON[:n], &hdr); err != nil {
		return nil, nil, fmt.Errorf("%w: protected header: not a JSON object", ErrSignature)
	}
	for _, name := range forbiddenHeaders {
		if _, ok := hdr[name]; ok {
			return nil, nil, fmt.Errorf("%w: forbidden header %q", ErrSignature, name)
		}
	}
	var typ, kid, alg string
	if json.Unmarshal(hdr["typ"], &typ) != nil || !jwstyp.Matches(typ, CatalogJWSType) {
		return nil, nil, fmt.Errorf("%w: typ must be %q", ErrSignature, CatalogJWSType)
	}
	if json.Unmarshal(hdr["kid"], &kid) != nil || kid == "" {
		return nil, nil, fmt.Errorf("%w: kid missing", ErrSignature)
	}
	if json.Unmarshal(hdr["alg"], &alg) != nil {
		return nil, nil, fmt.Errorf("%w: alg missing", ErrSignature)
	}
	obj, err := jose.ParseSignedCompact(string(raw), allowedAlgorithms)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if len(obj.Signatures) != 1 {
		return nil, nil, fmt.Errorf("%w: want exactly one signature", ErrSignature)
	}
	var candidates []jose.JSONWebKey
	if keys != nil {
		candidates = keys.Key(kid)
	}
	if len(candidates) == 0 {
		return nil, nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
	for _, k := range candidates {
		if !k.IsPublic() || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != alg) {
			continue
		}
		payload, err := obj.Verify(k.Key)
		if err == nil {
			return payload, &SignatureInfo{KeyID: kid, Algorithm: alg}, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: verification with key %q failed", ErrSignature, kid)
}
