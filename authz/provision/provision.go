package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// Endpoint paths served by Provisioner.Handler, relative to the issuer.
const (
	PathToken               = "/oauth/token"
	PathAuthorize           = "/oauth/authorize"
	PathDeviceAuthorization = "/oauth/device_authorization"
	PathRevoke              = "/oauth/revoke"
	PathRevocationEvent     = "/agentprov/revocation"
)

// maxFormBytes bounds a token-endpoint request body: an attestation is at
// most 8 KiB, plus a consent receipt inside it.
const maxFormBytes = 32 << 10

// EmailLinkPolicy decides whether an attested, verified email may be linked
// to an existing account holding the same email without the user's OAuth
// consent. Returning false (the default) sends the client to the consent
// flow. Allow it only for issuers whose email verification you trust as
// much as your own.
type EmailLinkPolicy func(ctx context.Context, att *authz.Attestation, existing *Account) bool

// ProvisionerOptions configure a Provisioner. Issuer and TermsVersion are
// required.
type ProvisionerOptions struct {
	// Issuer is the provider's authorization server identifier: an https
	// URL (http on loopback for tests) without query or fragment. Endpoint
	// URLs are built from it.
	Issuer string
	// Resource is the RFC 9728 resource identifier of the provider's API;
	// default Issuer. Every URL at or below it is a protected resource of
	// its own under RFC 9728 §3.1: Handler answers the path-inserted
	// metadata URL of each (for /v1/resources,
	// /.well-known/oauth-protected-resource/v1/resources) with that URL
	// as resource, and Middleware's challenges point at the document of
	// the URL requested, as strict §3.3 clients require.
	Resource string
	// ResourceName is the human-readable name in the resource metadata.
	ResourceName string
	// TermsVersion is the current terms-of-service version; consent
	// receipts must name it for an account to be created.
	TermsVersion string
	// TermsURL is published as resource_tos_uri / op_tos_uri.
	TermsURL string
	// ServiceScopes maps a service ref ("provider/service_id") to the
	// scopes a token for that service carries.
	ServiceScopes map[string][]string
	// DefaultScopes are granted when the attestation names no service, or
	// one missing from ServiceScopes.
	DefaultScopes []string
	// TokenLifetime of issued access tokens; default 30 days.
	TokenLifetime time.Duration
	// EmailLinkPolicy, when set, may allow linking on a verified email
	// match; default deny (consent required).
	EmailLinkPolicy EmailLinkPolicy
	// Authorizer enables the authorization code flow: the provider's own
	// login and consent UI. Without it only the device flow links accounts.
	Authorizer Authorizer
	// RedirectURIs lists, per client_id (the orchestrator's issuer), the
	// redirect URIs allowed in the code flow, matched exactly.
	RedirectURIs map[string][]string
	// VerificationURI is the page where the human enters a device user
	// code; default Issuer + "/device".
	VerificationURI string
	// DeviceCodeLifetime bounds device and authorization codes; default
	// 10 minutes for device codes (authorization codes live 1 minute).
	DeviceCodeLifetime time.Duration
	// DeviceInterval is the minimum polling interval; default 5 seconds.
	DeviceInterval time.Duration
	// Grants holds in-flight device and authorization codes. Default: a
	// MemoryGrantStore bounded by MaxPendingGrants, which ties each flow to
	// the instance that started it; share a store such as
	// sqlstore.GrantStore between instances instead.
	Grants GrantStore
	// MaxPendingGrants bounds the default in-memory grant store; default
	// 10000.
	MaxPendingGrants int
	// Clock reads the time; default time.Now.
	Clock func() time.Time
	// Logger receives account creation, linking and store failures; tokens
	// and attestations are never logged. Default slog.Default().
	Logger *slog.Logger
}

