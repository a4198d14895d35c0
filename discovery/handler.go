package discovery

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/signkey"
)

// Well-known paths and media types of the discovery documents.
const (
	MetadataPath    = "/.well-known/agent-provisioning"
	DefaultJWKSPath = "/.well-known/jwks.json"

	MediaTypeJSON = "application/json"
	MediaTypeJOSE = "application/jose"

	// CatalogJWSType is the JOSE typ header of a signed catalog.
	CatalogJWSType = "agentprov-catalog+jws"

	// VersionHeader optionally names the protocol version a client speaks.
	VersionHeader = "Agent-Provisioning-Version"
)

// SigningKey is the library's one signing-key type, the same as
// authz.SigningKey and payment.SigningKey: a crypto.Signer (Ed25519 or
// ECDSA, in memory or in a KMS) with its kid (empty: the RFC 7638
// thumbprint) and algorithm (empty: the one the key implies).
type SigningKey = signkey.Key

// DefaultMaxAge is the Cache-Control max-age the Handler sends when
// HandlerOptions.MaxAge is zero.
const DefaultMaxAge = 5 * time.Minute

// HandlerOptions configures a Handler. The zero value (or nil) serves an
// unsigned catalog with max-age of DefaultMaxAge.
type HandlerOptions struct {
	// Key signs the catalog: the library's one key type (the same as
	// authz.SigningKey and payment.SigningKey), EdDSA or ES256; an empty
	// KeyID is the key's RFC 7638 thumbprint. It is the preferred form;
	// SigningKey, Signer and KeyID below remain for existing callers and
	// are mutually exclusive with it.
	Key *SigningKey
	// SigningKey signs the catalog. Algorithm must be EdDSA or ES256; Key is
	// an ed25519.PrivateKey, *ecdsa.PrivateKey, jose.JSONWebKey or
	// jose.OpaqueSigner. Mutually exclusive with Signer.
	SigningKey *jose.SigningKey
	// Signer signs the catalog with a key held elsewhere (KMS, HSM), through
	// go-jose's opaque signer. Its public key must be Ed25519 (EdDSA) or
	// P-256 (ES256).
	Signer crypto.Signer
	// KeyID is the kid of the signing key; required when signing.
	KeyID string
	// ExtraKeys are further public keys published in the JWKS, e.g. the next
	// key during a rotation. Private keys are refused.
	ExtraKeys []jose.JSONWebKey
	// MaxAge is sent as Cache-Control max-age on every document.
	// Zero means DefaultMaxAge; a negative value sends "no-cache".
	MaxAge time.Duration
	// BasePath prefixes the well-known metadata path, so that several
	// providers can share one origin (multi-tenant hosting, tests). The
	// catalog and JWKS paths come from the metadata URLs and are not prefixed.
	BasePath string
	// Logger receives configuration events; nil means slog.Default().
	Logger *slog.Logger
}

// Handler is the provider-side http.Handler serving the provider metadata,
// the catalog (plain JSON or a compact JWS) and the provider's JWKS.
//
// A Handler is safe for concurrent use; SetCatalog may run while requests are
// being served, and each request sees either the old or the new catalog.
type Handler struct {
	metaPath, catPath, jwksPath string
	meta, jwks                  *servedDoc
	cat                         atomic.Pointer[servedDoc]
	providerID                  string
	signer                      jose.Signer // nil when unsigned
	kid                         string
	maxAge                      string
	setMu                       sync.Mutex // orders SetCatalog calls
	log                         *slog.Logger
}

// servedDoc is an immutable, pre-rendered response.
type servedDoc struct {
	body        []byte
	contentType string
	etag        string
}

func newServedDoc(body []byte, contentType string) *servedDoc {
	sum := sha256.Sum256(body)
	return &servedDoc{
		body:        body,
		contentType: contentType,
		etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
	}
}

