package authz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/keyid"
	"github.com/agentprov/agentprov/internal/signkey"
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

// SigningKey is a private signing key, the same type as payment.SigningKey
// and discovery.SigningKey: make one and hand it to every role that signs.
// Key is an ed25519.PrivateKey, an *ecdsa.PrivateKey, or any crypto.Signer
// whose public key is Ed25519 or ECDSA — a key held in a KMS or HSM, whose
// private half never enters the process. Algorithm is EdDSA, ES256 or
// ES384; empty means the one the key implies. KeyID is the "kid" published
// in the JWKS and put in every token's header; leave it empty to use the
// key's RFC 7638 thumbprint (KeyThumbprint), which is RECOMMENDED: a
// re-created key then never reuses an old kid.
//
// A SigningKey's String, GoString and Format never print key material.
type SigningKey = signkey.Key

// KeyThumbprint returns the RFC 7638 SHA-256 JWK thumbprint of key
// (base64url, no padding): the kid a SigningKey with an empty KeyID gets.
// key is a public key or a crypto.Signer.
func KeyThumbprint(key any) (string, error) { return keyid.Thumbprint(key) }

// GenerateSigningKey creates a fresh key for alg (EdDSA, ES256 or ES384) with
// the given key id ("" for the key's thumbprint). It is meant for tests, examples and bootstrapping;
// production keys usually live in a KMS.
func GenerateSigningKey(kid string, alg jose.SignatureAlgorithm) (SigningKey, error) {
	var key crypto.Signer
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
	k, err := k.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	pub := k.Key.Public()
	signing := k.SigningValue()
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
