package demo

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// User is the orchestrator's signed-in user. A plain value.
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// OrchestratorConfig configures an Orchestrator. Issuer, Key, User,
// PairwiseSecret and VaultKey are required; an empty KeyID is the key's
// RFC 7638 thumbprint; nil stores are in memory.
// It is read once by NewOrchestrator.
type OrchestratorConfig struct {
	// Issuer is the orchestrator's public base URL: the iss of its
	// attestations and payment tokens; JWKS and redemption are served under it.
	Issuer string
	// Key signs attestations, consent receipts, revocation events,
	// payment tokens and receipts (one key, one JWKS).
	Key ed25519.PrivateKey
	// KeyID is the kid of Key; default its RFC 7638 thumbprint.
	KeyID string
	User  User
	// PairwiseSecret derives per-provider subjects (at least 32 bytes).
	PairwiseSecret []byte
	// Trust lists the providers the orchestrator lists and pays.
	Trust []discovery.TrustedProvider
	// VaultKey is the AES-256 key sealing the vault (32 bytes), by VaultKeyID.
	VaultKey   []byte
	VaultKeyID string
	// Stores.
	VaultStore  vault.VaultStore
	Budget      budget.Store
	Redemptions issuer.RedemptionStore
	Idempotency payment.IdempotencyStore
	Rail        issuer.Rail
	Resources   ResourceStore
	// RedemptionKeys maps provider id to the API key it redeems with.
	RedemptionKeys map[string]string
	// AddLease is how long a name reserved by an add stays with it without
	// renewal (see Reserve); default DefaultAddLease.
	AddLease time.Duration
	// CallCeiling is the per-call ceiling of metered API calls; default 5 USD.
	CallCeiling budget.Money
	// HTTPClient talks to providers; default a client with a 15 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Orchestrator is the platform side assembled from the agentprov packages.
// It is safe for concurrent use.
type Orchestrator struct {
	Attester   *authz.Attester
	Aggregator *discovery.Aggregator
	Ledger     *budget.Ledger
	Issuer     *issuer.Issuer
	Vault      *vault.Vault
	Linker     *vault.Linker
	Revoker    *vault.Revoker
	Resources  ResourceStore

	cfg    OrchestratorConfig
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu  sync.Mutex
	asm map[string]*authz.AuthorizationServerMetadata // by provider id

	charges *chargeLog // recent final charges, for the spend page
}

// NewOrchestrator assembles an orchestrator from cfg.
func NewOrchestrator(cfg OrchestratorConfig) (*Orchestrator, error) {
	if cfg.Issuer == "" || cfg.Key == nil || cfg.User.ID == "" || cfg.User.Email == "" {
		return nil, errors.New("demo: orchestrator: issuer, key and user are required")
	}
	if cfg.KeyID == "" {
		// The RFC 7638 thumbprint: a re-created key never reuses a kid.
		kid, err := authz.KeyThumbprint(cfg.Key)
		if err != nil {
			return nil, err
		}
		cfg.KeyID = kid
	}
	if len(cfg.PairwiseSecret) < 32 || len(cfg.VaultKey) != 32 {
		return nil, errors.New("demo: orchestrator: pairwise secret (>= 32 bytes) and vault key (32 bytes) are required")
	}
	o := &Orchestrator{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, now: cfg.Now, asm: map[string]*authz.AuthorizationServerMetadata{}, charges: &chargeLog{}}
	if o.client == nil {
		o.client = &http.Client{Timeout: 15 * time.Second}
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.cfg.CallCeiling.Amount == 0 {
		o.cfg.CallCeiling = budget.USD(500)
	}
	var err error
	if o.Attester, err = authz.NewAttester(cfg.Issuer,
		authz.SigningKey{KeyID: cfg.KeyID, Algorithm: jose.EdDSA, Key: cfg.Key},
		&authz.AttesterOptions{Clock: o.now, Logger: o.log}); err != nil {
		return nil, err
	}
	if o.Aggregator, err = discovery.NewAggregator(cfg.Trust, &discovery.AggregatorOptions{
		HTTPClient: o.client, Timeout: 5 * time.Second, Now: o.now, Logger: o.log}); err != nil {
		return nil, err
	}
	store := cfg.Budget
	if store == nil {
		store = budget.NewMemoryStore(nil)
	}
	// Protocol defaults: $100 per provider per calendar month.
	if o.Ledger, err = budget.NewLedger(store, &budget.LedgerOptions{Now: o.now, Logger: o.log}); err != nil {
		return nil, err
	}
	rail := cfg.Rail
	if rail == nil {
		rail = issuer.NewMemoryRail(nil)
	}
	if o.Issuer, err = issuer.NewIssuer(cfg.Issuer, payment.SigningKey{KeyID: cfg.KeyID, Key: cfg.Key}, o.Ledger,
		&issuer.IssuerOptions{
			Rail: rail, Store: cfg.Redemptions, Idempotency: cfg.Idempotency, Now: o.now, Logger: o.log,
			Authenticate: issuer.BearerAuthenticator(cfg.RedemptionKeys),
			OnFinal:      o.charges.record,
		}); err != nil {
		return nil, err
	}
	vs := cfg.VaultStore
	if vs == nil {
		vs = vault.NewMemoryVaultStore()
	}
	kid := cfg.VaultKeyID
	if kid == "" {
		kid = "vault-1"
	}
	sealed, err := vault.NewEncryptedVaultStore(vs, map[string][]byte{kid: cfg.VaultKey}, kid)
	if err != nil {
		return nil, err
	}
	if o.Vault, err = vault.NewVault(sealed, &vault.VaultOptions{Clock: o.now, Logger: o.log}); err != nil {
		return nil, err
	}
	if o.Linker, err = vault.NewLinker(o.Attester, o.Vault, &vault.LinkerOptions{HTTPClient: o.client, Logger: o.log, Clock: o.now}); err != nil {
		return nil, err
	}
	if o.Revoker, err = vault.NewRevoker(o.Attester, o.Vault, targets{o}, o.client,
		&vault.RevokerOptions{MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Logger: o.log}); err != nil {
		return nil, err
	}
	o.Resources = cfg.Resources
	if o.Resources == nil {
		o.Resources = NewMemoryResources()
	}
	return o, nil
}

// Mount registers the orchestrator's public endpoints on mux: the JWKS
// providers verify attestations and payment tokens with, and the
// redemption endpoint they redeem payment tokens at.
func (o *Orchestrator) Mount(mux *http.ServeMux) {
	// One JWKS for both roles that sign: attestations and payment tokens.
	jwks, err := authz.NewJWKSHandler([]authz.KeySource{o.Attester, o.Issuer}, &authz.JWKSHandlerOptions{Logger: o.log})
	if err != nil {
		panic(err) // two non-nil sources: cannot fail
	}
	mux.Handle("GET "+JWKSPath, jwks)
	mux.Handle(RedemptionPath, o.Issuer.RedemptionHandler())
	mux.Handle(RedemptionPath+"/", o.Issuer.RedemptionHandler())
}

// Handler returns a new mux with only the orchestrator mounted.
func (o *Orchestrator) Handler() http.Handler {
	mux := http.NewServeMux()
	o.Mount(mux)
	return mux
}

// User is the signed-in user.
func (o *Orchestrator) User() User { return o.cfg.User }

// Refresh fetches every trusted catalog; it fails only if none is usable.
func (o *Orchestrator) Refresh(ctx context.Context) (*discovery.RefreshReport, error) {
	rep := o.Aggregator.Refresh(ctx)
	var errs []error
	for _, r := range rep.Results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.ID, r.Err))
		}
	}
	usable := 0
	for _, pc := range o.Aggregator.Catalogs() {
		if pc.Snapshot != nil {
			usable++
		}
	}
	if len(errs) > 0 && usable == 0 {
		return rep, &ProviderError{Op: "serve its catalog", Err: errors.Join(errs...)}
	}
	return rep, nil
}

