package discovery

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// Defaults of AggregatorOptions.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxBodyBytes = catalogschema.DefaultMaxBytes
	DefaultConcurrency  = 8
)

// TrustedProvider is one provider the orchestrator has decided to list. Its
// documents are accepted only under this ID.
type TrustedProvider struct {
	// ID is the provider id the metadata and the catalog must carry.
	ID string
	// BaseURL is where the provider serves MetadataPath, e.g.
	// "https://api.example.com"; HTTPS, or http on loopback.
	BaseURL string
	// Keys pins the provider's catalog signing keys. Mutually exclusive with
	// JWKSURL. With neither, a signed catalog is verified with the keys at
	// the metadata's jwks_uri.
	Keys *jose.JSONWebKeySet
	// JWKSURL names the provider's JWKS; fetched with revalidation.
	JWKSURL string
	// RequireSignature refuses unsigned catalogs from this provider.
	RequireSignature bool
}

// AggregatorOptions configures an Aggregator. Nil means all defaults.
type AggregatorOptions struct {
	// HTTPClient performs the fetches; nil means http.DefaultClient. It is
	// never modified: the Aggregator uses a shallow copy whose redirect
	// policy refuses other origins before applying the client's own.
	HTTPClient *http.Client
	// Timeout bounds all requests for one provider in one Refresh
	// (default DefaultTimeout).
	Timeout time.Duration
	// MaxBodyBytes bounds a catalog body (default DefaultMaxBodyBytes).
	// Metadata and JWKS are bounded at 64 KiB.
	MaxBodyBytes int64
	// Limits bound the parsing of documents (catalogschema defaults if nil).
	Limits *catalogschema.Limits
	// Policy decides which drift quarantines a catalog (default policy if nil).
	Policy *DriftPolicy
	// Concurrency bounds how many providers are fetched at once
	// (default DefaultConcurrency).
	Concurrency int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one record per failed, quarantined or accepted
	// provider; nil means slog.Default().
	Logger *slog.Logger
}

// Aggregator is the orchestrator-side view of many providers' catalogs: it
// fetches, verifies and validates them, caches them with revalidation, keeps
// serving the last good copy when a provider fails, and quarantines
// suspicious changes until an operator accepts them.
//
// An Aggregator is safe for concurrent use. Refresh calls are serialized;
// queries run concurrently with a Refresh and see each provider either
// before or after its update.
type Aggregator struct {
	client      *http.Client
	timeout     time.Duration
	maxBody     int64
	limits      *catalogschema.Limits
	policy      *DriftPolicy
	concurrency int
	now         clock.Func
	log         *slog.Logger

	refreshMu sync.Mutex // serializes Refresh; guards the fetch caches
	mu        sync.RWMutex
	providers []*provider // sorted by id; the slice never changes
	byID      map[string]*provider
}

type provider struct {
	trust   TrustedProvider
	metaURL string

	// Fetch caches, owned by the provider's Refresh goroutine.
	metaETag string
	meta     *catalogschema.ProviderMetadata
	catURL   string
	catETag  string
	cat      *catalogschema.Catalog
	sig      *SignatureInfo
	jwksURL  string
	jwksETag string
	jwks     *jose.JSONWebKeySet

	// Published state, guarded by Aggregator.mu.
	accepted *Snapshot
	pending  *Snapshot
	// textBase is the snapshot whose agent-readable texts were accepted
	// (the first one, or the one current at the last Accept); untrusted is
	// what accepted changed since.
	textBase    *Snapshot
	untrusted   []TextChange
	drift       *Drift
	quarantined bool
	fetchedAt   time.Time
	lastErr     error
}

