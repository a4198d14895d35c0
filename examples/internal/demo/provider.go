package demo

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

// Paths every demo orchestrator serves, relative to its issuer URL.
const (
	JWKSPath       = "/.well-known/jwks.json"
	RedemptionPath = "/payment/redemptions"
)

// maxAPIBody bounds request bodies of the provider's own API.
const maxAPIBody = 64 << 10

// ProviderConfig configures a Provider. Profile, BaseURL,
// OrchestratorIssuer and RedemptionKey are required. It is read once by
// NewProvider.
type ProviderConfig struct {
	Profile Profile
	// BaseURL is where the provider is reachable, e.g. "https://api.cloud.example";
	// it is the OAuth issuer and the origin agents pay.
	BaseURL string
	// OrchestratorIssuer is the one orchestrator this provider trusts: its
	// attestations are accepted and its payment tokens redeemed.
	OrchestratorIssuer string
	// OrchestratorKeys pins the orchestrator's public keys; when nil they
	// are fetched from OrchestratorIssuer + JWKSPath and followed through
	// rotations.
	OrchestratorKeys *jose.JSONWebKeySet
	// RedemptionURL defaults to OrchestratorIssuer + RedemptionPath.
	RedemptionURL string
	// RedemptionKey is the API key the orchestrator registered for this
	// provider; it authenticates redemptions.
	RedemptionKey string
	// CatalogKey, when set, signs the catalog (EdDSA).
	CatalogKey   ed25519.PrivateKey
	CatalogKeyID string
	// PaywallSecret keys the 402 challenge HMAC (at least 32 bytes);
	// random when nil.
	PaywallSecret []byte
	// Stores; in-memory when nil.
	Accounts provision.AccountStore
	Tokens   provision.TokenStore
	Replay   authz.ReplayStore
	// Resources records what the provider provisioned.
	Resources ProviderResources
	// DeviceInterval is the device-flow polling interval; default 5 s.
	DeviceInterval time.Duration
	// HTTPClient fetches the orchestrator's keys and redeems tokens.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Provider is one provider service with the protocol mounted. It is safe
// for concurrent use.
type Provider struct {
	profile     Profile
	base        string
	accounts    provision.AccountStore
	Provisioner *provision.Provisioner
	Paywall     *paywall.Paywall
	discovery   *discovery.Handler
	log         *slog.Logger

	resources ProviderResources
	sessions  *demoSessions
	device    *provision.DevicePage

	mu    sync.Mutex
	calls int

	createMu sync.Mutex // serializes keyed creates (see createHandler)
}

// ProviderResources is the provider's own record of what it provisioned,
// by account. Implementations are safe for concurrent use.
type ProviderResources interface {
	// Put stores res by res.ID, replacing any record.
	Put(ctx context.Context, res Resource) error
	// ByAccount lists an account's resources, oldest first.
	ByAccount(ctx context.Context, accountID string) ([]Resource, error)
}

// memoryProviderResources is the in-memory ProviderResources.
type memoryProviderResources struct {
	mu sync.Mutex
	m  map[string]Resource
}

func (s *memoryProviderResources) Put(_ context.Context, res Resource) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[res.ID] = res
	return nil
}