// Provisioner is the provider side of account provisioning: the OAuth
// token endpoint accepting identity attestations (RFC 7523), account
// linking through the code (with PKCE) and device flows, discovery metadata,
// revocation endpoints and the bearer middleware for the provider's API.
//
// All state lives in the stores (accounts, tokens, replay ids, and the
// in-flight grants of the linking flows), so several instances sharing
// SQL stores serve one provider. A Provisioner is safe for concurrent use.
type Provisioner struct {
	verifier      *authz.Verifier
	accounts      AccountStore
	tokens        TokenStore
	issuer        string
	resource      string
	resURL        *url.URL
	resourceName  string
	terms         string
	termsURL      string
	serviceScopes map[string][]string
	defaultScopes []string
	tokenTTL      time.Duration
	emailPolicy   EmailLinkPolicy
	authorizer    Authorizer
	redirects     map[string][]string
	verifyURI     string
	deviceTTL     time.Duration
	interval      time.Duration
	now           clock.Func
	log           *slog.Logger
	mw            *Middleware
	grants        GrantStore
}

// NewProvisioner returns a Provisioner verifying attestations with verifier
// and keeping accounts and tokens in the given stores.
func NewProvisioner(verifier *authz.Verifier, accounts AccountStore, tokens TokenStore, opts *ProvisionerOptions) (*Provisioner, error) {
	switch {
	case verifier == nil:
		return nil, errors.New("authz: provisioner: verifier is required")
	case accounts == nil:
		return nil, errors.New("authz: provisioner: account store is required")
	case tokens == nil:
		return nil, errors.New("authz: provisioner: token store is required")
	case opts == nil:
		return nil, errors.New("authz: provisioner: options with Issuer and TermsVersion are required")
	}
	iu, err := safehttp.CheckURL(opts.Issuer)
	if err != nil || iu.RawQuery != "" || iu.Fragment != "" {
		return nil, fmt.Errorf("authz: provisioner: Issuer %q must be an https URL without query or fragment", opts.Issuer)
	}
	for _, c := range iu.Path {
		// The path becomes part of ServeMux patterns: keep it plain.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._~-", c)) {
			return nil, fmt.Errorf("authz: provisioner: Issuer path %q may hold only letters, digits and /._~-", iu.Path)
		}
	}
	if opts.TermsVersion == "" {
		return nil, errors.New("authz: provisioner: TermsVersion is required")
	}
	p := &Provisioner{
		verifier:      verifier,
		accounts:      accounts,
		tokens:        tokens,
		issuer:        opts.Issuer,
		resource:      opts.Resource,
		resourceName:  opts.ResourceName,
		terms:         opts.TermsVersion,
		termsURL:      opts.TermsURL,
		serviceScopes: map[string][]string{},
		defaultScopes: slices.Clone(opts.DefaultScopes),
		tokenTTL:      opts.TokenLifetime,
		emailPolicy:   opts.EmailLinkPolicy,
		authorizer:    opts.Authorizer,
		redirects:     map[string][]string{},
		verifyURI:     opts.VerificationURI,
		deviceTTL:     opts.DeviceCodeLifetime,
		interval:      opts.DeviceInterval,
		now:           opts.Clock,
		log:           opts.Logger,
	}
	for k, v := range opts.ServiceScopes {
		for _, s := range v {
			if !oauthwire.ValidScopeToken(s) {
				return nil, fmt.Errorf("authz: provisioner: scope %q of %s is not a valid scope token", s, k)
			}
		}
		p.serviceScopes[k] = slices.Clone(v)
	}
	for _, s := range p.defaultScopes {
		if !oauthwire.ValidScopeToken(s) {
			return nil, fmt.Errorf("authz: provisioner: default scope %q is not a valid scope token", s)
		}
	}
	for c, uris := range opts.RedirectURIs {
		for _, u := range uris {
			if _, err := safehttp.CheckURL(u); err != nil {
				return nil, fmt.Errorf("authz: provisioner: redirect URI %q of client %q: %w", u, c, err)
			}
		}
		p.redirects[c] = slices.Clone(uris)
	}
	if p.resource == "" {
		p.resource = p.issuer
	}
	if p.tokenTTL <= 0 {
		p.tokenTTL = 30 * 24 * time.Hour
	}
	if p.verifyURI == "" {
		p.verifyURI = p.endpoint("/device")
	}
	if p.deviceTTL <= 0 {
		p.deviceTTL = 10 * time.Minute
	}
	if p.interval <= 0 {
		p.interval = 5 * time.Second
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.grants = opts.Grants
	if p.grants == nil {
		p.grants = NewMemoryGrantStore(&MemoryGrantStoreOptions{MaxGrants: opts.MaxPendingGrants, Clock: p.now})
	}
	prm, err := oauthwire.WellKnownURL(p.resource, authz.PathResourceMetadata)
	if err != nil {
		return nil, fmt.Errorf("authz: provisioner: bad Resource %q: %w", p.resource, err)
	}
	p.resURL, _ = url.Parse(p.resource)
	p.mw, _ = NewMiddleware(tokens, &MiddlewareOptions{ResourceMetadataURL: prm, ResourceMetadataFor: p.ResourceMetadataURLFor, Clock: p.now, Logger: p.log})
	return p, nil
}

