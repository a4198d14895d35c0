package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// MaxLinkResponseBytes bounds a token or device authorization response read
// by a Linker.
const MaxLinkResponseBytes = 64 << 10

// ErrInvalidResponse: a provider's token or device authorization endpoint
// answered something that is not a valid OAuth response (wrong status,
// malformed JSON, missing members, a token type other than Bearer, an
// insecure verification URI).
var ErrInvalidResponse = &authz.Error{Code: "invalid_response", Status: http.StatusBadGateway}

// Bounds the Linker applies to what a provider says about polling, so that
// a provider cannot keep an orchestrator polling forever or flooding it.
const (
	minPollInterval     = time.Second
	maxPollInterval     = 5 * time.Minute
	defaultPollInterval = 5 * time.Second
	// maxCachedMetadata bounds the Linker's metadata cache (one entry per
	// provider issuer).
	maxCachedMetadata = 1024
)

// LinkerOptions configure a Linker. The zero value (or nil) is usable.
type LinkerOptions struct {
	// HTTPClient sends requests to providers; default http.DefaultClient.
	// It is never modified: redirects are refused on a copy.
	HTTPClient *http.Client
	// Logger receives one line per link made; tokens, assertions and device
	// codes are never logged. Default slog.Default().
	Logger *slog.Logger
	// Clock reads the time; default time.Now.
	Clock func() time.Time
	// Sleep waits d between device-flow polls, returning early with the
	// context's error; default a timer. Tests pass one that advances a
	// fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// MaxDeviceWait bounds how long PendingConsent.Wait polls, whatever
	// expires_in the provider announced; default 15 minutes.
	MaxDeviceWait time.Duration
	// MetadataTTL is how long fetched RFC 8414 metadata is reused; default
	// 5 minutes (the max-age providers serve it with).
	MetadataTTL time.Duration
}

// Linker is the orchestrator side of account provisioning (PROTOCOL §4.5,
// §4.6): it trades a fresh identity attestation for a provider token with
// the RFC 7523 JWT-bearer grant, and when the provider answers
// consent_required it starts the RFC 8628 device flow so that the account
// holder can approve the link. Every credential obtained is stored in the
// Vault. A Linker is safe for concurrent use.
type Linker struct {
	attester *authz.Attester
	vault    *Vault
	client   *http.Client
	log      *slog.Logger
	now      clock.Func
	sleep    func(context.Context, time.Duration) error
	maxWait  time.Duration
	metaTTL  time.Duration

	mu   sync.Mutex
	meta map[string]cachedMetadata // by issuer
}

type cachedMetadata struct {
	m       *authz.AuthorizationServerMetadata
	expires time.Time
}

// NewLinker returns a Linker signing attestations with attester and storing
// credentials in vault.
func NewLinker(attester *authz.Attester, vault *Vault, opts *LinkerOptions) (*Linker, error) {
	switch {
	case attester == nil:
		return nil, errors.New("authz: linker: attester is required")
	case vault == nil:
		return nil, errors.New("authz: linker: vault is required")
	}
	if opts == nil {
		opts = &LinkerOptions{}
	}
	l := &Linker{
		attester: attester, vault: vault, log: opts.Logger, now: opts.Clock, sleep: opts.Sleep,
		maxWait: opts.MaxDeviceWait, metaTTL: opts.MetadataTTL, meta: map[string]cachedMetadata{},
	}
	base := opts.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	// A token endpoint that redirects is misconfigured or hostile: the form
	// carries an attestation and must reach the endpoint named, nothing else.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	l.client = &c
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.sleep == nil {
		l.sleep = sleepCtx
	}
	if l.maxWait <= 0 {
		l.maxWait = 15 * time.Minute
	}
	if l.metaTTL <= 0 {
		l.metaTTL = 5 * time.Minute
	}
	return l, nil
}

// LinkRequest asks for a credential for one service of one project. The
// identity fields go into the attestation the provider verifies.
type LinkRequest struct {
	// Project is the orchestrator's project id (required).
	Project string
	// Service is the service ref "provider/service_id" (required); its
	// provider id is the attestation's audience.
	Service string
	// Server is the provider's RFC 8414 metadata. When nil it is fetched
	// from Issuer (and cached).
	Server *authz.AuthorizationServerMetadata
	// Issuer is the provider's authorization server identifier, used when
	// Server is nil (the catalog's authorization_server).
	Issuer string
	// Subject is the user's pairwise subject at the provider (required).
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	// Actor names the agent acting for the user.
	Actor *authz.Actor
	// Consent is a consent receipt signed with Attester.SignConsent after
	// the human accepted the provider's terms. Without it the provider
	// creates no account (terms_not_accepted).
	Consent string
	// Scope narrows the requested scopes (space-separated); empty asks for
	// the service's default scopes.
	Scope string
}

