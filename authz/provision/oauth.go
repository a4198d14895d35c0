package provision

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// authCodeLifetime bounds authorization codes (RFC 6749 §4.1.2 recommends
// at most ten minutes; a redirect takes seconds).
const authCodeLifetime = time.Minute

// ErrAuthorizationHandled is returned by an Authorizer that wrote its own
// response (a login or consent page); the provisioner then writes nothing.
var ErrAuthorizationHandled = errors.New("authz: authorizer handled the response")

// ErrUnsupportedResponseType: the authorization request's response_type is
// not "code".
var ErrUnsupportedResponseType = &authz.Error{Code: "unsupported_response_type", Status: http.StatusBadRequest}

// AuthorizationRequest is a validated authorization-code request shown to
// the provider's user for consent.
type AuthorizationRequest struct {
	// ClientID is the orchestrator asking to link (its issuer URL).
	ClientID    string
	RedirectURI string
	Scope       []string
	State       string
}

// Authorizer is the provider's own login and consent step of the code flow.
// AuthorizeLink authenticates the provider's user from r (session cookie,
// login page…) and asks them whether ClientID may act on their account. It
// returns the approving account id; ErrAccessDenied (or any *Error with
// code access_denied) when the user refused; ErrAuthorizationHandled when it
// wrote a response itself and the user will come back to the same URL.
// Implementations must be safe for concurrent use.
type Authorizer interface {
	AuthorizeLink(w http.ResponseWriter, r *http.Request, req *AuthorizationRequest) (accountID string, err error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(w http.ResponseWriter, r *http.Request, req *AuthorizationRequest) (string, error)

// AuthorizeLink calls f.
func (f AuthorizerFunc) AuthorizeLink(w http.ResponseWriter, r *http.Request, req *AuthorizationRequest) (string, error) {
	return f(w, r, req)
}

// AuthorizeHandler serves the authorization endpoint (RFC 6749 §4.1.1 with
// RFC 7636 S256 PKCE required). Errors concerning client_id or redirect_uri
// are shown as problem+json and never redirected; others are redirected
// with error, state and iss (RFC 9207).
func (p *Provisioner) AuthorizeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.authorizer == nil {
			writeProblem(w, errorf(ErrUnsupportedResponseType, nil, "the authorization code flow is not enabled"))
			return
		}
		q, err := authorizeParams(r)
		if err != nil {
			writeProblem(w, err)
			return
		}
		clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
		if clientID == "" || !slices.Contains(p.redirects[clientID], redirectURI) {
			writeProblem(w, errorf(authz.ErrInvalidClient, nil, "unknown client_id or unregistered redirect_uri"))
			return
		}
		state := q.Get("state")
		fail := func(e *authz.Error) { p.redirectError(w, r, redirectURI, state, e) }
		if q.Get("response_type") != "code" {
			fail(errorf(ErrUnsupportedResponseType, nil, "response_type must be code"))
			return
		}
		switch m := q.Get("code_challenge_method"); m {
		case oauthwire.PKCEMethod:
		case "":
			fail(errorf(authz.ErrInvalidRequest, nil, "code_challenge_method S256 is required"))
			return
		default:
			fail(errorf(authz.ErrInvalidRequest, nil, "code_challenge_method must be S256"))
			return
		}
		challenge := q.Get("code_challenge")
		if !validPKCEString(challenge) || len(challenge) != 43 {
			fail(errorf(authz.ErrInvalidRequest, nil, "code_challenge must be a base64url SHA-256 digest"))
			return
		}
		scope := strings.Fields(q.Get("scope"))
		all := p.allScopes()
		for _, s := range scope {
			if !slices.Contains(all, s) {
				fail(errorf(authz.ErrInvalidScope, nil, "unknown scope"))
				return
			}
		}
		req := &AuthorizationRequest{ClientID: clientID, RedirectURI: redirectURI, Scope: scope, State: state}
		accountID, err := p.authorizer.AuthorizeLink(w, r, req)
		switch {
		case errors.Is(err, ErrAuthorizationHandled):
			return
		case errors.Is(err, authz.ErrAccessDenied):
			fail(errorf(authz.ErrAccessDenied, nil, "the user denied the request"))
			return
		case err != nil || accountID == "":
			p.log.Error("authz: authorizer failed", "err", err)
			fail(errorf(authz.ErrServerError, err, "authorization failed"))
			return
		}
		code := newOpaqueCode()
		err = p.grants.Put(r.Context(), Grant{
			Key: codeKey(code), Kind: GrantCode, ClientID: clientID, RedirectURI: redirectURI,
			Challenge: challenge, Scope: strings.Join(scope, " "), AccountID: accountID,
			ExpiresAt: p.now.Now().Add(authCodeLifetime), State: GrantApproved,
		})
		if err != nil {
			fail(grantStoreError(err))
			return
		}
		p.redirect(w, r, redirectURI, url.Values{"code": {code}, "state": {state}, "iss": {p.issuer}})
	})
}