// endpoint returns the absolute URL of path under the issuer.
func (p *Provisioner) endpoint(path string) string {
	return strings.TrimSuffix(p.issuer, "/") + path
}

// ResourceMetadataURL is the URL of the RFC 9728 document, as sent in
// resource_metadata challenge parameters.
func (p *Provisioner) ResourceMetadataURL() string {
	u, _ := oauthwire.WellKnownURL(p.resource, authz.PathResourceMetadata)
	return u
}

// ResourceMetadataURLFor is the path-inserted RFC 9728 metadata URL of the
// resource r asked for: r's path (before any http.StripPrefix: it reads
// r.RequestURI when set) on Resource's origin, without query. It answers ""
// when that path is not at or below Resource's path.
func (p *Provisioner) ResourceMetadataURLFor(r *http.Request) string {
	id, ok := p.resourceAt(requestPath(r))
	if !ok {
		return ""
	}
	u, _ := oauthwire.WellKnownURL(id, authz.PathResourceMetadata)
	return u
}

// requestPath is the escaped path of the request as the client sent it.
func requestPath(r *http.Request) string {
	if r.RequestURI != "" && r.RequestURI != "*" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			return u.EscapedPath()
		}
	}
	return r.URL.EscapedPath()
}

// resourceAt returns the resource identifier of the escaped path on
// Resource's origin, and whether the path is at or below Resource's path.
// A path with dot segments, an empty segment or an escaped slash names no
// resource: it would let one document describe another's URL.
func (p *Provisioner) resourceAt(escPath string) (string, bool) {
	base := strings.TrimSuffix(p.resURL.EscapedPath(), "/")
	if escPath != base && !strings.HasPrefix(escPath, base+"/") {
		return "", false
	}
	if len(escPath) > maxResourcePathLen || strings.Contains(escPath, "//") || strings.Contains(strings.ToLower(escPath), "%2f") {
		return "", false
	}
	for _, seg := range strings.Split(escPath, "/") {
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	if escPath == base || escPath == base+"/" {
		return p.resource, true
	}
	u, err := url.Parse(p.resURL.Scheme + "://" + p.resURL.Host + escPath)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return u.String(), true
}

// maxResourcePathLen bounds the paths that get a metadata document.
const maxResourcePathLen = 1024

// Handler serves every provisioner endpoint at its fixed path: the two
// well-known discovery documents, PathToken, PathAuthorize (when an
// Authorizer is configured), PathDeviceAuthorization, PathRevoke and
// PathRevocationEvent, under the issuer's path. Mount it at the root of the
// issuer's host: route everything unknown to it (mux.Handle("/", h)), or
// those paths one by one.
func (p *Provisioner) Handler() http.Handler {
	mux := http.NewServeMux()
	prm, _ := url.Parse(p.ResourceMetadataURL())
	mux.Handle("GET "+prm.Path, p.ResourceMetadataHandler())
	mux.Handle("GET "+authz.PathResourceMetadata+"/", p.ResourceMetadataHandler())
	asm, _ := url.Parse(p.serverMetadataURL())
	mux.Handle("GET "+asm.Path, p.ServerMetadataHandler())
	base := strings.TrimSuffix(mustPath(p.issuer), "/")
	mux.Handle(base+PathToken, p.TokenHandler())
	if p.authorizer != nil {
		mux.Handle(base+PathAuthorize, p.AuthorizeHandler())
	}
	mux.Handle(base+PathDeviceAuthorization, p.DeviceAuthorizationHandler())
	mux.Handle(base+PathRevoke, p.RevokeHandler())
	mux.Handle(base+PathRevocationEvent, p.RevocationEventHandler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if checkVersion(w, r) {
			mux.ServeHTTP(w, r)
		}
	})
}