// NewAggregator validates the trust list and returns an Aggregator that has
// fetched nothing yet; call Refresh.
func NewAggregator(trust []TrustedProvider, opts *AggregatorOptions) (*Aggregator, error) {
	if opts == nil {
		opts = &AggregatorOptions{}
	}
	a := &Aggregator{
		client:      safeClient(opts.HTTPClient),
		timeout:     cmp.Or(opts.Timeout, DefaultTimeout),
		maxBody:     cmp.Or(opts.MaxBodyBytes, DefaultMaxBodyBytes),
		limits:      opts.Limits,
		policy:      opts.Policy,
		concurrency: cmp.Or(opts.Concurrency, DefaultConcurrency),
		now:         opts.Now,
		log:         opts.Logger,
		byID:        map[string]*provider{},
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.timeout < 0 || a.maxBody < 0 || a.concurrency < 0 {
		return nil, errors.New("discovery: aggregator: Timeout, MaxBodyBytes and Concurrency must not be negative")
	}
	for i, tp := range trust {
		if !catalogschema.ValidProviderID(tp.ID) {
			return nil, fmt.Errorf("discovery: aggregator: trust[%d]: invalid provider id %q", i, tp.ID)
		}
		if _, dup := a.byID[tp.ID]; dup {
			return nil, fmt.Errorf("discovery: aggregator: trust[%d]: duplicate provider id %q", i, tp.ID)
		}
		if _, err := safehttp.CheckURL(tp.BaseURL); err != nil {
			return nil, fmt.Errorf("discovery: aggregator: trust[%d] (%s): BaseURL: %w", i, tp.ID, err)
		}
		if tp.Keys != nil && tp.JWKSURL != "" {
			return nil, fmt.Errorf("discovery: aggregator: trust[%d] (%s): Keys and JWKSURL are mutually exclusive", i, tp.ID)
		}
		if tp.JWKSURL != "" {
			if _, err := safehttp.CheckURL(tp.JWKSURL); err != nil {
				return nil, fmt.Errorf("discovery: aggregator: trust[%d] (%s): JWKSURL: %w", i, tp.ID, err)
			}
		}
		if tp.Keys != nil {
			for _, k := range tp.Keys.Keys {
				if !k.IsPublic() {
					return nil, fmt.Errorf("discovery: aggregator: trust[%d] (%s): key %q is not public", i, tp.ID, k.KeyID)
				}
			}
		}
		p := &provider{trust: tp, metaURL: strings.TrimSuffix(tp.BaseURL, "/") + MetadataPath}
		a.byID[tp.ID] = p
		a.providers = append(a.providers, p)
	}
	slices.SortFunc(a.providers, func(x, y *provider) int { return strings.Compare(x.trust.ID, y.trust.ID) })
	return a, nil
}

// RefreshStatus is the outcome of one provider in one Refresh.
type RefreshStatus string

// Refresh outcomes.
const (
	// StatusUpdated: a new or changed catalog was accepted.
	StatusUpdated RefreshStatus = "updated"
	// StatusUnchanged: revalidated (304) or identical; the copy is fresh.
	StatusUnchanged RefreshStatus = "unchanged"
	// StatusFailed: the fetch failed; the last good copy (if any) is stale.
	StatusFailed RefreshStatus = "failed"
	// StatusQuarantined: drift policy held the new catalog back.
	StatusQuarantined RefreshStatus = "quarantined"
)

// ProviderResult is one provider's line in a RefreshReport.
type ProviderResult struct {
	// ID is the trusted provider id.
	ID string `json:"provider"`
	// Status says what the refresh did with this provider.
	Status RefreshStatus `json:"status"`
	// Err is a *FetchError when Status is failed or quarantined.
	Err error `json:"-"`
	// Code is Err's FetchError.Code ("timeout", "signature_invalid", …),
	// empty on success: what a caller reports or branches on.
	Code string `json:"code,omitempty"`
	// Drift is the change against the previously accepted snapshot (nil on
	// failure without drift).
	Drift *Drift `json:"drift,omitempty"`
	// Snapshot is the copy served after this refresh: the new one, or the
	// last accepted one (nil if none) on failure or quarantine. Its
	// Metadata holds the provider's endpoints and signing inputs, so
	// nothing needs fetching again.
	Snapshot *Snapshot `json:"-"`
	// UntrustedText lists the agent-readable texts changed since the
	// operator last accepted them (see ProviderCatalog.UntrustedText).
	UntrustedText []TextChange `json:"untrusted_text,omitempty"`
}

// RefreshReport lists what happened to every provider, sorted by id.
type RefreshReport struct {
	Started, Finished time.Time
	Results           []ProviderResult
}

// Result returns the line of provider id, or nil.
func (r *RefreshReport) Result(id string) *ProviderResult {
	for i := range r.Results {
		if r.Results[i].ID == id {
			return &r.Results[i]
		}
	}
	return nil
}

// Err returns the error of provider id (nil if it succeeded or is unknown).
func (r *RefreshReport) Err(id string) error {
	if res := r.Result(id); res != nil {
		return res.Err
	}
	return nil
}

// Refresh fetches every provider concurrently, each under its own deadline,
// and updates the cache. One provider's failure never affects another's. ctx
// bounds the whole refresh.
func (a *Aggregator) Refresh(ctx context.Context) *RefreshReport {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	rep := &RefreshReport{Started: a.now.Now(), Results: make([]ProviderResult, len(a.providers))}
	sem := make(chan struct{}, a.concurrency)
	var wg sync.WaitGroup
	for i, p := range a.providers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cand, _, err := a.fetch(ctx, p)
			rep.Results[i] = a.commit(ctx, p, cand, err)
			rep.Results[i].Code = ErrorCode(rep.Results[i].Err)
		}()
	}
	wg.Wait()
	rep.Finished = a.now.Now()
	return rep
}

