package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
	"github.com/agentprov/agentprov/payment"
)

// Errors the programs map to exit codes.
var (
	// ErrNeedsHuman: the step needs a decision only the human may make
	// (accepting terms, approving a link).
	ErrNeedsHuman = errors.New("demo: needs the human")
	// ErrNotFound: unknown provider, service or resource.
	ErrNotFound = errors.New("demo: not found")
	// ErrExists: the resource name is taken in this project.
	ErrExists = errors.New("demo: already exists")
)

// ProviderError is a provider that could not be reached or refused. It is
// immutable once returned.
type ProviderError struct {
	Provider string
	Op       string
	Status   int
	Code     string // protocol or OAuth error code, when the provider sent one
	Err      error
}

// Error names the provider and the operation before the cause.
func (e *ProviderError) Error() string {
	msg := "provider"
	if e.Provider != "" {
		msg += " " + e.Provider
	}
	if e.Op != "" {
		msg += ": " + e.Op
	}
	if e.Status != 0 {
		msg += fmt.Sprintf(": HTTP %d", e.Status)
	}
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause, so errors.Is matches protocol codes.
func (e *ProviderError) Unwrap() error { return e.Err }

// TermsError says which terms the human must accept. It matches ErrNeedsHuman.
type TermsError struct {
	Provider, URL, Version string
}

// Error lists the terms the user has yet to accept.
func (e *TermsError) Error() string {
	return fmt.Sprintf("creating an account at %s needs the human to accept its terms (%s, version %s)", e.Provider, e.URL, e.Version)
}

// Is matches ErrTermsRequired.
func (e *TermsError) Is(target error) bool { return target == ErrNeedsHuman }

// DeviceLink is what the human must do at the provider to link an
// existing account: open VerificationURI and enter UserCode. A plain value.
type DeviceLink struct {
	Provider                string `json:"provider"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	ExpiresIn               int64  `json:"expires_in"`
}

// ConnectRequest asks for a credential for one service of one project.
type ConnectRequest struct {
	Project string
	Ref     string
	// AcceptTerms records that the human (never the agent) accepted the
	// provider's current terms; without it no account is created.
	AcceptTerms bool
	// Agent names the agent acting for the user (the attestation's act).
	Agent string
	// OnDevice shows a device-flow link request to the human. Nil means
	// no human is reachable: linking an existing account fails with
	// ErrNeedsHuman.
	OnDevice func(ctx context.Context, l DeviceLink) error
	// Force gets a new token even when the vault holds one.
	Force bool
}

// Connection describes a credential in the vault, without its secrets.
// A plain value.
type Connection struct {
	Provider   string    `json:"provider"`
	Service    string    `json:"service"`
	AccountID  string    `json:"account_id"`
	LinkAction string    `json:"link_action"`
	Scopes     []string  `json:"scopes,omitempty"`
	Expiry     time.Time `json:"expiry,omitzero"`
	// Device is set when the account was linked through the device flow.
	Device *DeviceLink `json:"device,omitempty"`
}

func connectionOf(c *vault.Credential) *Connection {
	return &Connection{Provider: c.Provider, Service: c.Ref(), AccountID: c.AccountID, LinkAction: c.LinkAction,
		Scopes: c.Scopes, Expiry: c.Expiry}
}

// Connect obtains a credential for req.Ref at its provider and stores it in
// the vault through the orchestrator's vault.Linker: the JWT-bearer grant
// with an identity attestation (creating the account when the human
// accepted the terms), or, when the provider says an account with the
// user's email exists, the device flow approved by the account holder at
// the provider.
func (o *Orchestrator) Connect(ctx context.Context, req ConnectRequest) (*Connection, error) {
	entry, err := o.Aggregator.Lookup(req.Ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, req.Ref, err)
	}
	ref := entry.Ref.String()
	provider := entry.Provider
	if !req.Force {
		if c, err := o.Vault.Get(ctx, req.Project, ref); err == nil {
			return connectionOf(c), nil
		}
	}
	pc, err := o.Aggregator.Provider(provider)
	if err != nil || pc.Snapshot == nil {
		return nil, fmt.Errorf("%w: provider %s", ErrNotFound, provider)
	}
	meta := pc.Snapshot.Metadata
	asm, err := o.serverMetadata(ctx, provider)
	if err != nil {
		return nil, err
	}
	sub := o.subject(provider)
	lreq := vault.LinkRequest{
		Project: req.Project, Service: ref, Server: asm,
		Subject: sub, Email: o.cfg.User.Email, EmailVerified: true, Name: o.cfg.User.Name,
		Actor: &authz.Actor{ClientID: agentName(req.Agent)},
	}
	if req.AcceptTerms {
		// The receipt records the human's acceptance; the attester refuses
		// to sign one that does not say Human.
		lreq.Consent, err = o.Attester.SignConsent(ctx, authz.ConsentReceipt{
			Subject: sub, Email: o.cfg.User.Email, Provider: provider,
			TermsURL: meta.TermsOfService.URL, TermsVersion: asm.TermsVersion,
			AcceptedAt: o.now(), Agent: agentName(req.Agent), Human: true,
		})
		if err != nil {
			return nil, err
		}
	}
	res, err := o.Linker.Link(ctx, lreq)
	var device *DeviceLink
	var pending *vault.PendingConsent
	switch {
	case err == nil:
	case errors.Is(err, authz.ErrTermsNotAccepted):
		return nil, &TermsError{Provider: provider, URL: meta.TermsOfService.URL, Version: asm.TermsVersion}
	case errors.As(err, &pending) && req.OnDevice != nil:
		device = &DeviceLink{Provider: provider, UserCode: pending.UserCode, VerificationURI: pending.VerificationURI,
			VerificationURIComplete: pending.VerificationURIComplete, ExpiresIn: int64(pending.ExpiresAt.Sub(o.now()) / time.Second)}
		if err := req.OnDevice(ctx, *device); err != nil {
			return nil, err
		}
		if res, err = pending.Wait(ctx); err != nil {
			return nil, linkError(provider, "link the account", err)
		}
	case errors.Is(err, authz.ErrConsentRequired):
		return nil, fmt.Errorf("%w: an account with %s exists at %s; its holder must approve the link", ErrNeedsHuman, o.cfg.User.Email, provider)
	default:
		return nil, linkError(provider, "issue a credential", err)
	}
	c := connectionOf(res.Credential)
	c.Device = device
	return c, nil
}

// linkError reports a Linker failure as the provider's, with its code.
func linkError(provider, op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	pe := &ProviderError{Provider: provider, Op: op, Err: err}
	if e := authz.AsError(err); e != nil {
		pe.Status, pe.Code = e.Status, e.Code
	}
	return pe
}

func agentName(s string) string {
	if s == "" {
		return "agent"
	}
	return s
}

// AddRequest asks the provider to provision a service for a project.
type AddRequest struct {
	Project string
	Ref     string
	Name    string
	Config  json.RawMessage
	// Reservation, when set, is the name reserved for this add by
	// Reserve (its caller calls Finish); when nil, Add reserves the name
	// itself.
	Reservation *Reservation
}

// Add provisions req.Ref at its provider with the vault's credential (see
// Connect) and pays its up-front price through HTTP 402: the per-call
// ceiling is exactly the catalog's price, so a provider can never charge
// more than it advertised. The name is reserved first (see Reserve) and
// the create call carries the reservation's persisted idempotency key, so
// that a retry of a failed or interrupted add finishes it instead of
// creating a second resource. The resource is recorded in the
// orchestrator's ResourceStore and what the provider returned for the
// environment in the vault.
func (o *Orchestrator) Add(ctx context.Context, req AddRequest) (_ *Resource, err error) {
	entry, err := o.Aggregator.Lookup(req.Ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, req.Ref, err)
	}
	ref := entry.Ref.String()
	if err := entry.Service.ValidateConfig(orEmpty(req.Config)); err != nil {
		return nil, err
	}
	resv := req.Reservation
	if resv == nil {
		if resv, err = o.Reserve(ctx, ReserveRequest{Project: req.Project, Ref: ref, Name: req.Name, Config: req.Config}); err != nil {
			return nil, err
		}
		defer func() { resv.Finish(ctx, err) }()
	} else if resv.Project != req.Project || resv.Ref != ref || (req.Name != "" && req.Name != resv.Name) || !equalConfig(resv.Config, req.Config) {
		return nil, errors.New("demo: add: the reservation is for another add")
	}
	req.Name = resv.Name
	amount, currency := upfront(entry.Service)
	ceiling := budget.Money{Amount: max(amount, 1), Currency: currency}
	if currency == "" {
		ceiling.Currency = o.Ledger.Currency()
	}
	client, err := o.AgentClient(req.Project, ref, ceiling)
	if err != nil {
		return nil, err
	}
	base, _ := o.baseURL(entry.Provider)
	body, _ := json.Marshal(createRequest{Name: req.Name, Config: req.Config})
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/services/"+entry.Ref.Service, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	// One key per logical add, persisted with the reservation before this
	// call: a retry finishes the same create and never pays twice.
	hreq.Header.Set("Idempotency-Key", resv.Key)
	resv.sent = true
	var res Resource
	if err := o.do(client, entry.Provider, "provision "+ref, hreq, &res); err != nil {
		return nil, err
	}
	res.Project = req.Project
	if err := o.Resources.Put(ctx, res); err != nil {
		return nil, err
	}
	if len(res.Env) > 0 {
		_, err = o.Vault.Update(ctx, req.Project, ref, func(c *vault.Credential) error {
			if c.Env == nil {
				c.Env = map[string]vault.Secret{}
			}
			for k, v := range res.Env {
				c.Env[k] = vault.Secret(v)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return &res, nil
}

// Remove deletes a resource at its provider and forgets it. The last
// resource of a service takes its credential with it (revoked at the
// provider, dropped from the vault). A pending resource is a
// *NameConflictError: Discard cleans those up.
func (o *Orchestrator) Remove(ctx context.Context, project, name string) (*Resource, error) {
	res, err := o.Resources.Get(ctx, project, name)
	if err != nil {
		return nil, err
	}
	if res.Status == StatusPending {
		return nil, &NameConflictError{Project: project, Name: name, Service: res.Service, State: StatusPending, SameRequest: true}
	}
	if err := o.deleteAtProvider(ctx, project, res.Service, res); err != nil {
		return nil, err
	}
	if err := o.Resources.Delete(ctx, project, name); err != nil {
		return nil, err
	}
	if err := o.dropCredentialIfLast(ctx, project, res.Service); err != nil {
		return res, fmt.Errorf("%s removed, but %w", res.Name, err)
	}
	return res, nil
}

// dropCredentialIfLast revokes and forgets the project's credential for
// service when no resource of the project (pending ones included) uses it
// any more: revoked at the provider (a revocation event for its token),
// then dropped from the vault. A failure is reported; the credential then
// stays in the vault for "revoke" to finish.
func (o *Orchestrator) dropCredentialIfLast(ctx context.Context, project, service string) error {
	left, err := o.Resources.List(ctx, project)
	if err != nil {
		return err
	}
	for _, r := range left {
		if r.Service == service {
			return nil
		}
	}
	cred, err := o.Vault.Get(ctx, project, service)
	if errors.Is(err, vault.ErrCredentialNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := o.revokeToken(ctx, project, cred); err != nil {
		return fmt.Errorf("its credential was not revoked: %w", err)
	}
	if err := o.Vault.Delete(ctx, project, service); err != nil && !errors.Is(err, vault.ErrCredentialNotFound) {
		return err
	}
	return nil
}

// revokeToken sends the provider a revocation event for cred's token.
func (o *Orchestrator) revokeToken(ctx context.Context, project string, cred *vault.Credential) error {
	target, err := targets{o}.RevocationTarget(ctx, cred.Provider)
	if err != nil {
		return err
	}
	jwt, err := o.Attester.Sign(ctx, authz.TypeRevocation, authz.RevocationEvent{
		Audience: cred.Provider, Subject: o.subject(cred.Provider), AccountID: cred.AccountID, Project: project,
		Service: cred.Ref(), TokenHashes: []string{authz.HashToken(cred.AccessToken.Reveal()).String()},
	})
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target.Endpoint, strings.NewReader(jwt))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/jwt")
	return o.do(o.client, cred.Provider, "revoke token", hreq, nil)
}

// Rotate replaces the credential of ref with a fresh token and revokes the
// old one at the provider.
func (o *Orchestrator) Rotate(ctx context.Context, project, ref string) (*Connection, error) {
	old, err := o.Vault.Get(ctx, project, ref)
	if err != nil {
		return nil, fmt.Errorf("%w: no credential for %s", ErrNotFound, ref)
	}
	c, err := o.Connect(ctx, ConnectRequest{Project: project, Ref: ref, Force: true})
	if err != nil {
		return nil, err
	}
	return c, o.revokeToken(ctx, project, old)
}

// do sends req and decodes a 2xx JSON answer into v; other answers become
// a *ProviderError carrying the problem's code. Payment refusals of the
// Transport (cap, ceiling) are returned as they are.
func (o *Orchestrator) do(client *http.Client, provider, op string, req *http.Request, v any) error {
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Err != nil {
			err = ue.Err
		}
		if errors.Is(err, ErrNotFound) || errors.Is(err, vault.ErrCredentialNotFound) {
			return fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		var payErr *payment.Error
		var azErr *authz.Error
		if errors.As(err, &payErr) || errors.As(err, &azErr) {
			return err // a typed refusal: cap, ceiling, vault
		}
		return &ProviderError{Provider: provider, Op: op, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		pd := problem.Read(resp.Body, 64<<10)
		pe := &ProviderError{Provider: provider, Op: op, Status: resp.StatusCode}
		if pd != nil {
			pe.Code = pd.Code
			if pd.Detail != "" {
				pe.Err = errors.New(pd.Detail)
			}
		}
		return pe
	}
	if v == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	body, err := safehttp.ReadAll(resp.Body, 1<<20)
	if err != nil {
		return &ProviderError{Provider: provider, Op: op, Err: err}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &ProviderError{Provider: provider, Op: op, Err: err}
	}
	return nil
}

func orEmpty(c json.RawMessage) json.RawMessage {
	if len(c) == 0 {
		return json.RawMessage(`{}`)
	}
	return c
}

// ResourceStore keeps the orchestrator's record of provisioned resources,
// by project and name. Implementations are safe for concurrent use.
type ResourceStore interface {
	// Put stores res under (res.Project, res.Name), replacing any record
	// (a pending reservation of the name is then complete).
	Put(ctx context.Context, res Resource) error
	// Get returns the record or an error matching ErrNotFound.
	Get(ctx context.Context, project, name string) (*Resource, error)
	// List returns the project's records, oldest first.
	List(ctx context.Context, project string) ([]Resource, error)
	// Delete removes the record; deleting a missing record is not an error.
	Delete(ctx context.Context, project, name string) error

	// Claim reserves (c.Project, c.Name) for one add with one atomic
	// put-if-absent of a StatusPending record holding c.Key, leased to
	// c.Owner until c.Until. An existing pending record with the same
	// fingerprint whose lease ended (at c.Now) is taken over instead,
	// keeping its stored key. Any other existing record gives a
	// *NameConflictError.
	Claim(ctx context.Context, c Claim) (*Claimed, error)
	// Renew extends owner's lease of a pending record, or returns
	// ErrLeaseLost.
	Renew(ctx context.Context, project, name, owner string, until time.Time) error
	// Release ends owner's lease; the record stays pending with its key.
	Release(ctx context.Context, project, name, owner string) error
	// Abandon deletes the record if it is pending and owner holds it.
	Abandon(ctx context.Context, project, name, owner string) error
}

// MemoryResources is an in-memory ResourceStore, safe for concurrent use.
type MemoryResources struct {
	mu     sync.Mutex
	m      map[[2]string]Resource
	claims map[[2]string]*memoryClaim
}

// NewMemoryResources returns an empty MemoryResources.
func NewMemoryResources() *MemoryResources {
	return &MemoryResources{m: map[[2]string]Resource{}, claims: map[[2]string]*memoryClaim{}}
}

// Put stores res, replacing any resource of the same project and name.
func (s *MemoryResources) Put(_ context.Context, res Resource) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[[2]string{res.Project, res.Name}] = res
	delete(s.claims, [2]string{res.Project, res.Name})
	return nil
}

// Get returns the named resource, or an error matching ErrNotFound.
func (s *MemoryResources) Get(_ context.Context, project, name string) (*Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[[2]string{project, name}]
	if !ok {
		return nil, fmt.Errorf("%w: resource %q", ErrNotFound, name)
	}
	return &r, nil
}

// List returns the project's resources.
func (s *MemoryResources) List(_ context.Context, project string) ([]Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Resource
	for k, r := range s.m {
		if k[0] == project {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Resource) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Delete removes the named resource; deleting a missing one is not an error.
func (s *MemoryResources) Delete(_ context.Context, project, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, [2]string{project, name})
	delete(s.claims, [2]string{project, name})
	return nil
}