// LinkResult is what a successful Link or PendingConsent.Wait obtained. A
// plain value.
type LinkResult struct {
	// LinkAction is LinkCreated or LinkExisting.
	LinkAction string
	// Credential is the credential as stored in the vault.
	Credential *Credential
}

// Link obtains a credential for req.Service and stores it in the vault,
// replacing any credential of the same project and service (its Env is
// kept when the account is the same).
//
// When the provider answers consent_required and offers the device flow,
// Link starts it and returns a *PendingConsent error (errors.Is matches
// ErrConsentRequired): show its VerificationURI and UserCode to the human,
// then call its Wait. Other refusals are *Error values comparable with
// ErrTermsNotAccepted, ErrEmailNotVerified, ErrInvalidGrant, ErrConsentRequired
// (no device flow offered) and so on; a provider that answered nonsense
// gives ErrInvalidResponse, one that could not be reached
// ErrTemporarilyUnavailable.
func (l *Linker) Link(ctx context.Context, req LinkRequest) (*LinkResult, error) {
	key, err := parseKey(req.Project, req.Service)
	if err != nil {
		return nil, err
	}
	server, err := l.serverMetadata(ctx, &req)
	if err != nil {
		return nil, err
	}
	assertion, err := l.attest(ctx, &req, key.Provider, req.Consent)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {authz.GrantTypeJWTBearer}, "assertion": {assertion}}
	if req.Scope != "" {
		form.Set("scope", req.Scope)
	}
	tr, hint, err := l.token(ctx, server.TokenEndpoint, form)
	if err == nil {
		return l.store(ctx, key, req.Scope, tr)
	}
	if !errors.Is(err, authz.ErrConsentRequired) || server.DeviceAuthorizationEndpoint == "" {
		return nil, err
	}
	if err := l.checkResource(ctx, server, hint); err != nil {
		return nil, err
	}
	return nil, l.startDevice(ctx, &req, key, server, err)
}

// serverMetadata returns req.Server, or the cached or fetched metadata of
// req.Issuer.
func (l *Linker) serverMetadata(ctx context.Context, req *LinkRequest) (*authz.AuthorizationServerMetadata, error) {
	m := req.Server
	if m == nil {
		if req.Issuer == "" {
			return nil, errorf(authz.ErrInvalidRequest, nil, "link request needs Server or Issuer")
		}
		now := l.now.Now()
		l.mu.Lock()
		c, ok := l.meta[req.Issuer]
		l.mu.Unlock()
		if ok && now.Before(c.expires) {
			m = c.m
		} else {
			var err error
			if m, err = authz.FetchServerMetadata(ctx, l.client, req.Issuer); err != nil {
				return nil, err
			}
			l.mu.Lock()
			if len(l.meta) >= maxCachedMetadata {
				// Bounded: forget expired entries, or all of them.
				for k, c := range l.meta {
					if !now.Before(c.expires) {
						delete(l.meta, k)
					}
				}
				if len(l.meta) >= maxCachedMetadata {
					clear(l.meta)
				}
			}
			l.meta[req.Issuer] = cachedMetadata{m: m, expires: now.Add(l.metaTTL)}
			l.mu.Unlock()
		}
	}
	if _, err := safehttp.CheckURL(m.TokenEndpoint); err != nil {
		return nil, errorf(authz.ErrInvalidMetadata, err, "token endpoint %q", m.TokenEndpoint)
	}
	if m.DeviceAuthorizationEndpoint != "" {
		if _, err := safehttp.CheckURL(m.DeviceAuthorizationEndpoint); err != nil {
			return nil, errorf(authz.ErrInvalidMetadata, err, "device authorization endpoint %q", m.DeviceAuthorizationEndpoint)
		}
	}
	return m, nil
}

func (l *Linker) attest(ctx context.Context, req *LinkRequest, provider, consent string) (string, error) {
	return l.attester.Attest(ctx, authz.AttestRequest{
		Audience: provider, Subject: req.Subject, Email: req.Email, EmailVerified: req.EmailVerified,
		Name: req.Name, Actor: req.Actor, Project: req.Project, Service: req.Service, Consent: consent,
	})
}