// authorizeParams reads the request parameters from the query (GET) or a
// bounded form body (POST), refusing repeated parameters.
func authorizeParams(r *http.Request) (url.Values, error) {
	var q url.Values
	switch r.Method {
	case http.MethodGet:
		if len(r.URL.RawQuery) > maxFormBytes {
			return nil, errorf(authz.ErrInvalidRequest, nil, "query too long")
		}
		var err error
		if q, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			return nil, errorf(authz.ErrInvalidRequest, nil, "malformed query")
		}
	case http.MethodPost:
		body, err := safehttp.ReadAll(r.Body, maxFormBytes)
		if err != nil {
			return nil, errorf(authz.ErrInvalidRequest, err, "body too large")
		}
		if q, err = ParseTokenForm(r.Header.Get("Content-Type"), body); err != nil {
			return nil, err
		}
	default:
		return nil, &authz.Error{Code: authz.ErrInvalidRequest.Code, Status: http.StatusMethodNotAllowed, Detail: "use GET or POST"}
	}
	for k, v := range q {
		if len(v) != 1 {
			return nil, errorf(authz.ErrInvalidRequest, nil, "parameter %q repeated", oauthwire.Truncate(k, 64))
		}
	}
	return q, nil
}

func (p *Provisioner) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *authz.Error) {
	p.redirect(w, r, redirectURI, url.Values{
		"error": {e.Code}, "error_description": {e.Detail}, "state": {state}, "iss": {p.issuer},
	})
}

func (p *Provisioner) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		writeProblem(w, errorf(authz.ErrInvalidClient, err, "bad redirect_uri"))
		return
	}
	q := u.Query()
	for k, v := range params {
		if len(v) == 1 && v[0] != "" {
			q.Set(k, v[0])
		}
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// exchangeAuthCode redeems an authorization code (RFC 6749 §4.1.3) with its
// PKCE verifier and a fresh attestation naming the orchestrator user to link.
func (p *Provisioner) exchangeAuthCode(ctx context.Context, form url.Values) (*authz.TokenResponse, error) {
	code, clientID := form.Get("code"), form.Get("client_id")
	if code == "" || clientID == "" {
		return nil, errorf(authz.ErrInvalidRequest, nil, "code and client_id are required")
	}
	key := codeKey(code)
	g, err := p.grants.Get(ctx, key)
	if errors.Is(err, ErrGrantNotFound) {
		return nil, errorf(authz.ErrInvalidGrant, nil, "unknown or expired authorization code")
	}
	if err != nil {
		return nil, grantStoreError(err)
	}
	// Single use: only the caller whose Delete removes the code goes on,
	// and the code is gone whatever happens next.
	deleted, err := p.grants.Delete(ctx, key)
	if err != nil {
		return nil, grantStoreError(err)
	}
	switch {
	case !deleted || g.Kind != GrantCode || !p.now.Now().Before(g.ExpiresAt):
		return nil, errorf(authz.ErrInvalidGrant, nil, "unknown or expired authorization code")
	case g.ClientID != clientID:
		return nil, errorf(authz.ErrInvalidGrant, nil, "code was issued to another client")
	case g.RedirectURI != form.Get("redirect_uri"):
		return nil, errorf(authz.ErrInvalidGrant, nil, "redirect_uri does not match the authorization request")
	case !verifyPKCE(form.Get("code_verifier"), g.Challenge):
		return nil, errorf(authz.ErrInvalidGrant, nil, "code_verifier does not match code_challenge")
	}
	att, err := p.verifyAssertion(ctx, form.Get("assertion"))
	if err != nil {
		return nil, err
	}
	if att.Issuer != clientID {
		return nil, errorf(authz.ErrInvalidGrant, nil, "assertion issuer is not the client")
	}
	scopes, err := p.grantScopes(att.Service, g.Scope)
	if err != nil {
		return nil, err
	}
	return p.link(ctx, g.AccountID, UserRef{Issuer: att.Issuer, Subject: att.Subject}, att, scopes)
}
