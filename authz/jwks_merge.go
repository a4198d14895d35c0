package authz

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/problem"
)

// KeySource is anything that publishes public signing keys: an *Attester,
// an *issuer.Issuer (payment/issuer), or a fixed set (StaticKeys). JWKS is called on every
// request, so rotations show at once; it must be safe for concurrent use.
type KeySource interface {
	JWKS() *jose.JSONWebKeySet
}

// StaticKeys is a KeySource of a fixed set, e.g. a key published ahead of a
// rotation or one a KMS holds.
type StaticKeys jose.JSONWebKeySet

// JWKS returns the set.
func (s *StaticKeys) JWKS() *jose.JSONWebKeySet { return (*jose.JSONWebKeySet)(s) }

// JWKSHandlerOptions tune NewJWKSHandler. Nil means defaults.
type JWKSHandlerOptions struct {
	// MaxAge is sent as Cache-Control max-age; default 5 minutes.
	MaxAge time.Duration
	// Logger receives configuration errors (a kid published with two
	// different keys); default slog.Default().
	Logger *slog.Logger
}

// NewJWKSHandler serves, as one JWKS, the public keys of every source: the
// one endpoint an orchestrator publishes for its attestations, payment
// tokens and receipts (and a provider for its catalog). A key published by
// several sources (the same key handed to each role) appears once. Only
// public halves are served. A kid published with two different keys is a
// misconfiguration that would make verifiers pick at random: the handler
// answers 500 and logs it rather than serve it. Responses carry
// Cache-Control max-age, a strong ETag of the body and honour
// If-None-Match; GET and HEAD only.
func NewJWKSHandler(sources []KeySource, opts *JWKSHandlerOptions) (http.Handler, error) {
	if len(sources) == 0 {
		return nil, errors.New("authz: JWKS handler: at least one key source is required")
	}
	for i, s := range sources {
		if s == nil {
			return nil, fmt.Errorf("authz: JWKS handler: source %d is nil", i)
		}
	}
	var o JWKSHandlerOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultJWKSCacheAge
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	sources = append([]KeySource(nil), sources...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !oauthwire.GetOrHead(w, r) {
			return
		}
		body, err := mergeJWKS(sources)
		if err != nil {
			o.Logger.Error("authz: JWKS handler", "err", err)
			problem.Write(w, http.StatusInternalServerError, "server_error", "the key set is misconfigured")
			return
		}
		sum := sha256.Sum256(body)
		etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
		h := w.Header()
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(o.MaxAge/time.Second)))
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if etagMatches(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", JWKSMediaType)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	}), nil
}

// mergeJWKS merges the sources' public keys, deduplicated by kid and
// thumbprint, in source order.
func mergeJWKS(sources []KeySource) ([]byte, error) {
	out := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	seen := map[string]string{} // kid -> thumbprint
	for _, s := range sources {
		set := s.JWKS()
		if set == nil {
			continue
		}
		for _, k := range set.Keys {
			pub := k.Public()
			if !pub.Valid() {
				continue
			}
			tp, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k.KeyID, err)
			}
			if prev, ok := seen[k.KeyID]; ok {
				if prev != string(tp) {
					return nil, fmt.Errorf("kid %q is published with two different keys", k.KeyID)
				}
				continue
			}
			seen[k.KeyID] = string(tp)
			out.Keys = append(out.Keys, pub)
		}
	}
	return json.Marshal(out)
}