// VersionHeader optionally names the protocol version a client speaks
// (PROTOCOL §2.1).
const VersionHeader = "Agent-Provisioning-Version"

// checkVersion answers 400 unsupported_version, and reports false, when the
// request names a protocol major version other than 0.
func checkVersion(w http.ResponseWriter, r *http.Request) bool {
	v := r.Header.Get(VersionHeader)
	if v == "" {
		return true
	}
	if major, _, ok := strings.Cut(strings.TrimSpace(v), "."); ok && major == "0" {
		return true
	}
	problem.Write(w, http.StatusBadRequest, "unsupported_version", "this provider speaks protocol version 0.x")
	return false
}

func mustPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Path
}

func (p *Provisioner) serverMetadataURL() string {
	u, _ := oauthwire.WellKnownURL(p.issuer, authz.PathServerMetadata)
	return u
}

// ResourceMetadata returns the RFC 9728 document of the provider's API.
func (p *Provisioner) ResourceMetadata() *authz.ProtectedResourceMetadata {
	return &authz.ProtectedResourceMetadata{
		Resource:               p.resource,
		AuthorizationServers:   []string{p.issuer},
		ScopesSupported:        p.allScopes(),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           p.resourceName,
		ResourceTOSURI:         p.termsURL,
	}
}

// ServerMetadata returns the RFC 8414 document of the provider's
// authorization server.
func (p *Provisioner) ServerMetadata() *authz.AuthorizationServerMetadata {
	m := &authz.AuthorizationServerMetadata{
		Issuer:                                 p.issuer,
		TokenEndpoint:                          p.endpoint(PathToken),
		DeviceAuthorizationEndpoint:            p.endpoint(PathDeviceAuthorization),
		RevocationEndpoint:                     p.endpoint(PathRevoke),
		RevocationEventEndpoint:                p.endpoint(PathRevocationEvent),
		ScopesSupported:                        p.allScopes(),
		ResponseTypesSupported:                 []string{},
		GrantTypesSupported:                    []string{authz.GrantTypeJWTBearer, authz.GrantTypeDeviceCode},
		TokenEndpointAuthMethodsSupported:      []string{"none"},
		RevocationEndpointAuthMethodsSupported: []string{"none"},
		OpTOSURI:                               p.termsURL,
		TermsVersion:                           p.terms,
	}
	if p.authorizer != nil {
		m.AuthorizationEndpoint = p.endpoint(PathAuthorize)
		m.ResponseTypesSupported = []string{"code"}
		m.GrantTypesSupported = append(m.GrantTypesSupported, authz.GrantTypeAuthorizationCode)
		m.CodeChallengeMethodsSupported = []string{oauthwire.PKCEMethod}
		m.AuthorizationResponseIssParameterSupported = true
	}
	return m
}