// subject is the user's pairwise subject at provider.
func (o *Orchestrator) subject(provider string) string {
	return authz.PairwiseSubject(o.cfg.PairwiseSecret, o.cfg.User.ID, provider)
}

// baseURL is the trusted base URL of provider.
func (o *Orchestrator) baseURL(provider string) (string, error) {
	for _, t := range o.cfg.Trust {
		if t.ID == provider {
			return strings.TrimSuffix(t.BaseURL, "/"), nil
		}
	}
	return "", fmt.Errorf("%w: provider %q", ErrNotFound, provider)
}

// serverMetadata fetches (once) the provider's OAuth server metadata.
func (o *Orchestrator) serverMetadata(ctx context.Context, provider string) (*authz.AuthorizationServerMetadata, error) {
	o.mu.Lock()
	m := o.asm[provider]
	o.mu.Unlock()
	if m != nil {
		return m, nil
	}
	pc, err := o.Aggregator.Provider(provider)
	if err != nil || pc.Snapshot == nil {
		return nil, fmt.Errorf("%w: provider %q has no catalog", ErrNotFound, provider)
	}
	iss := pc.Snapshot.Metadata.AuthorizationServer
	if iss == "" {
		return nil, &ProviderError{Provider: provider, Op: "serve its metadata", Err: errors.New("no authorization server")}
	}
	m, err = authz.FetchServerMetadata(ctx, o.client, iss)
	if err != nil {
		return nil, &ProviderError{Provider: provider, Op: "serve its metadata", Err: err}
	}
	o.mu.Lock()
	o.asm[provider] = m
	o.mu.Unlock()
	return m, nil
}

