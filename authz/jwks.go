package authz

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// JWKSMediaType is the media type of a JSON Web Key Set (RFC 7517 §8.5).
const JWKSMediaType = "application/jwk-set+json"

// Defaults of a KeySet.
const (
	DefaultJWKSMaxBytes       = 64 << 10
	DefaultMinRefetchInterval = 30 * time.Second
	DefaultJWKSCacheAge       = 5 * time.Minute
	DefaultJWKSMaxCacheAge    = 24 * time.Hour
)

// JWKSHandler serves the attester's public keys as a JWKS (conventionally at
// /.well-known/jwks.json), with Cache-Control max-age, a strong ETag and
// If-None-Match support. Private key material is never served. The handler
// reflects key rotations immediately and is safe for concurrent use.
func (a *Attester) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !oauthwire.GetOrHead(w, r) {
			return
		}
		ring := a.ring.Load()
		h := w.Header()
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(a.maxAge/time.Second)))
		h.Set("ETag", ring.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if etagMatches(r.Header.Get("If-None-Match"), ring.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", JWKSMediaType)
		h.Set("Content-Length", strconv.Itoa(len(ring.jwks)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(ring.jwks)
		}
	})
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// KeySetOptions tune a KeySet. The zero value is safe.
type KeySetOptions struct {
	// HTTPClient fetches the JWKS; default a client with a 10 second
	// timeout. It is never modified; redirects to URLs that are neither
	// https nor loopback are refused on a copy.
	HTTPClient *http.Client
	// MaxBytes bounds the JWKS body; default 64 KiB.
	MaxBytes int64
	// MinRefetchInterval is the least time between two fetches, including
	// those triggered by an unknown kid; default 30 seconds. Concurrent
	// misses share one fetch.
	MinRefetchInterval time.Duration
	// DefaultCacheAge applies when the response has no max-age; default
	// 5 minutes. MaxCacheAge caps a server's max-age; default 24 hours.
	DefaultCacheAge time.Duration
	MaxCacheAge     time.Duration
	// Clock reads the time; default time.Now.
	Clock func() time.Time
	// Logger receives fetch failures; default slog.Default().
	Logger *slog.Logger
}

// KeySet is the provider-side cache of one issuer's JWKS, fetched from its
// URL. Keys are cached for the response's max-age (bounded); an unknown kid
// triggers a refetch at most once per MinRefetchInterval, so during a
// rotation the new key is picked up promptly while a flood of tokens with
// made-up kids cannot turn into a flood of fetches. A signature that fails
// under a cached key refetches the same way (KeyAfterFailure), so a key
// re-created under an old kid is trusted after one refetch. When a refetch fails,
// keys from the last good copy keep working. Until a first copy is
// fetched, failed fetches are retried sooner (after 1 s, 2 s, 4 s, … up to
// MinRefetchInterval), so an issuer that was down at first is trusted soon
// after it comes up.
//
// A KeySet is safe for concurrent use.
type KeySet struct {
	url        string
	client     *http.Client
	maxBytes   int64
	minRefetch time.Duration
	defAge     time.Duration
	maxAge     time.Duration
	now        clock.Func
	log        *slog.Logger

	mu          sync.Mutex
	keys        map[string][]jose.JSONWebKey // nil until the first good fetch
	etag        string                       // of the cached copy, for revalidation
	freshUntil  time.Time
	lastAttempt time.Time
	inflight    *fetchCall
	fetches     int
	failures    int // consecutive failed fetches
}

// retryInterval is the least time since the last fetch before the next
// one: MinRefetchInterval, except while no copy was ever fetched and the
// fetches failed (the issuer was not up yet, say): then 1 s, doubling
// with each failure up to MinRefetchInterval, so an issuer that comes up
// is trusted within a second or two instead of after the full interval,
// while an issuer that stays down costs at most a few fetches a minute.
// s.mu is held.
func (s *KeySet) retryInterval() time.Duration {
	if s.keys != nil || s.failures == 0 {
		return s.minRefetch
	}
	return min(s.minRefetch, time.Second<<min(s.failures-1, 10))
}

type fetchCall struct {
	done chan struct{}
	err  error
	// abandoned: the fetch failed because its caller's context ended. It
	// says nothing about the JWKS, so waiters with a live context try
	// again rather than fail with the caller.
	abandoned bool
}

// runFetch fetches as the leader of call, which s.inflight holds; s.mu is
// not held. A fetch abandoned by its caller does not count against
// MinRefetchInterval.
func (s *KeySet) runFetch(ctx context.Context, call *fetchCall, prevAttempt time.Time) {
	call.err = s.fetch(ctx)
	s.mu.Lock()
	s.inflight = nil
	switch {
	case call.err != nil && ctx.Err() != nil:
		call.abandoned = true
		s.lastAttempt = prevAttempt
	case call.err != nil:
		s.failures++
	default:
		s.failures = 0
	}
	s.mu.Unlock()
	close(call.done)
}

// NewKeySet returns a KeySet for the JWKS at jwksURL, which must be https
// (or http on a loopback host). Nothing is fetched until a key is needed.
func NewKeySet(jwksURL string, opts *KeySetOptions) (*KeySet, error) {
	if _, err := safehttp.CheckURL(jwksURL); err != nil {
		return nil, fmt.Errorf("authz: key set: %w", err)
	}
	if opts == nil {
		opts = &KeySetOptions{}
	}
	s := &KeySet{
		url:        jwksURL,
		maxBytes:   opts.MaxBytes,
		minRefetch: opts.MinRefetchInterval,
		defAge:     opts.DefaultCacheAge,
		maxAge:     opts.MaxCacheAge,
		now:        clock.Func(opts.Clock),
		log:        opts.Logger,
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultJWKSMaxBytes
	}
	if s.minRefetch <= 0 {
		s.minRefetch = DefaultMinRefetchInterval
	}
	if s.defAge <= 0 {
		s.defAge = DefaultJWKSCacheAge
	}
	if s.maxAge <= 0 {
		s.maxAge = DefaultJWKSMaxCacheAge
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	base := opts.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 10 * time.Second}
	}
	s.client = oauthwire.SafeClient(base)
	return s, nil
}