func (p *Provisioner) allScopes() []string {
	set := map[string]bool{}
	for _, s := range p.defaultScopes {
		set[s] = true
	}
	for _, v := range p.serviceScopes {
		for _, s := range v {
			set[s] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// ResourceMetadataHandler serves the RFC 9728 documents as JSON to GET and
// HEAD: ResourceMetadata at PathResourceMetadata, and, at a path-inserted
// URL PathResourceMetadata+"/v1/x" (RFC 9728 §3.1), the same document with
// resource set to the URL it was derived from, when that URL is at or
// below Resource, and 404 when it is not. Any other path answers the
// Resource document, so the handler may be mounted alone anywhere; mount it
// at PathResourceMetadata and at PathResourceMetadata+"/" for both.
func (p *Provisioner) ResourceMetadataHandler() http.Handler {
	root := mustPath(p.ResourceMetadataURL())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !oauthwire.GetOrHead(w, r) {
			return
		}
		m := p.ResourceMetadata()
		if rest, ok := strings.CutPrefix(requestPath(r), authz.PathResourceMetadata+"/"); ok && "/"+rest != strings.TrimPrefix(root, authz.PathResourceMetadata) {
			id, under := p.resourceAt("/" + rest)
			if !under {
				problem.Write(w, http.StatusNotFound, "not_found", "no protected resource at this path")
				return
			}
			m.Resource = id
		}
		oauthwire.WriteJSON(w, http.StatusOK, m, oauthwire.MetadataMaxAge)
	})
}

// ServerMetadataHandler serves ServerMetadata as JSON to GET and HEAD.
func (p *Provisioner) ServerMetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if oauthwire.GetOrHead(w, r) {
			oauthwire.WriteJSON(w, http.StatusOK, p.ServerMetadata(), oauthwire.MetadataMaxAge)
		}
	})
}

// TokenHandler serves the token endpoint: POST, form-encoded, answering
// RFC 6749 §5.1 JSON or §5.2 error JSON with Cache-Control: no-store.
func (p *Provisioner) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, err := readForm(w, r)
		if err != nil {
			p.writeOAuthError(w, err)
			return
		}
		resp, err := p.Exchange(r.Context(), form)
		if err != nil {
			p.writeOAuthError(w, err)
			return
		}
		w.Header().Set("Pragma", "no-cache")
		oauthwire.WriteJSON(w, http.StatusOK, resp, "no-store")
	})
}

// readForm reads a bounded application/x-www-form-urlencoded POST body.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &authz.Error{Code: authz.ErrInvalidRequest.Code, Status: http.StatusMethodNotAllowed, Detail: "use POST"}
	}
	body, err := safehttp.ReadAll(r.Body, maxFormBytes)
	if err != nil {
		return nil, errorf(authz.ErrInvalidRequest, err, "request body too large or unreadable")
	}
	return ParseTokenForm(r.Header.Get("Content-Type"), body)
}

// ParseTokenForm parses a token-endpoint request body: the content type
// must be application/x-www-form-urlencoded, the body at most 32 KiB, every
// parameter present at most once (RFC 6749 §3.2) and free of NUL bytes.
// Errors are *Error with code invalid_request. It is safe for concurrent use.
func ParseTokenForm(contentType string, body []byte) (url.Values, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errorf(authz.ErrInvalidRequest, nil, "content type must be application/x-www-form-urlencoded")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, errorf(authz.ErrInvalidRequest, nil, "charset must be utf-8")
	}
	if len(body) > maxFormBytes {
		return nil, errorf(authz.ErrInvalidRequest, nil, "body exceeds %d bytes", maxFormBytes)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errorf(authz.ErrInvalidRequest, nil, "body is not valid form encoding")
	}
	for k, v := range form {
		if len(v) != 1 {
			return nil, errorf(authz.ErrInvalidRequest, nil, "parameter %q repeated", oauthwire.Truncate(k, 64))
		}
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v[0], 0) >= 0 {
			return nil, errorf(authz.ErrInvalidRequest, nil, "parameter contains NUL")
		}
	}
	return form, nil
}