// NewHandler validates meta and cat (through catalogschema) and returns a
// Handler serving them. meta.catalog_uri names the catalog path and
// meta.jwks_uri, when set, the JWKS path; the JWKS is also served at
// DefaultJWKSPath when jwks_uri is empty and a key is configured.
// meta.catalog_signing must be "jws" exactly when a signing key is given.
func NewHandler(meta *catalogschema.ProviderMetadata, cat *catalogschema.Catalog, opts *HandlerOptions) (*Handler, error) {
	if meta == nil || cat == nil {
		return nil, errors.New("discovery: handler: metadata and catalog are required")
	}
	if opts == nil {
		opts = &HandlerOptions{}
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("discovery: handler: metadata: %w", err)
	}
	if _, err := catalogschema.ParseMetadata(metaJSON, nil); err != nil {
		return nil, fmt.Errorf("discovery: handler: metadata: %w", err)
	}
	h := &Handler{
		providerID: meta.ProviderID,
		metaPath:   strings.TrimSuffix(opts.BasePath, "/") + MetadataPath,
		log:        opts.Logger,
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	switch {
	case opts.MaxAge < 0:
		h.maxAge = "no-cache"
	case opts.MaxAge == 0:
		h.maxAge = "max-age=" + strconv.Itoa(int(DefaultMaxAge/time.Second))
	default:
		h.maxAge = "max-age=" + strconv.Itoa(int(opts.MaxAge/time.Second))
	}
	if h.catPath, err = urlPath(meta.CatalogURI); err != nil {
		return nil, fmt.Errorf("discovery: handler: catalog_uri: %w", err)
	}

	keys, err := h.setupSigner(opts)
	if err != nil {
		return nil, err
	}
	wantSigned := meta.CatalogSigning == "jws"
	if wantSigned != (h.signer != nil) {
		return nil, fmt.Errorf("discovery: handler: catalog_signing is %q but a signing key is %s",
			meta.CatalogSigning, map[bool]string{true: "configured", false: "missing"}[h.signer != nil])
	}
	if meta.JWKSURI != "" {
		if h.jwksPath, err = urlPath(meta.JWKSURI); err != nil {
			return nil, fmt.Errorf("discovery: handler: jwks_uri: %w", err)
		}
	} else if len(keys) > 0 {
		h.jwksPath = DefaultJWKSPath
	}
	if h.jwksPath != "" {
		if keys == nil {
			keys = []jose.JSONWebKey{} // "keys": [] rather than null
		}
		body, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			return nil, fmt.Errorf("discovery: handler: jwks: %w", err)
		}
		h.jwks = newServedDoc(body, MediaTypeJSON)
	}
	if h.catPath == h.metaPath || (h.jwksPath != "" && (h.jwksPath == h.catPath || h.jwksPath == h.metaPath)) {
		return nil, errors.New("discovery: handler: metadata, catalog and JWKS paths must differ")
	}
	h.meta = newServedDoc(metaJSON, MediaTypeJSON)
	if err := h.SetCatalog(cat); err != nil {
		return nil, err
	}
	return h, nil
}