// targets resolves revocation endpoints from the providers' metadata.
type targets struct{ o *Orchestrator }

func (t targets) RevocationTarget(ctx context.Context, provider string) (vault.RevocationTarget, error) {
	m, err := t.o.serverMetadata(ctx, provider)
	if err != nil {
		return vault.RevocationTarget{}, err
	}
	return vault.RevocationTarget{Audience: provider, Endpoint: m.RevocationEventEndpoint}, nil
}

// AgentClient is the HTTP client an agent uses to call provider's API for
// ref: the vault's bearer token on every request, and a payment.Transport
// that answers 402 challenges of that provider's origin only, with tokens
// minted under the caps and refused above ceiling.
func (o *Orchestrator) AgentClient(project, ref string, ceiling budget.Money) (*http.Client, error) {
	provider, _, _ := strings.Cut(ref, "/")
	base, err := o.baseURL(provider)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	inner := o.client.Transport
	if inner == nil {
		inner = http.DefaultTransport
	}
	// The payer mints one-shot tokens and opens metered sessions; the
	// Transport uses a session wherever the provider offers one.
	secrets := map[string][]byte{}
	if k := o.cfg.RedemptionKeys[provider]; k != "" {
		secrets[provider] = SessionSecret(k)
	}
	payer, err := issuer.IssuerSessionPayer(o.Issuer, project, secrets, nil)
	if err != nil {
		return nil, err
	}
	pay, err := payment.NewTransport(payer,
		map[string]string{u.Scheme + "://" + u.Host: provider}, ceiling,
		&payment.TransportOptions{Base: inner, Logger: o.log})
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &bearer{vault: o.Vault, project: project, ref: ref, base: pay}}, nil
}

// bearer adds the vault's token for one credential. (x/oauth2's Transport
// would do, but it replaces the request's context-free token source
// lookups with a background context; this one uses the request's.)
type bearer struct {
	vault        *vault.Vault
	project, ref string
	base         http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := b.vault.Token(r.Context(), b.project, b.ref)
	if err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return b.base.RoundTrip(r2)
}

// Spend is one provider's spend this month against its cap. A plain value.
type Spend struct {
	Provider  string        `json:"provider"`
	Window    string        `json:"window"`
	Limit     *budget.Money `json:"limit,omitempty"`
	Committed int64         `json:"committed"`
	Held      int64         `json:"held"`
	Arrears   int64         `json:"arrears"`
	Remaining *budget.Money `json:"remaining,omitempty"`
	Currency  string        `json:"currency"`
}

// Spend reports this month's spend per trusted provider.
func (o *Orchestrator) Spend(ctx context.Context, project string) ([]Spend, error) {
	var out []Spend
	for _, t := range o.cfg.Trust {
		u, err := o.Ledger.Usage(ctx, budget.Scope{Project: project, Provider: t.ID})
		if err != nil {
			return nil, err
		}
		s := Spend{Provider: t.ID, Remaining: u.Remaining, Currency: o.Ledger.Currency()}
		for _, c := range u.Counters {
			if c.Counter.Provider == t.ID && c.Counter.Window.Period() == budget.Month {
				s.Window, s.Limit, s.Committed, s.Held, s.Arrears = string(c.Counter.Window), c.Limit, c.Committed, c.Held, c.Arrears
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Spend) int { return strings.Compare(a.Provider, b.Provider) })
	return out, nil
}

// RevokeAll revokes every credential of project (of one provider when
// provider is set) at the providers, then forgets the project's resources
// there.
func (o *Orchestrator) RevokeAll(ctx context.Context, project, provider string) (*vault.RevocationReport, error) {
	rep, err := o.Revoker.Revoke(ctx, vault.RevokeRequest{Project: project, Provider: provider})
	if err != nil {
		return rep, err
	}
	for _, r := range rep.Results {
		if !r.Revoked {
			continue
		}
		list, err := o.Resources.List(ctx, project)
		if err != nil {
			return rep, err
		}
		for _, res := range list {
			if res.Service == r.Provider+"/"+r.Service {
				if err := o.Resources.Delete(ctx, project, res.Name); err != nil {
					return rep, err
				}
			}
		}
	}
	return rep, nil
}