// oauthError is the RFC 6749 §5.2 error body, plus the linking hints.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	// ResourceMetadata and AuthorizationServer accompany consent_required.
	ResourceMetadata    string `json:"resource_metadata,omitempty"`
	AuthorizationServer string `json:"authorization_server,omitempty"`
	// Interval accompanies slow_down (RFC 8628 §3.5): the new interval.
	Interval int64 `json:"interval,omitempty"`
}

// oauthErrorOf maps any error to the *Error sent on the wire: protocol
// errors keep their code; anything else is a server_error.
func (p *Provisioner) oauthErrorOf(err error) *authz.Error {
	e := authz.AsError(err)
	if e == nil {
		return errorf(authz.ErrServerError, err, "internal error")
	}
	return e
}

func (p *Provisioner) writeOAuthError(w http.ResponseWriter, err error) {
	e := p.oauthErrorOf(err)
	if e.Status >= 500 {
		p.log.Error("authz: token endpoint failure", "code", e.Code, "err", e.Err)
	}
	body := oauthError{Error: e.Code, ErrorDescription: e.Detail}
	switch e.Code {
	case authz.ErrConsentRequired.Code:
		body.ResourceMetadata = p.ResourceMetadataURL()
		body.AuthorizationServer = p.issuer
		w.Header().Set("WWW-Authenticate", oauthwire.FormatChallenge("Bearer",
			"error", "consent_required", "resource_metadata", body.ResourceMetadata))
	case authz.ErrInvalidClient.Code:
		w.Header().Set("WWW-Authenticate", oauthwire.FormatChallenge("Bearer", "error", "invalid_client"))
	case authz.ErrSlowDown.Code:
		// The interval the server now enforces, the same one the
		// description names, never the base interval.
		body.Interval = wholeSeconds(max(e.RetryInterval, p.interval))
	}
	w.Header().Set("Pragma", "no-cache")
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	oauthwire.WriteJSON(w, status, body, "no-store")
}

// Exchange runs one token request given its form parameters, as
// TokenHandler does after parsing. Every error is an *Error carrying an
// OAuth error code at the top (invalid_grant, consent_required…) and, when a
// verification failed, the verifier's error as its cause, so
//
//	errors.Is(err, authz.ErrInvalidGrant) && errors.Is(err, authz.ErrTokenReplayed)
//
// both hold for a replayed attestation.
func (p *Provisioner) Exchange(ctx context.Context, form url.Values) (*authz.TokenResponse, error) {
	switch gt := form.Get("grant_type"); gt {
	case authz.GrantTypeJWTBearer:
		return p.exchangeAttestation(ctx, form)
	case authz.GrantTypeDeviceCode:
		return p.exchangeDeviceCode(ctx, form)
	case authz.GrantTypeAuthorizationCode:
		if p.authorizer == nil {
			return nil, errorf(authz.ErrUnsupportedGrantType, nil, "authorization_code is not enabled")
		}
		return p.exchangeAuthCode(ctx, form)
	case "":
		return nil, errorf(authz.ErrInvalidRequest, nil, "grant_type is required")
	default:
		return nil, errorf(authz.ErrUnsupportedGrantType, nil, "grant_type %q is not supported", oauthwire.Truncate(gt, 100))
	}
}

// verifyAssertion verifies an attestation parameter, mapping failure to
// invalid_grant with the verifier's error as cause.
func (p *Provisioner) verifyAssertion(ctx context.Context, assertion string) (*authz.Attestation, error) {
	if assertion == "" {
		return nil, errorf(authz.ErrInvalidRequest, nil, "assertion is required")
	}
	att, err := p.verifier.Verify(ctx, assertion)
	if err != nil {
		// The verifier reports every defect of the token as an *Error; a
		// bare error, or one with a 5xx status, is an outage (replay store,
		// JWKS fetch) the client may retry, not a bad grant.
		e := authz.AsError(err)
		if e == nil || e.Status >= 500 {
			return nil, errorf(authz.ErrTemporarilyUnavailable, err, "attestation could not be checked now; retry later")
		}
		code := e.Code
		// An embedded consent receipt not accepted by the human is a terms
		// problem, not a broken attestation: say so.
		if errors.Is(err, authz.ErrHumanAcceptanceRequired) {
			return nil, errorf(authz.ErrTermsNotAccepted, err, "terms must be accepted by the human, not the agent")
		}
		return nil, errorf(authz.ErrInvalidGrant, err, "attestation rejected: %s", code)
	}
	return att, nil
}