// setupSigner builds the jose.Signer and returns the public keys to publish.
func (h *Handler) setupSigner(in *HandlerOptions) ([]jose.JSONWebKey, error) {
	var keys []jose.JSONWebKey
	opts := *in
	if opts.SigningKey != nil && opts.Signer != nil {
		return nil, errors.New("discovery: handler: SigningKey and Signer are mutually exclusive")
	}
	if opts.Key != nil && (opts.SigningKey != nil || opts.Signer != nil || opts.KeyID != "") {
		return nil, errors.New("discovery: handler: Key is mutually exclusive with SigningKey, Signer and KeyID")
	}
	var sk jose.SigningKey
	var pub crypto.PublicKey
	switch {
	case opts.Key != nil:
		k, err := opts.Key.Resolve([]jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
		if err != nil {
			return nil, fmt.Errorf("discovery: handler: %w", err)
		}
		sk = jose.SigningKey{Algorithm: k.Algorithm, Key: k.SigningValue()}
		pub, opts.KeyID = k.Key.Public(), k.KeyID
	case opts.SigningKey != nil:
		sk = *opts.SigningKey
		switch k := sk.Key.(type) {
		case ed25519.PrivateKey:
			pub = k.Public()
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		case jose.JSONWebKey:
			pub = k.Public().Key
		case *jose.JSONWebKey:
			pub = k.Public().Key
		case jose.OpaqueSigner:
			if p := k.Public(); p != nil {
				pub = p.Key
			}
		default:
			return nil, fmt.Errorf("discovery: handler: unsupported signing key type %T", sk.Key)
		}
	case opts.Signer != nil:
		pub = opts.Signer.Public()
		sk.Key = cryptosigner.Opaque(opts.Signer)
		switch pub.(type) {
		case ed25519.PublicKey:
			sk.Algorithm = jose.EdDSA
		case *ecdsa.PublicKey:
			sk.Algorithm = jose.ES256
		default:
			return nil, fmt.Errorf("discovery: handler: unsupported signer public key %T", pub)
		}
	}
	if sk.Key != nil {
		if sk.Algorithm != jose.EdDSA && sk.Algorithm != jose.ES256 {
			return nil, fmt.Errorf("discovery: handler: signing algorithm %q not allowed (want EdDSA or ES256)", sk.Algorithm)
		}
		if opts.KeyID == "" {
			return nil, errors.New("discovery: handler: KeyID is required when signing")
		}
		if pub == nil {
			return nil, errors.New("discovery: handler: signing key has no public key")
		}
		so := (&jose.SignerOptions{}).WithType(CatalogJWSType).WithHeader("kid", opts.KeyID)
		s, err := jose.NewSigner(sk, so)
		if err != nil {
			return nil, fmt.Errorf("discovery: handler: signer: %w", err)
		}
		h.signer, h.kid = s, opts.KeyID
		keys = append(keys, jose.JSONWebKey{Key: pub, KeyID: opts.KeyID, Algorithm: string(sk.Algorithm), Use: "sig"})
	}
	for i, k := range opts.ExtraKeys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("discovery: handler: ExtraKeys[%d] is not a public key", i)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// urlPath returns the path of an absolute URL, which the Handler serves.
func urlPath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Path == "" || u.Path[0] != '/' {
		return "", fmt.Errorf("%q has no absolute path", raw)
	}
	return u.Path, nil
}

// SetCatalog validates cat, signs it when the Handler has a key, and
// atomically replaces the served catalog. The catalog's provider_id must be
// the metadata's. Signing happens here, once per catalog version, never per
// request. On error the previous catalog stays in place.
func (h *Handler) SetCatalog(cat *catalogschema.Catalog) error {
	if cat == nil {
		return errors.New("discovery: handler: catalog is nil")
	}
	// Serialized so that concurrent calls publish in the order they sign.
	h.setMu.Lock()
	defer h.setMu.Unlock()
	if cat.ProviderID != h.providerID {
		return fmt.Errorf("discovery: handler: catalog provider_id %q differs from metadata %q: %w",
			cat.ProviderID, h.providerID, ErrProviderMismatch)
	}
	payload, err := json.Marshal(cat)
	if err != nil {
		return fmt.Errorf("discovery: handler: catalog: %w", err)
	}
	if _, err := catalogschema.ParseCatalog(payload, nil); err != nil {
		return fmt.Errorf("discovery: handler: catalog: %w", err)
	}
	doc := newServedDoc(payload, MediaTypeJSON)
	if h.signer != nil {
		jws, err := h.signer.Sign(payload)
		if err != nil {
			return fmt.Errorf("discovery: handler: sign catalog: %w", err)
		}
		compact, err := jws.CompactSerialize()
		if err != nil {
			return fmt.Errorf("discovery: handler: sign catalog: %w", err)
		}
		doc = newServedDoc([]byte(compact), MediaTypeJOSE)
	}
	h.cat.Store(doc)
	h.log.Info("discovery: catalog published", "provider", h.providerID, "etag", doc.etag, "services", len(cat.Services))
	return nil
}

// CatalogETag returns the strong ETag of the catalog currently served.
func (h *Handler) CatalogETag() string { return h.cat.Load().etag }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var doc *servedDoc
	switch r.URL.Path {
	case h.metaPath:
		doc = h.meta
	case h.catPath:
		doc = h.cat.Load()
	case h.jwksPath:
		doc = h.jwks
	}
	if doc == nil {
		problem.Write(w, http.StatusNotFound, CodeNotFound, "no discovery document at this path")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem.Write(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "discovery documents allow GET and HEAD only")
		return
	}
	if v := r.Header.Get(VersionHeader); v != "" && !supportedVersion(v) {
		problem.Write(w, http.StatusBadRequest, CodeUnsupportedVersion, "this provider implements protocol version 0.x")
		return
	}
	hd := w.Header()
	hd.Set("ETag", doc.etag)
	hd.Set("Cache-Control", h.maxAge)
	hd.Set("X-Content-Type-Options", "nosniff")
	if etagMatches(r.Header.Values("If-None-Match"), doc.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", doc.contentType)
	hd.Set("Content-Length", strconv.Itoa(len(doc.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(doc.body)
	}
}

// supportedVersion reports whether a MAJOR.MINOR version has major 0.
func supportedVersion(v string) bool {
	major, _, ok := strings.Cut(strings.TrimSpace(v), ".")
	return ok && major == "0"
}

// etagMatches applies the weak comparison RFC 9110 §13.1.2 prescribes for
// If-None-Match.
func etagMatches(headers []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, hv := range headers {
		for _, t := range strings.Split(hv, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == want {
				return true
			}
		}
	}
	return false
}

// String describes the options without key material, so that logging them
// cannot leak a private key.
func (o HandlerOptions) String() string {
	signing := "none"
	switch {
	case o.SigningKey != nil:
		signing = fmt.Sprintf("%s key %q [redacted]", o.SigningKey.Algorithm, o.KeyID)
	case o.Signer != nil:
		signing = fmt.Sprintf("crypto.Signer %q", o.KeyID)
	}
	return fmt.Sprintf("discovery.HandlerOptions{signing: %s, extra keys: %d, max-age: %s, base path: %q}",
		signing, len(o.ExtraKeys), o.MaxAge, o.BasePath)
}

// GoString is String, so that %#v redacts too.
func (o HandlerOptions) GoString() string { return o.String() }