// fetch gets and verifies one provider's documents. It only touches p's
// fetch caches.
func (a *Aggregator) fetch(ctx context.Context, p *provider) (*Snapshot, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	id := p.trust.ID
	fail := func(op string, err error) (*Snapshot, bool, error) {
		return nil, false, &FetchError{Provider: id, Op: op, Err: err}
	}

	// Metadata.
	etag := ""
	if p.meta != nil {
		etag = p.metaETag
	}
	resp, err := a.get(ctx, p.metaURL, etag, maxMetadataBytes, MediaTypeJSON)
	if err != nil {
		return fail(OpMetadata, err)
	}
	meta := p.meta
	if !resp.notModified {
		if meta, err = parseMetadataResponse(id, resp.mediaType, resp.body, a.limits); err != nil {
			return fail(OpMetadata, err)
		}
		p.meta, p.metaETag = meta, resp.etag
	}
	if meta.CatalogURI != p.catURL {
		p.catURL, p.cat, p.sig, p.catETag = meta.CatalogURI, nil, nil, ""
	}

	// Catalog.
	etag = ""
	if p.cat != nil {
		etag = p.catETag
	}
	resp, err = a.get(ctx, p.catURL, etag, a.maxBody, MediaTypeJSON, MediaTypeJOSE)
	if err != nil {
		return fail(OpCatalog, err)
	}
	notModified := resp.notModified
	cat, sig := p.cat, p.sig
	if !resp.notModified {
		// Drop the cache first: a bad body must never be revalidated into a good one.
		p.cat, p.sig, p.catETag = nil, nil, ""
		switch resp.mediaType {
		case MediaTypeJOSE:
			keys, err := a.keys(ctx, p, meta)
			if err != nil {
				return fail(OpJWKS, err)
			}
			if cat, sig, err = VerifyCatalog(resp.body, keys, a.limits); err != nil {
				return fail(OpCatalog, err)
			}
		default:
			if p.trust.RequireSignature || meta.CatalogSigning == catalogschema.SigningJWS {
				return fail(OpCatalog, fmt.Errorf("%w: catalog served unsigned but a signature is required", ErrSignature))
			}
			if cat, err = catalogschema.ParseCatalog(resp.body, a.limits); err != nil {
				return fail(OpCatalog, err)
			}
			sig = nil
		}
		if cat.ProviderID != id {
			return fail(OpCatalog, fmt.Errorf("%w: catalog names %q", ErrProviderMismatch, cat.ProviderID))
		}
		p.cat, p.sig, p.catETag = cat, sig, resp.etag
	}
	return &Snapshot{ProviderID: id, Metadata: meta, Catalog: cat, Signature: sig, ETag: p.catETag}, notModified, nil
}

