package authz

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
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/keyid"
)

// defaultAlgorithms is the verifiers' default JWS algorithm allow-list.
// Only asymmetric algorithms ever appear in an allow-list: MAC algorithms
// would let anyone holding the public key forge tokens.
var defaultAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

// supportedAlgorithms are the algorithms a SigningKey or an allow-list may name.
var supportedAlgorithms = map[jose.SignatureAlgorithm]bool{jose.EdDSA: true, jose.ES256: true, jose.ES384: true}

// DefaultAlgorithms returns a copy of the default algorithm allow-list
// (EdDSA with Ed25519, and ES256).
func DefaultAlgorithms() []jose.SignatureAlgorithm {
	return append([]jose.SignatureAlgorithm(nil), defaultAlgorithms...)
}

// SigningKey is an orchestrator signing key. Key is an ed25519.PrivateKey,
// an *ecdsa.PrivateKey, or any crypto.Signer whose public key is Ed25519 or
// ECDSA — a key held in a KMS or HSM, whose private half never enters the
// process. Algorithm is EdDSA, ES256 or ES384 and must fit the key. KeyID is
// the "kid" published in the JWKS and put in every token's header; leave it
// empty to use the key's RFC 7638 thumbprint (KeyThumbprint), which is
// RECOMMENDED: a re-created key then never reuses an old kid.
//
// A SigningKey's String and Format never print key material.
type SigningKey struct {
	KeyID     string
	Algorithm jose.SignatureAlgorithm
	Key       any
}

// String describes the key without its material.
func (k SigningKey) String() string {
	return fmt.Sprintf("SigningKey{kid=%q alg=%s}", k.KeyID, k.Algorithm)
}

// Format prints the same as String for every verb, so %#v and %+v cannot leak
// private key bytes either.
func (k SigningKey) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }

// KeyThumbprint returns the RFC 7638 SHA-256 JWK thumbprint of key
// (base64url, no padding): the kid a SigningKey with an empty KeyID gets.
// key is a public key or a crypto.Signer.
func KeyThumbprint(key any) (string, error) { return keyid.Thumbprint(key) }

// GenerateSigningKey creates a fresh key for alg (EdDSA, ES256 or ES384) with
// the given key id ("" for the key's thumbprint). It is meant for tests, examples and bootstrapping;
// production keys usually live in a KMS.
func GenerateSigningKey(kid string, alg jose.SignatureAlgorithm) (SigningKey, error) {
	var key any
	var err error
	switch alg {
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return SigningKey{}, fmt.Errorf("authz: signing key: unsupported algorithm %q", alg)
	}
	if err != nil {
		return SigningKey{}, err
	}
	if kid == "" {
		if kid, err = keyid.Thumbprint(key); err != nil {
			return SigningKey{}, err
		}
	}
	return SigningKey{KeyID: kid, Algorithm: alg, Key: key}, nil
}

// preparedKey is a validated SigningKey ready to sign: its public JWK and a
// cache of one jose.Signer per "typ" (the typ lives in the protected header,
// so each typ needs its own signer; building them once keeps signing cheap).
type preparedKey struct {
	kid     string
	alg     jose.SignatureAlgorithm
	signing any // value handed to jose.NewSigner
	public  jose.JSONWebKey
	signers sync.Map // typ string -> jose.Signer
}

func prepareKey(k SigningKey) (*preparedKey, error) {
	if k.KeyID == "" {
		kid, err := keyid.Thumbprint(k.Key)
		if err != nil {
			return nil, fmt.Errorf("authz: signing key: no KeyID, and none derivable: %w", err)
		}
		k.KeyID = kid
	}
	if !supportedAlgorithms[k.Algorithm] {
		return nil, fmt.Errorf("authz: signing key %q: unsupported algorithm %q (want EdDSA, ES256 or ES384)", k.KeyID, k.Algorithm)
	}
	var pub crypto.PublicKey
	signing := k.Key
	switch key := k.Key.(type) {
	case ed25519.PrivateKey:
		if len(key) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("authz: signing key %q: bad Ed25519 key length", k.KeyID)
		}
		pub = key.Public()
	case *ecdsa.PrivateKey:
		pub = key.Public()
	case crypto.Signer:
		pub = key.Public()
		op, err := newOpaqueSigner(k.KeyID, k.Algorithm, key)
		if err != nil {
			return nil, err
		}
		signing = op
	case nil:
		return nil, fmt.Errorf("authz: signing key %q: Key is nil", k.KeyID)
	default:
		return nil, fmt.Errorf("authz: signing key %q: unsupported key type %T", k.KeyID, k.Key)
	}
	if err := checkKeyFitsAlg(pub, k.Algorithm); err != nil {
		return nil, fmt.Errorf("authz: signing key %q: %w", k.KeyID, err)
	}
	return &preparedKey{
		kid:     k.KeyID,
		alg:     k.Algorithm,
		signing: signing,
		public:  jose.JSONWebKey{Key: pub, KeyID: k.KeyID, Algorithm: string(k.Algorithm), Use: "sig"},
	}, nil
}

// checkKeyFitsAlg reports whether pub is the key type and curve alg needs.
func checkKeyFitsAlg(pub crypto.PublicKey, alg jose.SignatureAlgorithm) error {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if alg == jose.EdDSA && len(p) == ed25519.PublicKeySize {
			return nil
		}
	case *ecdsa.PublicKey:
		if (alg == jose.ES256 && p.Curve == elliptic.P256()) || (alg == jose.ES384 && p.Curve == elliptic.P384()) {
			return nil
		}
	}
	return fmt.Errorf("key of type %T does not fit algorithm %s", pub, alg)
}

// signer returns the cached jose.Signer for typ.
func (p *preparedKey) signer(typ string) (jose.Signer, error) {
	if s, ok := p.signers.Load(typ); ok {
		return s.(jose.Signer), nil
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader(jose.HeaderKey("kid"), p.kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: p.alg, Key: p.signing}, opts)
	if err != nil {
		return nil, fmt.Errorf("authz: signer for %q: %w", p.kid, err)
	}
	actual, _ := p.signers.LoadOrStore(typ, s)
	return actual.(jose.Signer), nil
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

func newOpaqueSigner(kid string, alg jose.SignatureAlgorithm, s crypto.Signer) (*opaqueSigner, error) {
	pub := s.Public()
	if err := checkKeyFitsAlg(pub, alg); err != nil {
		return nil, fmt.Errorf("authz: signing key %q: %w", kid, err)
	}
	return &opaqueSigner{kid: kid, alg: alg, signer: s, public: &jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}}, nil
}

func (o *opaqueSigner) Public() *jose.JSONWebKey { return o.public }

func (o *opaqueSigner) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{o.alg} }

func (o *opaqueSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != o.alg {
		return nil, fmt.Errorf("authz: key %q signs %s, not %s", o.kid, o.alg, alg)
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
	return nil, fmt.Errorf("authz: unsupported algorithm %s", alg)
}

// derToFixed converts an ASN.1 DER ECDSA signature to r||s, each padded to size.
func derToFixed(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, errors.New("authz: malformed ECDSA DER signature")
	}
	if sig.R.BitLen() > size*8 || sig.S.BitLen() > size*8 {
		return nil, errors.New("authz: ECDSA signature component too large")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}