func (s *memoryProviderResources) ByAccount(_ context.Context, accountID string) ([]Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Resource{}
	for _, r := range s.m {
		if r.AccountID == accountID {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Resource) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Resource is one thing a provider provisioned for an account. The
// orchestrator keeps the same record on its side. A plain value.
type Resource struct {
	ID        string            `json:"id"`
	Service   string            `json:"service"` // service ref
	Name      string            `json:"name"`
	Project   string            `json:"project,omitempty"`
	AccountID string            `json:"account_id"`
	Config    json.RawMessage   `json:"config,omitempty"`
	Status    string            `json:"status"`
	Charged   *budget.Money     `json:"charged,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
}

// NewProvider assembles a provider from cfg.
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	if cfg.Profile.ID == "" || cfg.BaseURL == "" || cfg.OrchestratorIssuer == "" || cfg.RedemptionKey == "" {
		return nil, errors.New("demo: provider: profile, base URL, orchestrator issuer and redemption key are required")
	}
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	p := &Provider{profile: cfg.Profile, base: base, log: log, resources: cfg.Resources, sessions: newDemoSessions()}
	if p.resources == nil {
		p.resources = &memoryProviderResources{m: map[string]Resource{}}
	}

	// Discovery: metadata and catalog, signed when a key is given.
	meta := &catalogschema.ProviderMetadata{
		ProtocolVersion:             catalogschema.ProtocolVersion,
		ProviderID:                  cfg.Profile.ID,
		Name:                        cfg.Profile.Name,
		TermsOfService:              catalogschema.Terms{URL: cfg.Profile.TermsURL, Version: cfg.Profile.TermsVersion},
		JWKSURI:                     base + "/.well-known/jwks.json",
		CatalogURI:                  base + "/catalog",
		CatalogSigning:              catalogschema.SigningNone,
		AuthorizationServer:         base,
		AccountProvisioningEndpoint: base + provision.PathToken,
		RevocationEndpoint:          base + provision.PathRevocationEvent,
		PaymentEndpoint:             base + "/v1/services",
		AuthModes:                   []catalogschema.AuthMode{catalogschema.AuthAttestation, catalogschema.AuthOAuthDeviceCode},
		PaymentMethods:              []string{catalogschema.PaymentMethodAgentprovToken},
	}
	var hopts discovery.HandlerOptions
	if cfg.CatalogKey != nil {
		meta.CatalogSigning = catalogschema.SigningJWS
		hopts.SigningKey = &jose.SigningKey{Algorithm: jose.EdDSA, Key: cfg.CatalogKey}
		hopts.KeyID = cfg.CatalogKeyID
	}
	h, err := discovery.NewHandler(meta, cfg.Profile.Catalog(), &hopts)
	if err != nil {
		return nil, fmt.Errorf("demo: provider %s: discovery: %w", cfg.Profile.ID, err)
	}
	p.discovery = h

	// Authorization: trust the orchestrator's attestations.
	trusted := authz.TrustedIssuer{Issuer: cfg.OrchestratorIssuer, Keys: cfg.OrchestratorKeys}
	var keys *authz.KeySet
	if cfg.OrchestratorKeys == nil {
		trusted.JWKSURL = strings.TrimSuffix(cfg.OrchestratorIssuer, "/") + JWKSPath
		if keys, err = authz.NewKeySet(trusted.JWKSURL, &authz.KeySetOptions{HTTPClient: client, Logger: log}); err != nil {
			return nil, fmt.Errorf("demo: provider %s: %w", cfg.Profile.ID, err)
		}
	}
	replay := cfg.Replay
	if replay == nil {
		replay = authz.NewMemoryReplayStore(nil)
	}
	verifier, err := authz.NewVerifier(cfg.Profile.ID, []authz.TrustedIssuer{trusted}, replay,
		&authz.VerifierOptions{KeySet: &authz.KeySetOptions{HTTPClient: client, Logger: log}})
	if err != nil {
		return nil, fmt.Errorf("demo: provider %s: %w", cfg.Profile.ID, err)
	}
	p.accounts = cfg.Accounts
	if p.accounts == nil {
		p.accounts = provision.NewMemoryAccountStore()
	}
	tokens := cfg.Tokens
	if tokens == nil {
		tokens = provision.NewMemoryTokenStore()
	}
	scopes := map[string][]string{}
	for id, s := range cfg.Profile.Scopes {
		scopes[cfg.Profile.ID+"/"+id] = s
	}
	p.Provisioner, err = provision.NewProvisioner(verifier, p.accounts, tokens, &provision.ProvisionerOptions{
		Issuer:         base,
		ResourceName:   cfg.Profile.Name + " API",
		TermsVersion:   cfg.Profile.TermsVersion,
		TermsURL:       cfg.Profile.TermsURL,
		ServiceScopes:  scopes,
		DeviceInterval: cfg.DeviceInterval,
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: provider %s: %w", cfg.Profile.ID, err)
	}

	// Payment: verify tokens locally, redeem them at the orchestrator.
	redemption := cfg.RedemptionURL
	if redemption == "" {
		redemption = strings.TrimSuffix(cfg.OrchestratorIssuer, "/") + RedemptionPath
	}
	// Receipts are checked like payment tokens: against the pinned keys, or
	// through the KeySet that follows the orchestrator's rotations.
	ropts := &paywall.RedeemerOptions{APIKey: cfg.RedemptionKey, HTTPClient: client, Issuer: cfg.OrchestratorIssuer, Keys: cfg.OrchestratorKeys}
	if keys != nil {
		ropts.KeyResolver = keys
	}
	redeemer, err := paywall.NewRedeemer(redemption, ropts)
	if err != nil {
		return nil, fmt.Errorf("demo: provider %s: %w", cfg.Profile.ID, err)
	}
	secret := cfg.PaywallSecret
	if secret == nil {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	realm := base
	if u, err := url.Parse(base); err == nil {
		realm = u.Host
	}
	// Payment tokens are checked against the pinned keys, or against the
	// KeySet that follows the orchestrator's rotations.
	var checker *payment.TokenVerifier
	if keys != nil {
		checker, err = payment.NewResolvingTokenVerifier(cfg.OrchestratorIssuer, cfg.Profile.ID, keys, nil)
	} else {
		checker, err = payment.NewTokenVerifier(cfg.OrchestratorIssuer, cfg.Profile.ID, cfg.OrchestratorKeys, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("demo: provider %s: %w", cfg.Profile.ID, err)
	}
	// Metered calls can also be paid in sessions (one token for many
	// calls, each checked locally); the session secret is shared with the
	// orchestrator like the redemption key (SessionSecret).
	p.Paywall, err = paywall.NewPaywall(realm, [][]byte{secret}, checker, redeemer, &paywall.PaywallOptions{
		Logger: log, Sessions: &paywall.SessionOptions{Secret: SessionSecret(cfg.RedemptionKey)},
	})
	if err != nil {
		return nil, fmt.Errorf("demo: provider %s: %w", cfg.Profile.ID, err)
	}
	// The RFC 8628 verification page, with the demo's stand-in login.
	if p.device, err = provision.NewDevicePage(p.Provisioner, p.SignedIn, &provision.DevicePageOptions{
		ProviderName: cfg.Profile.Name, SignInURL: DemoSignInPath, Logger: log,
		Service: func(_ context.Context, ref string) (provision.DeviceService, bool) { return p.serviceForPage(ref) },
	}); err != nil {
		return nil, fmt.Errorf("demo: provider %s: %w", cfg.Profile.ID, err)
	}
	return p, nil
}

// ID is the provider id.
func (p *Provider) ID() string { return p.profile.ID }

// BaseURL is the provider's base URL.
func (p *Provider) BaseURL() string { return p.base }

// Mount registers every route of the provider on mux: the protocol's
// discovery, OAuth and revocation endpoints next to the provider's own API.
// This is how an existing service adds the protocol to the mux it already has.
func (p *Provider) Mount(mux *http.ServeMux) {
	// Discovery documents at their fixed paths.
	mux.Handle("GET /.well-known/agent-provisioning", p.discovery)
	mux.Handle("GET /catalog", p.discovery)
	mux.Handle("GET /.well-known/jwks.json", p.discovery)

	// Provisioning: token, device flow, revocation, OAuth metadata.
	prov := p.Provisioner.Handler()
	mux.Handle("/oauth/", prov)
	mux.Handle("/agentprov/", prov)
	mux.Handle("GET "+authz.PathResourceMetadata, prov)
	mux.Handle("GET "+authz.PathResourceMetadata+"/", prov) // one document per protected path
	mux.Handle("GET "+authz.PathServerMetadata, prov)
	// The page where the person approves a device-flow link.
	mux.Handle(DevicePath, p.device)

	// The provider's API. A paid route is the Paywall around the bearer
	// check: the Paywall takes the Payment credential off the request, so
	// the bearer middleware sees only the Bearer token.
	for _, s := range p.profile.Services {
		ref := p.profile.ID + "/" + s.ServiceID
		create := p.Provisioner.Middleware(p.profile.Scopes[s.ServiceID]...)(p.createHandler(s))
		if amount, currency := upfront(s); amount > 0 {
			create = p.Paywall.Require(ref, budget.Money{Amount: amount, Currency: currency})(create)
		}
		// A retried create (same Idempotency-Key) gets what the first
		// made, before any payment is asked for.
		create = p.replayCreate(ref, create)
		mux.Handle("POST /v1/services/"+s.ServiceID, create)
	}
	mux.Handle("GET /v1/resources", p.Provisioner.Middleware()(http.HandlerFunc(p.listResources)))
	mux.Handle("DELETE /v1/resources/{id}", p.Provisioner.Middleware()(http.HandlerFunc(p.deleteResource)))
	if p.profile.Service(ServiceCompute) != nil {
		mux.Handle("POST /v1/deployments", p.Provisioner.Middleware(p.profile.Scopes[ServiceCompute]...)(http.HandlerFunc(p.deploy)))
	}
	if s := p.profile.Service(ServiceInference); s != nil {
		price, _ := metered(s)
		infer := p.Provisioner.Middleware(p.profile.Scopes[ServiceInference]...)(http.HandlerFunc(p.infer))
		mux.Handle("POST /v1/inference",
			p.Paywall.RequireMetered(p.profile.ID+"/"+ServiceInference, budget.Money{Amount: price.Amount, Currency: price.Currency})(infer))
	}
}

// Handler returns a new mux with only the provider mounted.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	p.Mount(mux)
	return mux
}

// SeedAccount creates an account that existed before the protocol, as the
// provider's own sign-up would, and returns its id.
func (p *Provider) SeedAccount(ctx context.Context, email string) (string, error) {
	acct := provision.Account{ID: provision.NewAccountID(), Email: email, CreatedAt: time.Now()}
	var err error
	switch s := p.accounts.(type) {
	case interface{ Seed(provision.Account) error }:
		err = s.Seed(acct)
	case interface {
		Seed(context.Context, provision.Account) error
	}:
		err = s.Seed(ctx, acct)
	default:
		return "", errors.New("demo: account store cannot seed accounts")
	}
	if err != nil {
		return "", err
	}
	return acct.ID, nil
}

// ApproveDevice is the provider's own "Allow" button: the account holder
// with email, signed in at the provider, approves the link of userCode.
// A real provider authenticates that user first.
func (p *Provider) ApproveDevice(ctx context.Context, userCode, email string) (*provision.PendingLink, error) {
	pending, err := p.Provisioner.PendingDevice(ctx, userCode)
	if err != nil {
		return nil, err
	}
	acct, err := p.accounts.FindByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	return pending, p.Provisioner.ApproveDevice(ctx, userCode, acct.ID)
}

// Calls reports how many paid API calls (inference) the provider served.
func (p *Provider) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

type createRequest struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config,omitempty"`
}

func (p *Provider) createHandler(s *catalogschema.Service) http.Handler {
	ref := p.profile.ID + "/" + s.ServiceID
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := provision.IdentityFromContext(r.Context())
		if id.Service != ref {
			problem.Write(w, http.StatusForbidden, "wrong_service", "this token was issued for "+id.Service)
			return
		}
		var req createRequest
		if err := decodeBody(r, &req); err != nil {
			problem.Write(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if len(req.Config) == 0 || string(req.Config) == "null" {
			req.Config = json.RawMessage(`{}`)
		}
		if err := s.ValidateConfig(req.Config); err != nil {
			problem.Write(w, http.StatusUnprocessableEntity, "invalid_config", err.Error())
			return
		}
		if req.Name == "" {
			req.Name = strings.ReplaceAll(s.ServiceID, ":", "-")
		}
		resID := newID("res_")
		if key := r.Header.Get("Idempotency-Key"); key != "" {
			resID = keyedResourceID(id.AccountID, key)
			// Serialized with the check: two creates under one key never
			// both run. The second answers 409 (not charged: a paid
			// handler's failure releases the hold) and its retry gets the
			// first's resource from replayCreate.
			p.createMu.Lock()
			defer p.createMu.Unlock()
			existing, err := p.findResource(r.Context(), id.AccountID, resID)
			if err != nil {
				problem.Write(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
				return
			}
			if existing != nil {
				w.Header().Set("Retry-After", "1")
				problem.Write(w, http.StatusConflict, "idempotency_in_flight", "a request with this Idempotency-Key was just processed; retry")
				return
			}
		}
		res := &Resource{
			ID: resID, Service: ref, Name: req.Name, Project: id.Project, AccountID: id.AccountID,
			Config: req.Config, Status: "active", CreatedAt: time.Now().UTC(),
			Env: p.envFor(s.ServiceID, req.Config),
		}
		if paid, ok := paywall.PaidFromContext(r.Context()); ok {
			m := paid.Price
			res.Charged = &m
		}
		if err := p.resources.Put(r.Context(), *res); err != nil {
			p.log.Error("demo: resource store", "err", err)
			problem.Write(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
			return
		}
		p.log.Info("demo: provisioned", "provider", p.profile.ID, "resource", res.ID, "account_id", id.AccountID)
		writeJSON(w, http.StatusCreated, res)
	})
}

// envFor is what the provider hands back for the agent's environment;
// none of it is secret (the API token is in the vault already).
func (p *Provider) envFor(service string, config json.RawMessage) map[string]string {
	prefix := strings.ToUpper(strings.ReplaceAll(p.profile.ID, "-", "_"))
	switch service {
	case ServiceDomain:
		var c struct {
			Domain string `json:"domain"`
		}
		_ = json.Unmarshal(config, &c)
		return map[string]string{prefix + "_DOMAIN": c.Domain}
	case ServiceCompute:
		return map[string]string{prefix + "_API_URL": p.base + "/v1"}
	case ServiceInference:
		return map[string]string{prefix + "_INFERENCE_URL": p.base + "/v1/inference"}
	}
	return nil
}

func (p *Provider) listResources(w http.ResponseWriter, r *http.Request) {
	id, _ := provision.IdentityFromContext(r.Context())
	out, err := p.resources.ByAccount(r.Context(), id.AccountID)
	if err != nil {
		problem.Write(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	// ?idempotency_key=K: only what this account's create under K made
	// (none, or one resource): how an orchestrator cleaning up an
	// interrupted add learns whether the create happened.
	if key := r.URL.Query().Get("idempotency_key"); key != "" {
		want := keyedResourceID(id.AccountID, key)
		out = slices.DeleteFunc(out, func(res Resource) bool { return res.ID != want })
	}
	writeJSON(w, http.StatusOK, out)
}

func (p *Provider) deleteResource(w http.ResponseWriter, r *http.Request) {
	id, _ := provision.IdentityFromContext(r.Context())
	list, err := p.resources.ByAccount(r.Context(), id.AccountID)
	if err != nil {
		problem.Write(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	// Only the account's own resources are found: another account's id is
	// as unknown as a made-up one.
	i := slices.IndexFunc(list, func(res Resource) bool { return res.ID == r.PathValue("id") })
	if i < 0 {
		problem.Write(w, http.StatusNotFound, "not_found", "no such resource")
		return
	}
	res := list[i]
	res.Status = "removed"
	if err := p.resources.Put(r.Context(), res); err != nil {
		problem.Write(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type deployRequest struct {
	App string `json:"app"`
}

// deploy runs an app on the account's compute plan.
func (p *Provider) deploy(w http.ResponseWriter, r *http.Request) {
	id, _ := provision.IdentityFromContext(r.Context())
	var req deployRequest
	if err := decodeBody(r, &req); err != nil || req.App == "" {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "a JSON body with \"app\" is required")
		return
	}
	list, err := p.resources.ByAccount(r.Context(), id.AccountID)
	if err != nil {
		problem.Write(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	if !slices.ContainsFunc(list, func(res Resource) bool {
		return res.Service == p.profile.ID+"/"+ServiceCompute && res.Status == "active"
	}) {
		problem.Write(w, http.StatusPaymentRequired, "plan_required", "this account has no active "+ServiceCompute+" plan")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{
		"id": newID("dep_"), "app": req.App, "status": "running", "url": p.base + "/apps/" + url.PathEscape(req.App),
	})
}

// infer is the metered API: the Paywall has already been paid.
func (p *Provider) infer(w http.ResponseWriter, r *http.Request) {
	paid, _ := paywall.PaidFromContext(r.Context())
	p.mu.Lock()
	p.calls++
	n := p.calls
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"request": n, "output": "42", "charged": paid.Price})
}

func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxAPIBody {
		return errors.New("request body too large")
	}
	if len(body) == 0 {
		return nil
	}
	return json.Unmarshal(body, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b))
}

// SessionSecret is the metered-session secret (paywall.SessionOptions.Secret)
// the demo's orchestrator and provider share. The demo derives it from the
// provider's redemption key so that one registered secret configures both;
// a real deployment registers a separate random secret of at least 32 bytes.
func SessionSecret(redemptionKey string) []byte {
	sum := sha256.Sum256([]byte("agentprov-demo-session-secret\x00" + redemptionKey))
	return sum[:]
}
