// Package signkey holds the one signing-key type of the library: authz,
// payment and discovery each name it SigningKey (a type alias), so one key
// made once is handed to every role that signs.
package signkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/keyid"
)

// Key is a private signing key. Key is an ed25519.PrivateKey, an
// *ecdsa.PrivateKey (P-256 or P-384), or any crypto.Signer whose public key
// is one of those (a KMS or HSM key). Algorithm is EdDSA, ES256 or ES384;
// empty means the one the key implies. KeyID is the "kid" published in the
// JWKS and put in every JWS header; empty means the key's RFC 7638
// thumbprint, which is RECOMMENDED (a re-created key never reuses a kid).
//
// String, GoString and Format never print key material. A Key is a value;
// share it freely between goroutines.
type Key struct {
	KeyID     string
	Algorithm jose.SignatureAlgorithm
	Key       crypto.Signer
}

// String describes the key without its material.
func (k Key) String() string {
	alg := k.Algorithm
	if alg == "" && k.Key != nil {
		alg, _ = impliedAlg(k.Key.Public())
	}
	return fmt.Sprintf("SigningKey{kid=%q alg=%s key=[redacted]}", k.KeyID, alg)
}

// GoString is String, so %#v cannot print key bytes.
func (k Key) GoString() string { return k.String() }

// Format prints String for every verb.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// Resolve returns k with KeyID and Algorithm filled in (thumbprint, implied
// algorithm) after checking that the key is usable, that its algorithm is
// in allowed (nil: EdDSA, ES256, ES384) and that it fits the key. The error
// names what is wrong.
func (k Key) Resolve(allowed []jose.SignatureAlgorithm) (Key, error) {
	if k.Key == nil {
		return k, errors.New("signing key: Key is nil")
	}
	pub := k.Key.Public()
	implied, err := impliedAlg(pub)
	if err != nil {
		return k, fmt.Errorf("signing key %q: %w", k.KeyID, err)
	}
	if k.Algorithm == "" {
		k.Algorithm = implied
	}
	if k.Algorithm != implied {
		return k, fmt.Errorf("signing key %q: algorithm %s does not fit the key (want %s)", k.KeyID, k.Algorithm, implied)
	}
	if allowed == nil {
		allowed = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384}
	}
	ok := false
	for _, a := range allowed {
		ok = ok || a == k.Algorithm
	}
	if !ok {
		return k, fmt.Errorf("signing key %q: algorithm %s is not allowed here (want one of %v)", k.KeyID, k.Algorithm, allowed)
	}
	if k.KeyID == "" {
		if k.KeyID, err = keyid.Thumbprint(pub); err != nil {
			return k, fmt.Errorf("signing key: %w", err)
		}
	}
	return k, nil
}

// impliedAlg is the JWS algorithm a public key signs with.
func impliedAlg(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return "", errors.New("bad Ed25519 key length")
		}
		return jose.EdDSA, nil
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		}
		return "", errors.New("ECDSA key must be on P-256 or P-384")
	}
	return "", fmt.Errorf("unsupported key type %T (want Ed25519 or ECDSA)", pub)
}

// PublicJWK returns the public half of k as a JWK with kid, alg and
// use=sig, after Resolve with every algorithm allowed.
func (k Key) PublicJWK() (jose.JSONWebKey, error) {
	r, err := k.Resolve(nil)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	return jose.JSONWebKey{Key: r.Key.Public(), KeyID: r.KeyID, Algorithm: string(r.Algorithm), Use: "sig"}, nil
}

// opaqueSigner adapts a crypto.Signer (KMS, HSM) to go-jose's OpaqueSigner.
// JWS ECDSA signatures are the fixed-width r||s concatenation, while
// crypto.Signer returns ASN.1 DER, so the adapter converts.
type opaqueSigner struct {
	kid    string
	alg    jose.SignatureAlgorithm
	signer crypto.Signer
	public *jose.JSONWebKey
}

// SigningValue returns what jose.NewSigner signs with for a resolved k
// (see Resolve): the private key itself for Ed25519 and ECDSA keys, or a
// jose.OpaqueSigner over any other crypto.Signer (a KMS or HSM key).
func (k Key) SigningValue() any {
	switch k.Key.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
		return k.Key
	}
	return &opaqueSigner{kid: k.KeyID, alg: k.Algorithm, signer: k.Key,
		public: &jose.JSONWebKey{Key: k.Key.Public(), KeyID: k.KeyID, Algorithm: string(k.Algorithm), Use: "sig"}}
}

func (o *opaqueSigner) Public() *jose.JSONWebKey { return o.public }

func (o *opaqueSigner) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{o.alg} }

func (o *opaqueSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != o.alg {
		return nil, fmt.Errorf("signing key %q signs %s, not %s", o.kid, o.alg, alg)
	}
	switch alg {
	case jose.EdDSA:
		// Ed25519 signs the message itself (no pre-hash): crypto.Hash(0).
		return o.signer.Sign(rand.Reader, payload, crypto.Hash(0))
	case jose.ES256, jose.ES384:
		h, size := crypto.SHA256, 32
		if alg == jose.ES384 {
			h, size = crypto.SHA384, 48
		}
		hh := h.New()
		hh.Write(payload)
		der, err := o.signer.Sign(rand.Reader, hh.Sum(nil), h)
		if err != nil {
			return nil, err
		}
		return derToFixed(der, size)
	}
	return nil, fmt.Errorf("signing key: unsupported algorithm %s", alg)
}

// derToFixed converts an ASN.1 DER ECDSA signature to r||s, each padded to size.
func derToFixed(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, errors.New("signing key: malformed ECDSA DER signature")
	}
	if sig.R.BitLen() > size*8 || sig.S.BitLen() > size*8 {
		return nil, errors.New("signing key: ECDSA signature component too large")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}