func (p *Provisioner) exchangeAttestation(ctx context.Context, form url.Values) (*authz.TokenResponse, error) {
	att, err := p.verifyAssertion(ctx, form.Get("assertion"))
	if err != nil {
		return nil, err
	}
	scopes, err := p.grantScopes(att.Service, form.Get("scope"))
	if err != nil {
		return nil, err
	}
	user := UserRef{Issuer: att.Issuer, Subject: att.Subject}
	acct, err := p.accounts.FindBySubject(ctx, user)
	switch {
	case err == nil:
		return p.issue(ctx, acct.ID, user, att, scopes, authz.LinkExisting)
	case !errors.Is(err, ErrAccountNotFound):
		return nil, errorf(authz.ErrServerError, err, "account store unavailable")
	}
	if !att.EmailVerified || NormalizeEmail(att.Email) == "" {
		return nil, errorf(authz.ErrEmailNotVerified, nil, "the attested email is missing or not verified; no account can be created")
	}
	// Only a hint for choosing the error: the creation below is atomic and
	// reports a concurrent holder of the email as ErrEmailTaken.
	existing, err := p.accounts.FindByEmail(ctx, att.Email)
	switch {
	case err == nil:
		return p.emailMatch(ctx, existing, user, att, scopes)
	case !errors.Is(err, ErrAccountNotFound):
		return nil, errorf(authz.ErrServerError, err, "account store unavailable")
	}
	rec, err := p.checkTerms(ctx, att)
	if err != nil {
		return nil, err
	}
	stored, created, err := p.accounts.CreateIfAbsent(ctx, Account{
		ID:        NewAccountID(),
		Email:     att.Email,
		Name:      att.Name,
		CreatedAt: p.now.Now().UTC(),
		Consents:  []ConsentRecord{rec},
	}, user)
	switch {
	case errors.Is(err, ErrEmailTaken):
		existing, ferr := p.accounts.FindByEmail(ctx, att.Email)
		if ferr != nil {
			return nil, errorf(authz.ErrServerError, ferr, "account store unavailable")
		}
		return p.emailMatch(ctx, existing, user, att, scopes)
	case err != nil:
		return nil, errorf(authz.ErrServerError, err, "account store unavailable")
	}
	action := authz.LinkExisting
	if created {
		action = authz.LinkCreated
		p.log.Info("authz: account created", "account_id", stored.ID, "iss", user.Issuer, "sub", user.Subject)
	}
	return p.issue(ctx, stored.ID, user, att, scopes, action)
}

// emailMatch handles an unlinked identity whose email belongs to an
// existing account: consent, unless the policy explicitly allows linking.
func (p *Provisioner) emailMatch(ctx context.Context, existing *Account, user UserRef, att *authz.Attestation, scopes []string) (*authz.TokenResponse, error) {
	// A concurrent first request of this same identity may have created
	// the account between our lookup by subject and by email: then the
	// email match is this identity's own account.
	if slices.Contains(existing.Users, user) {
		return p.issue(ctx, existing.ID, user, att, scopes, authz.LinkExisting)
	}
	if acct, err := p.accounts.FindBySubject(ctx, user); err == nil {
		return p.issue(ctx, acct.ID, user, att, scopes, authz.LinkExisting)
	}
	if p.emailPolicy == nil || !p.emailPolicy(ctx, att, existing) {
		return nil, errorf(authz.ErrConsentRequired, nil, "an account with this email exists; the account holder must approve linking through OAuth")
	}
	if _, err := p.accounts.LinkSubject(ctx, existing.ID, user); err != nil {
		if errors.Is(err, ErrAlreadyLinked) {
			return nil, errorf(authz.ErrInvalidGrant, err, "identity is linked to another account")
		}
		return nil, errorf(authz.ErrServerError, err, "account store unavailable")
	}
	p.log.Info("authz: identity linked by email policy", "account_id", existing.ID, "iss", user.Issuer, "sub", user.Subject)
	return p.issue(ctx, existing.ID, user, att, scopes, authz.LinkExisting)
}

