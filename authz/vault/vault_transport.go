package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/agentprov/agentprov/internal/safehttp"
)

// VaultTransport is an http.RoundTripper that sends one stored credential
// as the bearer token of every request, so code calling a provider's API
// never copies tokens out of the vault by hand:
//
//	client := &http.Client{Transport: &VaultTransport{
//		Vault: vault, Project: "blog", Ref: "cloud/compute", Origin: "https://api.cloud.example",
//	}}
//
// The token is read with the request's context through Vault.Token, so an
// expired (or nearly expired) credential is refreshed first, once across
// concurrent callers, and the refreshed credential is stored back with
// compare-and-set. When the provider answers 401 although the token looked
// valid (revoked early, clock skew) and the credential has a refresh token,
// the transport refreshes once and retries the request once, if its body can
// be replayed (no body, or http.Request.GetBody set); otherwise the 401 is
// returned as is.
//
// The caller's request is never modified: each attempt sends a clone. As
// the http.RoundTripper contract requires, the request body is closed on
// every path, errors included.
//
// Tokens never travel in cleartext: requests over plain http are refused
// unless the host is loopback. Set Origin to also refuse every other
// origin, which keeps the token from following a redirect elsewhere.
//
// A VaultTransport is safe for concurrent use; its fields must not change
// after first use.
type VaultTransport struct {
	// Vault holds the credential; required. Its VaultOptions.Refresh
	// renews tokens.
	Vault *Vault
	// Project and Ref ("provider/service") name the credential; required.
	Project, Ref string
	// Origin, if set ("https://api.cloud.example"), is the only scheme and
	// host the token is sent to; requests elsewhere fail without being sent.
	Origin string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// ErrOriginRefused is returned (wrapped in *url.Error by http.Client) when
// a VaultTransport would send its token to an origin it must not: another
// origin than VaultTransport.Origin, or cleartext http to a non-loopback
// host.
var ErrOriginRefused = errors.New("authz: vault transport: origin refused")

// RoundTrip sends req with the credential's bearer token (see VaultTransport).
func (t *VaultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(req)
	if err != nil && req.Body != nil {
		// Base closes the body once it has been handed over; closing again
		// is harmless for the bodies net/http produces, and required when
		// we failed before handing it over.
		req.Body.Close()
	}
	return resp, err
}

func (t *VaultTransport) roundTrip(req *http.Request) (*http.Response, error) {
	if t.Vault == nil || t.Project == "" || t.Ref == "" {
		return nil, errors.New("authz: vault transport: Vault, Project and Ref are required")
	}
	if err := t.checkOrigin(req); err != nil {
		return nil, err
	}
	ctx := req.Context()
	tok, err := t.Vault.Token(ctx, t.Project, t.Ref)
	if err != nil {
		return nil, err
	}
	// GetBody is read before the first attempt consumes Body.
	canReplay := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	resp, err := t.base().RoundTrip(withToken(req, req.Body, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || tok.RefreshToken == "" || !canReplay {
		return resp, err
	}

	fresh, err := t.Vault.refreshRejected(ctx, t.Project, t.Ref, tok.AccessToken)
	if err != nil || fresh.AccessToken == tok.AccessToken {
		// Nothing better to send: the provider's 401 is the answer.
		return resp, nil
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	drainAndClose(resp.Body)
	return t.base().RoundTrip(withToken(req, body, fresh))
}

func (t *VaultTransport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *VaultTransport) checkOrigin(req *http.Request) error {
	u := req.URL
	if t.Origin != "" && !strings.EqualFold(u.Scheme+"://"+u.Host, strings.TrimSuffix(t.Origin, "/")) {
		return fmt.Errorf("%w: %s://%s is not %s", ErrOriginRefused, u.Scheme, u.Host, t.Origin)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && safehttp.IsLoopback(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("%w: %s://%s is not https or loopback", ErrOriginRefused, u.Scheme, u.Host)
}

// withToken clones req (headers included) with body and the token's
// Authorization header; req itself is left as the caller built it.
func withToken(req *http.Request, body io.ReadCloser, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Body = body
	tok.SetAuthHeader(r)
	return r
}

// drainAndClose reads a little of a discarded response so the connection
// can be reused, then closes it.
func drainAndClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	body.Close()
}

// refreshRejected renews a credential whose access token the provider
// refused although it had not expired. Concurrent callers that saw the same
// rejected token refresh once: whoever comes second finds a different token
// stored and uses it. It fails when the credential has no refresh token or
// the vault no refresher.
func (v *Vault) refreshRejected(ctx context.Context, project, ref, rejected string) (*oauth2.Token, error) {
	for range maxUpdateAttempts {
		c, ver, err := v.get(ctx, project, ref)
		if err != nil {
			return nil, err
		}
		if string(c.AccessToken) != rejected {
			return toOAuth2(c), nil
		}
		if v.opts.Refresh == nil || c.RefreshToken == "" {
			return nil, errorf(ErrCredentialExpired, nil, "token for %s was refused and cannot be refreshed", ref)
		}
		tok, retry, err := v.refresh(ctx, c, ver)
		if retry {
			continue
		}
		return tok, err
	}
	return nil, errorf(ErrVersionConflict, nil, "credential kept changing during refresh")
}