// checkResource follows the resource_metadata hint of a consent_required
// answer (RFC 9728) and requires the resource to name the authorization
// server the Linker is talking to, so that a provider cannot send the
// human to approve at someone else's server.
func (l *Linker) checkResource(ctx context.Context, server *authz.AuthorizationServerMetadata, hint *oauthErrorBody) error {
	if hint == nil || hint.ResourceMetadata == "" {
		return nil
	}
	rm, err := authz.FetchResourceMetadata(ctx, l.client, hint.ResourceMetadata, "")
	if err != nil {
		return err
	}
	if !slices.Contains(rm.AuthorizationServers, server.Issuer) {
		return errorf(authz.ErrInvalidMetadata, nil, "resource %q does not list authorization server %q", rm.Resource, server.Issuer)
	}
	return nil
}

// startDevice runs the RFC 8628 device authorization request with a fresh
// attestation (no consent receipt: linking creates nothing).
func (l *Linker) startDevice(ctx context.Context, req *LinkRequest, key VaultKey, server *authz.AuthorizationServerMetadata, cause error) error {
	assertion, err := l.attest(ctx, req, key.Provider, "")
	if err != nil {
		return err
	}
	form := url.Values{"client_id": {l.attester.Issuer()}, "assertion": {assertion}}
	if req.Scope != "" {
		form.Set("scope", req.Scope)
	}
	status, ctype, body, err := l.post(ctx, server.DeviceAuthorizationEndpoint, form)
	if err != nil {
		return err
	}
	da, _, err := parseDeviceAnswer(status, ctype, body)
	if err != nil {
		return err
	}
	now := l.now.Now()
	return &PendingConsent{
		Provider:                key.Provider,
		Service:                 req.Service,
		UserCode:                da.UserCode,
		VerificationURI:         da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete,
		ExpiresAt:               now.Add(min(time.Duration(da.ExpiresIn)*time.Second, l.maxWait)),
		linker:                  l,
		key:                     key,
		scope:                   req.Scope,
		tokenEndpoint:           server.TokenEndpoint,
		deviceCode:              da.DeviceCode,
		interval:                clampInterval(time.Duration(da.Interval) * time.Second),
		cause:                   cause,
	}
}

func clampInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultPollInterval
	}
	return min(max(d, minPollInterval), maxPollInterval)
}

// token posts form to the token endpoint and parses the answer.
func (l *Linker) token(ctx context.Context, endpoint string, form url.Values) (*tokenAnswer, *oauthErrorBody, error) {
	status, ctype, body, err := l.post(ctx, endpoint, form)
	if err != nil {
		return nil, nil, err
	}
	return parseTokenAnswer(status, ctype, body)
}

// post sends an OAuth form and returns the bounded answer.
func (l *Linker) post(ctx context.Context, endpoint string, form url.Values) (int, string, []byte, error) {
	if _, err := safehttp.CheckURL(endpoint); err != nil {
		return 0, "", nil, errorf(authz.ErrInvalidMetadata, err, "refusing to post to %q", endpoint)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", nil, errorf(authz.ErrInvalidMetadata, err, "bad endpoint %q", endpoint)
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("Accept", "application/json")
	resp, err := l.client.Do(hreq)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, "", nil, ctxErr
		}
		return 0, "", nil, errorf(authz.ErrTemporarilyUnavailable, err, "%s unreachable", endpoint)
	}
	defer resp.Body.Close()
	body, err := safehttp.ReadAll(resp.Body, MaxLinkResponseBytes)
	if err != nil {
		return 0, "", nil, errorf(ErrInvalidResponse, err, "reading the answer of %s", endpoint)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, nil
}