// keys returns the provider's trusted verification keys: pinned, or fetched
// (with revalidation) from the configured JWKS URL or the metadata's.
func (a *Aggregator) keys(ctx context.Context, p *provider, meta *catalogschema.ProviderMetadata) (*jose.JSONWebKeySet, error) {
	if p.trust.Keys != nil {
		return p.trust.Keys, nil
	}
	u := cmp.Or(p.trust.JWKSURL, meta.JWKSURI)
	if u == "" {
		return nil, fmt.Errorf("%w: no keys pinned and no jwks_uri", ErrUnknownKey)
	}
	if u != p.jwksURL {
		p.jwksURL, p.jwks, p.jwksETag = u, nil, ""
	}
	etag := ""
	if p.jwks != nil {
		etag = p.jwksETag
	}
	resp, err := a.get(ctx, u, etag, maxJWKSBytes, MediaTypeJSON, "application/jwk-set+json")
	if err != nil {
		return nil, err
	}
	if resp.notModified {
		return p.jwks, nil
	}
	set, err := parseJWKS(resp.body)
	if err != nil {
		return nil, err
	}
	p.jwks, p.jwksETag = set, resp.etag
	return set, nil
}

// commit publishes one provider's outcome, applying the drift policy.
func (a *Aggregator) commit(ctx context.Context, p *provider, cand *Snapshot, err error) (res ProviderResult) {
	id := p.trust.ID
	now := a.now.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	res = ProviderResult{ID: id, Err: err}
	defer func() { res.Snapshot, res.UntrustedText = p.accepted, p.untrusted }()
	if err != nil {
		p.lastErr = err
		var fe *FetchError
		if (errors.Is(err, ErrSignature) || errors.Is(err, ErrUnknownKey)) && p.accepted.Signed() && errors.As(err, &fe) {
			// Keep the cause (ErrSignature / ErrUnknownKey) and add ErrQuarantined.
			qe := &FetchError{Provider: id, Op: fe.Op, Err: fmt.Errorf("%w: %w", ErrQuarantined, fe.Err)}
			p.quarantined, p.pending, p.lastErr = true, nil, qe
			p.drift = &Drift{Provider: id, SignatureFailure: fe.Err}
			res.Status, res.Drift, res.Err = StatusQuarantined, p.drift, qe
			a.log.WarnContext(ctx, "discovery: catalog quarantined", "provider", id, "reason", "signature failure", "err", err)
			return res
		}
		res.Status = StatusFailed
		a.log.WarnContext(ctx, "discovery: refresh failed", "provider", id, "err", err, "serving_stale", p.accepted != nil)
		return res
	}
	drift := Diff(p.accepted, cand)
	res.Drift = drift
	if p.accepted != nil {
		if reasons := a.policy.Reasons(drift); len(reasons) > 0 {
			p.quarantined, p.pending, p.drift = true, cand, drift
			p.lastErr = &FetchError{Provider: id, Op: OpDrift, Err: fmt.Errorf("%w: %s", ErrQuarantined, strings.Join(reasons, "; "))}
			res.Status, res.Err = StatusQuarantined, p.lastErr
			a.log.WarnContext(ctx, "discovery: catalog quarantined", "provider", id, "reasons", reasons)
			return res
		}
	}
	res.Status = StatusUpdated
	// Unchanged means identical documents, whether the provider answered
	// 304, sent the same ETag, or sent no ETag at all.
	if prev := p.accepted; prev != nil && drift.Empty() && sameDocuments(prev, cand) {
		res.Status = StatusUnchanged
	}
	p.accepted, p.pending, p.drift, p.quarantined = cand, nil, nil, false
	p.fetchedAt, p.lastErr = now, nil
	if p.textBase == nil {
		p.textBase = cand // first contact: nothing to compare with
	}
	p.untrusted = diffTexts(p.textBase, p.accepted, true)
	if len(p.untrusted) > 0 {
		a.log.WarnContext(ctx, "discovery: catalog text changed; untrusted until accepted", "provider", id, "changes", len(p.untrusted))
	}
	return res
}

