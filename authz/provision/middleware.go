package provision

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/problem"
)

// maxBearerLen bounds the Authorization value looked at; tokens this
// package issues are 47 bytes.
const maxBearerLen = 1024

// Identity is what a request authenticated by the middleware carries: the
// provider account and the orchestrator user the token was issued to.
type Identity struct {
	AccountID string
	User      UserRef
	Scopes    []string
	Service   string
	Project   string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// TokenHash identifies the token without revealing it.
	TokenHash authz.TokenHash
}

// HasScope reports whether the identity's token carries scope.
func (id *Identity) HasScope(scope string) bool { return slices.Contains(id.Scopes, scope) }

type identityKey struct{}

// IdentityFromContext returns the identity the middleware attached to a
// request's context.
func IdentityFromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}

// ContextWithIdentity returns ctx carrying id, as the middleware does; it
// lets providers test their handlers without tokens.
func ContextWithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// MiddlewareOptions tune a Middleware. The zero value is usable, but set
// ResourceMetadataURL so that clients can discover how to get a token.
type MiddlewareOptions struct {
	// ResourceMetadataURL is sent as the RFC 9728 resource_metadata
	// parameter of every challenge.
	ResourceMetadataURL string
	// ResourceMetadataFor, when set, names the resource_metadata of each
	// challenge from the request instead: a strict RFC 9728 §3.3 client
	// accepts only a document whose resource is the URL it requested, so
	// a resource below the origin needs its own path-inserted document
	// (see Provisioner.ResourceMetadataURLFor). An empty answer falls back
	// to ResourceMetadataURL.
	ResourceMetadataFor func(r *http.Request) string
	// Clock reads the time for expiry checks; default time.Now.
	Clock func() time.Time
	// Logger receives store failures; default slog.Default(). Tokens are
	// never logged.
	Logger *slog.Logger
}

// Middleware is the provider-side bearer-token check in front of protected
// APIs. It is safe for concurrent use.
type Middleware struct {
	tokens TokenStore
	prm    string
	prmFor func(*http.Request) string
	now    clock.Func
	log    *slog.Logger
}

// NewMiddleware returns a Middleware checking tokens against tokens.
func NewMiddleware(tokens TokenStore, opts *MiddlewareOptions) (*Middleware, error) {
	if tokens == nil {
		return nil, errors.New("authz: middleware: token store is required")
	}
	if opts == nil {
		opts = &MiddlewareOptions{}
	}
	m := &Middleware{tokens: tokens, prm: opts.ResourceMetadataURL, prmFor: opts.ResourceMetadataFor, now: opts.Clock, log: opts.Logger}
	if m.log == nil {
		m.log = slog.Default()
	}
	return m, nil
}

// Require returns middleware admitting only requests whose bearer token is
// live (known, unexpired, unrevoked) and carries every scope listed. The
// next handler finds the caller with IdentityFromContext. Failures answer
// 401 (or 403 for a missing scope) with a WWW-Authenticate Bearer challenge
// carrying resource_metadata, and a problem+json body.
func (m *Middleware) Require(scopes ...string) func(http.Handler) http.Handler {
	scopes = slices.Clone(scopes)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := m.Authenticate(r.Context(), r)
			if err == nil {
				for _, s := range scopes {
					if !id.HasScope(s) {
						err = errorf(authz.ErrInsufficientScope, nil, "token lacks scope %q", s)
						break
					}
				}
			}
			if err != nil {
				m.fail(w, r, err, scopes)
				return
			}
			next.ServeHTTP(w, r.WithContext(ContextWithIdentity(r.Context(), id)))
		})
	}
}

// Authenticate checks the request's bearer token without any scope
// requirement and returns its identity. Errors are *Error values with code
// missing_token, invalid_token or temporarily_unavailable.
func (m *Middleware) Authenticate(ctx context.Context, r *http.Request) (*Identity, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, errorf(authz.ErrMissingToken, nil, "no bearer token")
	}
	if len(vals) > 1 {
		return nil, errorf(authz.ErrInvalidToken, nil, "more than one Authorization header")
	}
	token, ok := parseBearer(vals[0])
	if !ok {
		return nil, errorf(authz.ErrInvalidToken, nil, "Authorization is not a well-formed Bearer token")
	}
	h := authz.HashToken(token)
	t, err := m.tokens.Lookup(ctx, h)
	switch {
	case errors.Is(err, ErrTokenNotFound):
		return nil, errorf(authz.ErrInvalidToken, nil, "token is not valid")
	case err != nil:
		return nil, errorf(authz.ErrTemporarilyUnavailable, err, "token store unavailable")
	}
	now := m.now.Now()
	if t.Revoked() || !now.Before(t.ExpiresAt) {
		return nil, errorf(authz.ErrInvalidToken, nil, "token is not valid")
	}
	return &Identity{
		AccountID: t.AccountID,
		User:      t.User,
		Scopes:    t.Scopes,
		Service:   t.Service,
		Project:   t.Project,
		IssuedAt:  t.IssuedAt,
		ExpiresAt: t.ExpiresAt,
		TokenHash: h,
	}, nil
}

// parseBearer extracts the token of an RFC 6750 §2.1 credential.
func parseBearer(v string) (string, bool) {
	if len(v) > maxBearerLen {
		return "", false
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		if !oauthwire.IsToken68Char(tok[i]) && tok[i] != '=' {
			return "", false
		}
	}
	return tok, true
}

// metadataURL is the resource_metadata parameter for a challenge to r.
func (m *Middleware) metadataURL(r *http.Request) string {
	if m.prmFor != nil {
		if u := m.prmFor(r); u != "" {
			return u
		}
	}
	return m.prm
}

func (m *Middleware) fail(w http.ResponseWriter, r *http.Request, err error, scopes []string) {
	prm := m.metadataURL(r)
	e := authz.AsError(err)
	if e == nil {
		e = errorf(authz.ErrTemporarilyUnavailable, err, "internal error")
	}
	switch e.Code {
	case authz.ErrMissingToken.Code:
		w.Header().Set("WWW-Authenticate", oauthwire.FormatChallenge("Bearer", "resource_metadata", prm))
	case authz.ErrInvalidToken.Code:
		w.Header().Set("WWW-Authenticate", oauthwire.FormatChallenge("Bearer",
			"error", "invalid_token", "error_description", e.Detail, "resource_metadata", prm))
	case authz.ErrInsufficientScope.Code:
		w.Header().Set("WWW-Authenticate", oauthwire.FormatChallenge("Bearer",
			"error", "insufficient_scope", "scope", strings.Join(scopes, " "), "resource_metadata", prm))
	default:
		m.log.Error("authz: bearer check failed", "code", e.Code, "err", e.Err)
	}
	problem.Write(w, e.Status, e.Code, e.Detail)
}

// Middleware returns the bearer-token check for the provisioner's tokens,
// requiring scopes; see (*Middleware).Require.
func (p *Provisioner) Middleware(scopes ...string) func(http.Handler) http.Handler {
	return p.mw.Require(scopes...)
}