// URL returns the JWKS URL.
func (s *KeySet) URL() string { return s.url }

// Fetches reports how many fetches the KeySet has started; useful in tests
// and metrics.
func (s *KeySet) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// Key returns the public key with key id kid, fetching the JWKS if the cache
// is empty, stale, or lacks kid (subject to MinRefetchInterval). It fails
// with ErrUnknownKey or ErrKeySetUnavailable.
func (s *KeySet) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	return s.lookup(ctx, kid, "")
}

// KeyAfterFailure is what a verifier calls when a signature did not
// verify under failed, the key Key returned for kid: the issuer may have
// re-created a key under the same kid (a re-created "orch-1"), which the
// cache would otherwise serve until it expires. It refetches the JWKS once,
// under the same MinRefetchInterval as an unknown kid (so forged tokens
// cannot turn into a flood of fetches), and returns the key now published
// for kid when it differs from failed. When the refetch is rate-limited,
// fails, or brings the same key, it fails with ErrInvalidSignature: the
// signature stays refused.
func (s *KeySet) KeyAfterFailure(ctx context.Context, kid string, failed *jose.JSONWebKey) (*jose.JSONWebKey, error) {
	return s.keyAfterFailure(ctx, kid, "", failed)
}

func (s *KeySet) keyAfterFailure(ctx context.Context, kid string, alg jose.SignatureAlgorithm, failed *jose.JSONWebKey) (*jose.JSONWebKey, error) {
	k, err := s.lookupMode(ctx, kid, alg, true)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, errorf(ErrInvalidSignature, err, "signature does not verify under key %q", clip(kid))
	}
	if failed != nil && sameKey(k, failed) {
		return nil, errorf(ErrInvalidSignature, nil, "signature does not verify under key %q", clip(kid))
	}
	return k, nil
}

// sameKey reports whether two JWKs hold the same public key.
func sameKey(a, b *jose.JSONWebKey) bool {
	pa, pb := a.Public(), b.Public()
	ta, errA := pa.Thumbprint(crypto.SHA256)
	tb, errB := pb.Thumbprint(crypto.SHA256)
	return errA == nil && errB == nil && bytes.Equal(ta, tb)
}

// lookup finds kid, preferring a key that fits alg when alg is set.
func (s *KeySet) lookup(ctx context.Context, kid string, alg jose.SignatureAlgorithm) (*jose.JSONWebKey, error) {
	return s.lookupMode(ctx, kid, alg, false)
}

