package payment

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// KeyResolver finds an orchestrator's public key by key id, so that a
// provider follows the orchestrator's key rotations instead of pinning one
// JWKS. *authz.KeySet implements it (a cached JWKS refetched on an unknown
// kid at a bounded rate). Implementations must be safe for concurrent use
// and should fail fast for kids they cannot find: tokens carry any kid the
// sender chose. An error meaning the keys cannot be had right now (the
// orchestrator's JWKS is unreachable), as opposed to a kid that does not
// exist, should have a method Temporary() bool reporting true (as
// *authz.Error does for jwks_unavailable): the Paywall then answers 503
// settlement_unavailable, which a client retries with the same
// credential, instead of a definitive 402.
type KeyResolver interface {
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

// KeyRefetcher is an optional interface of a KeyResolver: when a signature
// does not verify under the key Key returned, the verifier asks it once for
// a newer key under the same kid (the orchestrator may have re-created
// "orch-1") instead of refusing until the resolver's cache expires.
// KeyAfterFailure returns that key, or an error when there is none (the
// same key, or a refetch refused by its rate limit). *authz.KeySet
// implements it, refetching at most once per MinRefetchInterval.
type KeyRefetcher interface {
	KeyAfterFailure(ctx context.Context, kid string, failed *jose.JSONWebKey) (*jose.JSONWebKey, error)
}

// refetchedKeySet returns a one-key set holding the newer key for token's
// kid when the signature failed under keys (its one key) and keys's
// resolver is a KeyRefetcher that knows a different key; nil otherwise.
func refetchedKeySet(ctx context.Context, keys KeyResolver, token, typ string, failed *jose.JSONWebKeySet) *jose.JSONWebKeySet {
	rf, ok := keys.(KeyRefetcher)
	if !ok || failed == nil || len(failed.Keys) != 1 {
		return nil
	}
	if _, err := verifyJWS(token, typ, failed); !errors.Is(err, errBadSignature) {
		return nil // not a signature failure: a newer key would not help
	}
	k, err := rf.KeyAfterFailure(ctx, failed.Keys[0].KeyID, &failed.Keys[0])
	if err != nil || k == nil || k.Key == nil {
		return nil
	}
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{*k}}
}

// NewResolvingTokenVerifier is NewTokenVerifier with keys looked up per
// token, by the "kid" of its header, through keys. Resolver failures are
// ErrTokenInvalid with the resolver's error as cause (errors.Is reaches it,
// e.g. to tell an unavailable JWKS from an unknown key).
func NewResolvingTokenVerifier(orchestratorIssuer, providerID string, keys KeyResolver, opts *TokenVerifierOptions) (*TokenVerifier, error) {
	if keys == nil {
		return nil, errors.New("payment: token verifier: key resolver is required")
	}
	return newTokenVerifier(orchestratorIssuer, providerID, nil, keys, opts)
}

// VerifyReceiptWithResolver is VerifyReceipt with the signing key looked up
// through keys by the receipt's "kid".
func VerifyReceiptWithResolver(ctx context.Context, signed string, keys KeyResolver, issuer string) (*Receipt, error) {
	set, err := resolveKeySet(ctx, keys, signed)
	if err != nil {
		return nil, ErrTokenInvalid.With(err, "receipt: no verification key")
	}
	r, err := VerifyReceipt(signed, set, issuer)
	if err != nil {
		if fresh := refetchedKeySet(ctx, keys, signed, ReceiptType, set); fresh != nil {
			return VerifyReceipt(signed, fresh, issuer)
		}
	}
	return r, err
}

// resolveKeySet returns a one-key set holding the key named by the kid of
// the compact JWS token. The header is read without trusting it: the
// signature is checked afterwards against the key found.
func resolveKeySet(ctx context.Context, keys KeyResolver, token string) (*jose.JSONWebKeySet, error) {
	if keys == nil {
		return nil, errors.New("no key resolver")
	}
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("longer than %d bytes", MaxTokenSize)
	}
	raw, _, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errors.New("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("header is not base64url")
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil || hdr.Kid == "" || len(hdr.Kid) > 256 {
		return nil, errors.New("kid is missing")
	}
	k, err := keys.Key(ctx, hdr.Kid)
	if err != nil {
		return nil, fmt.Errorf("kid %q: %w", hdr.Kid, err)
	}
	if k == nil || k.Key == nil {
		return nil, fmt.Errorf("unknown kid %q", hdr.Kid)
	}
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{*k}}, nil
}