// Accept records the operator's approval of a provider's pending changes.
// It lifts the quarantine, if any: the held-back catalog becomes the
// accepted one (when the quarantine came from a signature failure there is
// nothing to promote; the flag is cleared and the next Refresh decides
// again). And it accepts the agent-readable texts now served, which stop
// being reported as UntrustedText. It returns ErrUnknownProvider, or
// ErrNotQuarantined when there is nothing to accept.
func (a *Aggregator) Accept(ctx context.Context, providerID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.byID[providerID]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownProvider, providerID)
	}
	if !p.quarantined && len(p.untrusted) == 0 {
		return fmt.Errorf("%w: %q", ErrNotQuarantined, providerID)
	}
	if p.pending != nil {
		p.accepted = p.pending
		p.fetchedAt = a.now.Now()
	}
	if p.quarantined {
		p.pending, p.drift, p.quarantined, p.lastErr = nil, nil, false, nil
	}
	p.textBase, p.untrusted = p.accepted, nil
	a.log.InfoContext(ctx, "discovery: quarantine lifted by operator", "provider", providerID)
	return nil
}

// ProviderCatalog is the aggregator's view of one provider.
type ProviderCatalog struct {
	ID string
	// Snapshot is the accepted copy; nil until the first successful fetch.
	Snapshot *Snapshot
	// FetchedAt is when the accepted copy was last fetched or revalidated.
	FetchedAt time.Time
	// Stale is set when the last Refresh did not confirm the accepted copy
	// (failure or quarantine).
	Stale bool
	// LastError is the last Refresh's *FetchError, nil after a success.
	LastError error
	// Quarantined is set while a change awaits Accept; Drift says what.
	Quarantined bool
	Drift       *Drift
	// UntrustedText lists every agent-readable text of the accepted copy
	// (descriptions, llm_context, pricing and configuration schema texts,
	// provider names; see Drift.Text) that differs from what the operator
	// last accepted, including every text of a service added since. Treat
	// those texts as unreviewed until Accept: they are a prompt-injection
	// channel.
	UntrustedText []TextChange
	// Trust is the provider's entry in the trust list.
	Trust TrustedProvider
	// Keys is the key set catalogs are verified with: the pinned keys, or
	// the JWKS last fetched (nil if none was needed yet).
	Keys *jose.JSONWebKeySet
}

func (a *Aggregator) view(p *provider) ProviderCatalog {
	keys := p.trust.Keys
	if keys == nil {
		keys = p.jwks
	}
	return ProviderCatalog{
		ID: p.trust.ID, Snapshot: p.accepted, FetchedAt: p.fetchedAt,
		Stale: p.lastErr != nil, LastError: p.lastErr,
		Quarantined: p.quarantined, Drift: p.drift,
		UntrustedText: p.untrusted, Trust: p.trust, Keys: keys,
	}
}

// Metadata returns the metadata of a provider's accepted snapshot: its
// endpoints (provisioning, payment, revocation, authorization server),
// auth modes, payment methods, terms and signing inputs, as fetched and
// validated by Refresh. It returns ErrUnknownProvider or ErrNoCatalog.
func (a *Aggregator) Metadata(providerID string) (*catalogschema.ProviderMetadata, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	p, ok := a.byID[providerID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProvider, providerID)
	}
	if p.accepted == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoCatalog, providerID)
	}
	return p.accepted.Metadata, nil
}

// sameDocuments reports whether two snapshots hold identical documents.
func sameDocuments(a, b *Snapshot) bool {
	if !sameSignature(a.Signature, b.Signature) {
		return false
	}
	return sameJSON(a.Metadata, b.Metadata) && sameJSON(a.Catalog, b.Catalog)
}

func sameSignature(a, b *SignatureInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sameJSON compares two documents by their encoding (a parsed document
// round-trips), short-cutting the common revalidated case of one pointer.
func sameJSON[T any](a, b *T) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// Catalogs returns every trusted provider's state, sorted by id.
func (a *Aggregator) Catalogs() []ProviderCatalog {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]ProviderCatalog, 0, len(a.providers))
	for _, p := range a.providers {
		out = append(out, a.view(p))
	}
	return out
}

// Provider returns one provider's state, or ErrUnknownProvider.
func (a *Aggregator) Provider(id string) (ProviderCatalog, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	p, ok := a.byID[id]
	if !ok {
		return ProviderCatalog{}, fmt.Errorf("%w: %q", ErrUnknownProvider, id)
	}
	return a.view(p), nil
}