// lookupMode is lookup; with distrust, the cached copy counts as stale for
// this call (a refetch is due, within MinRefetchInterval), and a key is
// returned only from a copy fetched by this call or a concurrent one.
func (s *KeySet) lookupMode(ctx context.Context, kid string, alg jose.SignatureAlgorithm, distrust bool) (*jose.JSONWebKey, error) {
	for attempt := 0; ; attempt++ {
		now := s.now.Now()
		s.mu.Lock()
		k, found := pickKey(s.keys[kid], alg)
		fresh := s.keys != nil && now.Before(s.freshUntil) && (!distrust || attempt > 0)
		if found && fresh {
			s.mu.Unlock()
			return k, nil
		}
		canFetch := s.inflight != nil || s.lastAttempt.IsZero() || now.Sub(s.lastAttempt) >= s.retryInterval()
		if attempt > 0 || !canFetch {
			loaded := s.keys != nil
			s.mu.Unlock()
			if distrust && attempt == 0 {
				return nil, errorf(ErrKeySetUnavailable, nil, "JWKS at %s refetched too recently", s.url)
			}
			if found {
				// Stale, but the refetch failed or is rate-limited:
				// the last good copy is better than no key.
				return k, nil
			}
			if !loaded {
				return nil, errorf(ErrKeySetUnavailable, nil, "JWKS at %s not available", s.url)
			}
			return nil, errorf(ErrUnknownKey, nil, "no key %q in the issuer's JWKS", clip(kid))
		}
		call := s.inflight
		if call == nil {
			call = &fetchCall{done: make(chan struct{})}
			s.inflight = call
			prev := s.lastAttempt
			s.lastAttempt = now
			s.fetches++
			s.mu.Unlock()
			s.runFetch(ctx, call, prev)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		} else {
			s.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if call.abandoned {
				attempt-- // another caller gave up; this one has not
				continue
			}
		}
		if call.err != nil {
			s.log.WarnContext(ctx, "authz: JWKS fetch failed", "url", s.url, "err", call.err)
		}
	}
}

// Refresh fetches the JWKS now, unless a fetch is already under way, in
// which case it waits for that one. It ignores MinRefetchInterval.
func (s *KeySet) Refresh(ctx context.Context) error {
	s.mu.Lock()
	call := s.inflight
	if call == nil {
		call = &fetchCall{done: make(chan struct{})}
		s.inflight = call
		prev := s.lastAttempt
		s.lastAttempt = s.now.Now()
		s.fetches++
		s.mu.Unlock()
		s.runFetch(ctx, call, prev)
		return call.err
	}
	s.mu.Unlock()
	select {
	case <-call.done:
		if call.abandoned && ctx.Err() == nil {
			return s.Refresh(ctx)
		}
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func pickKey(keys []jose.JSONWebKey, alg jose.SignatureAlgorithm) (*jose.JSONWebKey, bool) {
	for i := range keys {
		if alg == "" || keyFitsAlg(&keys[i], alg) {
			k := keys[i]
			return &k, true
		}
	}
	return nil, false
}

// keyFitsAlg reports whether a JWK may verify alg: its "alg", if stated,
// must be alg, and its key type and curve must fit.
func keyFitsAlg(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	if k.Use != "" && k.Use != "sig" {
		return false
	}
	pub := k.Public()
	return checkKeyFitsAlg(pub.Key, alg) == nil
}

func (s *KeySet) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", JWKSMediaType+", application/json")
	s.mu.Lock()
	if s.keys != nil && s.etag != "" {
		// Revalidate: an unchanged set costs a 304 and no parsing.
		req.Header.Set("If-None-Match", s.etag)
	}
	s.mu.Unlock()
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	age := cacheAge(resp.Header.Get("Cache-Control"), s.defAge)
	age = min(max(age, s.minRefetch), s.maxAge)
	if resp.StatusCode == http.StatusNotModified && req.Header.Get("If-None-Match") != "" {
		s.mu.Lock()
		s.freshUntil = s.now.Now().Add(age)
		s.mu.Unlock()
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS fetch: status %d", resp.StatusCode)
	}
	body, err := safehttp.ReadAll(resp.Body, s.maxBytes)
	if err != nil {
		return fmt.Errorf("JWKS fetch: %w", err)
	}
	keys, err := ParseJWKS(body)
	if err != nil {
		return err
	}
	byKid := make(map[string][]jose.JSONWebKey, len(keys.Keys))
	for _, k := range keys.Keys {
		byKid[k.KeyID] = append(byKid[k.KeyID], k)
	}
	s.mu.Lock()
	s.keys = byKid
	s.etag = resp.Header.Get("ETag")
	s.freshUntil = s.now.Now().Add(age)
	s.mu.Unlock()
	return nil
}

// cacheAge reads max-age from a Cache-Control value: no-store and no-cache
// mean 0, an absent or unreadable max-age means def.
func cacheAge(cc string, def time.Duration) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "no-store" || d == "no-cache" {
			return 0
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
			if err == nil && n >= 0 {
				return time.Duration(min(n, int64(365*24*3600))) * time.Second
			}
		}
	}
	return def
}

// ParseJWKS parses a JWKS document, keeping only public signature keys that
// have a key id. Keys of unknown types, private keys and encryption keys are
// skipped rather than failing the whole set, so an issuer can publish keys
// this library does not use. A document that is not a JSON object with a
// "keys" array fails with ErrKeySetUnavailable.
func ParseJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Keys == nil {
		return nil, errorf(ErrKeySetUnavailable, err, "JWKS is not a JSON object with a \"keys\" array")
	}
	set := &jose.JSONWebKeySet{}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.KeyID == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}