// store writes the credential of tr into the vault: compare-and-set on an
// existing record (keeping its Env when the account is unchanged), create
// otherwise, retrying when a concurrent writer wins either race.
func (l *Linker) store(ctx context.Context, key VaultKey, requested string, tr *tokenAnswer) (*LinkResult, error) {
	now := l.now.Now()
	fresh := Credential{
		Project: key.Project, Provider: key.Provider, Service: key.Service,
		AccessToken: Secret(tr.AccessToken), RefreshToken: Secret(tr.RefreshToken), TokenType: "Bearer",
		Scopes: strings.Fields(tr.Scope), AccountID: tr.AccountID, LinkAction: tr.LinkAction,
	}
	if tr.Scope == "" {
		// RFC 6749 §5.1: scope omitted means as requested.
		fresh.Scopes = strings.Fields(requested)
	}
	if tr.ExpiresIn > 0 {
		fresh.Expiry = now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	ref := key.Provider + "/" + key.Service
	for range maxUpdateAttempts {
		c, err := l.vault.Update(ctx, key.Project, ref, func(old *Credential) error {
			env := old.Env
			*old = fresh
			if old.AccountID == fresh.AccountID {
				old.Env = env
			}
			return nil
		})
		if errors.Is(err, ErrCredentialNotFound) {
			err = l.vault.Create(ctx, fresh)
			c = fresh.clone()
			if errors.Is(err, ErrVersionConflict) {
				continue // created concurrently: update it instead
			}
		}
		if err != nil {
			return nil, err
		}
		l.log.Info("authz: provider credential stored", "project", key.Project, "service", ref,
			"account_id", tr.AccountID, "link_action", tr.LinkAction)
		return &LinkResult{LinkAction: tr.LinkAction, Credential: c}, nil
	}
	return nil, errorf(ErrVersionConflict, nil, "credential %s kept changing", key)
}

// PendingConsent is the answer to a Link the provider would not complete
// without its account holder's approval: an account with the user's email
// exists there. It is an error matching ErrConsentRequired. Show
// VerificationURI (or VerificationURIComplete) and UserCode to the human,
// who approves at the provider; then Wait. The device code itself stays
// inside and is never printed. A PendingConsent is safe for concurrent
// use: concurrent Waits share one polling loop.
type PendingConsent struct {
	Provider                string
	Service                 string
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	// ExpiresAt is when the provider's device code expires (bounded by
	// LinkerOptions.MaxDeviceWait).
	ExpiresAt time.Time

	linker        *Linker
	key           VaultKey
	scope         string
	tokenEndpoint string
	deviceCode    string
	cause         error

	mu       sync.Mutex // held by the one polling loop
	interval time.Duration
	result   *LinkResult
	err      error
}

// Error says what the human must do, without the codes.
func (p *PendingConsent) Error() string {
	return fmt.Sprintf("authz: consent_required: an account exists at %s; its holder must approve linking %s at %s",
		p.Provider, p.Service, p.VerificationURI)
}

// Format prints Error for every verb, so that %#v cannot reveal the device
// code.
func (p *PendingConsent) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, p.Error()) }

// Unwrap returns the provider's consent_required error.
func (p *PendingConsent) Unwrap() error { return p.cause }

// Is matches ErrConsentRequired even when the cause was lost.
func (p *PendingConsent) Is(target error) bool { return target == authz.ErrConsentRequired }

// Wait polls the provider's token endpoint at the interval it asked for
// (growing by 5 seconds on slow_down) until the human approves, denies or
// the code expires. On approval the credential (link_action
// "linked_existing") is stored in the vault and returned. A denial is
// ErrAccessDenied, expiry ErrDeviceCodeExpired; a cancelled ctx returns
// its error and a later Wait resumes polling. Once decided, every Wait
// returns the same outcome.
func (p *PendingConsent) Wait(ctx context.Context) (*LinkResult, error) {
	if p.linker == nil {
		return nil, errorf(authz.ErrInvalidRequest, nil, "PendingConsent was not returned by a Linker")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.result != nil || p.err != nil {
		return p.result, p.err
	}
	l := p.linker
	form := url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "device_code": {p.deviceCode}, "client_id": {l.attester.Issuer()}}
	for {
		if !l.now.Now().Before(p.ExpiresAt) {
			p.err = errorf(authz.ErrDeviceCodeExpired, nil, "the human did not decide before %s", p.ExpiresAt.UTC().Format(time.RFC3339))
			return nil, p.err
		}
		if err := l.sleep(ctx, p.interval); err != nil {
			return nil, err
		}
		tr, hint, err := l.token(ctx, p.tokenEndpoint, form)
		switch {
		case err == nil:
			p.result, p.err = l.store(ctx, p.key, p.scope, tr)
			return p.result, p.err
		case errors.Is(err, authz.ErrAuthorizationPending):
		case errors.Is(err, authz.ErrSlowDown):
			next := p.interval + 5*time.Second
			if hint != nil && hint.Interval > 0 {
				next = max(next, time.Duration(hint.Interval)*time.Second)
			}
			p.interval = clampInterval(next)
		case errors.Is(err, authz.ErrTemporarilyUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return nil, err // transient: a later Wait resumes
		default:
			p.err = err
			return nil, err
		}
	}
}