// checkTerms requires the attestation's consent receipt to record the
// human accepting the provider's current terms for this very identity.
func (p *Provisioner) checkTerms(ctx context.Context, att *authz.Attestation) (ConsentRecord, error) {
	if att.Consent == "" {
		return ConsentRecord{}, errorf(authz.ErrTermsNotAccepted, nil, "creating an account requires a consent receipt for terms version %q", p.terms)
	}
	rc := att.ConsentReceipt
	if rc == nil {
		var err error
		if rc, err = p.verifier.VerifyConsent(ctx, att.Consent); err != nil {
			return ConsentRecord{}, errorf(authz.ErrTermsNotAccepted, err, "consent receipt rejected")
		}
	}
	switch {
	case !rc.Human:
		return ConsentRecord{}, errorf(authz.ErrTermsNotAccepted, authz.ErrHumanAcceptanceRequired, "terms must be accepted by the human, not the agent")
	case rc.Issuer != att.Issuer || rc.Subject != att.Subject:
		return ConsentRecord{}, errorf(authz.ErrTermsNotAccepted, nil, "consent receipt is for another user")
	case rc.TermsVersion != p.terms:
		return ConsentRecord{}, errorf(authz.ErrTermsNotAccepted, nil, "consent receipt covers terms version %q, current is %q", oauthwire.Truncate(rc.TermsVersion, 64), p.terms)
	}
	return ConsentRecord{TermsVersion: rc.TermsVersion, AcceptedAt: rc.AcceptedAt.UTC(), Receipt: att.Consent}, nil
}

// grantScopes returns the scopes for service, narrowed to requested when
// the client asked for fewer.
func (p *Provisioner) grantScopes(service, requested string) ([]string, error) {
	allowed, ok := p.serviceScopes[service]
	if !ok {
		allowed = p.defaultScopes
	}
	if requested == "" {
		return slices.Clone(allowed), nil
	}
	var out []string
	for _, s := range strings.Fields(requested) {
		if !slices.Contains(allowed, s) {
			return nil, errorf(authz.ErrInvalidScope, nil, "scope %q is not available for %q", oauthwire.Truncate(s, 64), service)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// issue mints and stores a token for accountID.
func (p *Provisioner) issue(ctx context.Context, accountID string, user UserRef, att *authz.Attestation, scopes []string, action string) (*authz.TokenResponse, error) {
	token := newAccessToken()
	now := p.now.Now().UTC()
	rec := IssuedToken{
		Hash:      authz.HashToken(token),
		AccountID: accountID,
		User:      user,
		Scopes:    scopes,
		IssuedAt:  now,
		ExpiresAt: now.Add(p.tokenTTL),
	}
	if att != nil {
		rec.Service, rec.Project = att.Service, att.Project
	}
	if err := p.tokens.Put(ctx, rec); err != nil {
		return nil, errorf(authz.ErrServerError, err, "token store unavailable")
	}
	return &authz.TokenResponse{
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(p.tokenTTL / time.Second),
		Scope:       strings.Join(scopes, " "),
		AccountID:   accountID,
		LinkAction:  action,
	}, nil
}

// writeProblem answers a non-OAuth endpoint error as problem+json.
func writeProblem(w http.ResponseWriter, err error) {
	e := authz.AsError(err)
	if e == nil {
		e = errorf(authz.ErrServerError, err, "internal error")
	}
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	problem.Write(w, status, e.Code, e.Detail)
}
