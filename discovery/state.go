package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/catalogschema"
)

// StateVersion is the version of the State encoding this package writes
// and the only one Restore reads.
const StateVersion = 1

// State is everything an Aggregator has learnt about its providers: the
// accepted snapshots (served stale when a provider is down), catalogs held
// in quarantine, the texts the operator accepted, the fetched JWKS and the
// validators (ETags) used to revalidate. A process that lives for one
// command (a CLI) saves it after the command and restores it before the
// next, so quarantine, untrusted-text marks, drift and stale-if-error carry
// over: without it every command is a first contact and a ×100 price
// change would be accepted as the first price seen.
//
// State is plain JSON-encodable data; store it where the caller keeps its
// other state, under the caller's own locking (a file written atomically,
// a database row updated with compare-and-set). It holds no secrets but is
// trust-relevant: whoever can write it can make the Aggregator accept a
// catalog, so keep it as private as the rest of the orchestrator's state
// (mode 0600). Restore validates every document in it again.
type State struct {
	Version   int             `json:"version"`
	Providers []ProviderState `json:"providers"`
}

// ProviderState is one provider's part of a State.
type ProviderState struct {
	ID string `json:"id"`
	// BaseURL is the trust entry's BaseURL when the state was taken;
	// Restore ignores a provider whose BaseURL has changed since.
	BaseURL string `json:"base_url"`
	// Accepted is the snapshot served; Pending the one in quarantine.
	Accepted *SnapshotState `json:"accepted,omitempty"`
	Pending  *SnapshotState `json:"pending,omitempty"`
	// TextBase is the snapshot whose agent-readable texts the operator
	// accepted (see ProviderCatalog.UntrustedText).
	TextBase    *SnapshotState `json:"text_base,omitempty"`
	Quarantined bool           `json:"quarantined,omitempty"`
	// SignatureFailure is the reason of a quarantine caused by a failed
	// signature (there is no Pending then).
	SignatureFailure string    `json:"signature_failure,omitempty"`
	FetchedAt        time.Time `json:"fetched_at,omitzero"`
	// Revalidate names the snapshot ("accepted" or "pending") the ETags
	// below validate; empty means the next Refresh fetches in full.
	Revalidate   string `json:"revalidate,omitempty"`
	MetadataETag string `json:"metadata_etag,omitempty"`
	CatalogETag  string `json:"catalog_etag,omitempty"`
	// JWKS is the last key set fetched from JWKSURL, with its ETag.
	JWKSURL  string          `json:"jwks_url,omitempty"`
	JWKS     json.RawMessage `json:"jwks,omitempty"`
	JWKSETag string          `json:"jwks_etag,omitempty"`
}

// SnapshotState is a Snapshot as JSON: the metadata and catalog
// documents, how the catalog was signed, and its ETag.
type SnapshotState struct {
	Metadata  json.RawMessage `json:"metadata"`
	Catalog   json.RawMessage `json:"catalog"`
	Signature *SignatureInfo  `json:"signature,omitempty"`
	ETag      string          `json:"etag,omitempty"`
}

// ErrState reports a State that Restore refuses: an unknown version or a
// document that no longer validates.
var ErrState = errors.New("discovery: invalid aggregator state")

// State returns the Aggregator's cache for Restore in another process. It
// waits for a running Refresh to finish, so the result is consistent.
func (a *Aggregator) State() (*State, error) {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := &State{Version: StateVersion, Providers: make([]ProviderState, 0, len(a.providers))}
	for _, p := range a.providers {
		ps := ProviderState{ID: p.trust.ID, BaseURL: p.trust.BaseURL, Quarantined: p.quarantined, FetchedAt: p.fetchedAt}
		var err error
		if ps.Accepted, err = encodeSnapshot(p.accepted); err == nil {
			if ps.Pending, err = encodeSnapshot(p.pending); err == nil {
				ps.TextBase, err = encodeSnapshot(p.textBase)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("discovery: state of %q: %w", p.trust.ID, err)
		}
		if p.quarantined && p.pending == nil && p.drift != nil && p.drift.SignatureFailure != nil {
			ps.SignatureFailure = p.drift.SignatureFailure.Error()
		}
		switch {
		case p.pending != nil && p.cat == p.pending.Catalog && p.meta == p.pending.Metadata:
			ps.Revalidate = "pending"
		case p.accepted != nil && p.cat == p.accepted.Catalog && p.meta == p.accepted.Metadata:
			ps.Revalidate = "accepted"
		}
		if ps.Revalidate != "" {
			ps.MetadataETag, ps.CatalogETag = p.metaETag, p.catETag
		}
		if p.jwks != nil {
			if ps.JWKS, err = json.Marshal(p.jwks); err != nil {
				return nil, fmt.Errorf("discovery: state of %q: jwks: %w", p.trust.ID, err)
			}
			ps.JWKSURL, ps.JWKSETag = p.jwksURL, p.jwksETag
		}
		st.Providers = append(st.Providers, ps)
	}
	return st, nil
}

func encodeSnapshot(s *Snapshot) (*SnapshotState, error) {
	if s == nil {
		return nil, nil
	}
	m, err := json.Marshal(s.Metadata)
	if err != nil {
		return nil, err
	}
	c, err := json.Marshal(s.Catalog)
	if err != nil {
		return nil, err
	}
	return &SnapshotState{Metadata: m, Catalog: c, Signature: s.Signature, ETag: s.ETag}, nil
}

// Restore replaces the Aggregator's cache with st, typically right after
// NewAggregator and before the first Refresh. Every document is parsed and
// validated again and must name its provider. Providers of st that are not
// in the trust list, or whose BaseURL changed, are ignored (they start
// from first contact); trusted providers absent from st are reset. On
// error nothing is changed; the error matches ErrState.
//
// Drift and quarantine reasons are recomputed under the current
// DriftPolicy. Restored providers are not stale until a Refresh fails;
// FetchedAt says how old their copy is.
func (a *Aggregator) Restore(st *State) error {
	if st == nil || st.Version != StateVersion {
		v := 0
		if st != nil {
			v = st.Version
		}
		return fmt.Errorf("%w: version %d, want %d", ErrState, v, StateVersion)
	}
	type restored struct {
		p                       *provider
		accepted, pending, base *Snapshot
		ps                      ProviderState
		jwks                    *jose.JSONWebKeySet
	}
	var rs []restored
	seen := map[string]bool{}
	for i, ps := range st.Providers {
		p, ok := a.byID[ps.ID]
		if !ok || ps.BaseURL != p.trust.BaseURL {
			continue
		}
		if seen[ps.ID] {
			return fmt.Errorf("%w: providers[%d]: duplicate provider %q", ErrState, i, ps.ID)
		}
		seen[ps.ID] = true
		r := restored{p: p, ps: ps}
		var err error
		for _, x := range []struct {
			name string
			in   *SnapshotState
			out  **Snapshot
		}{{"accepted", ps.Accepted, &r.accepted}, {"pending", ps.Pending, &r.pending}, {"text_base", ps.TextBase, &r.base}} {
			if *x.out, err = a.decodeSnapshot(ps.ID, x.in); err != nil {
				return fmt.Errorf("%w: providers[%d] (%s): %s: %w", ErrState, i, ps.ID, x.name, err)
			}
		}
		if r.pending != nil && r.accepted == nil || ps.Quarantined && r.accepted == nil {
			return fmt.Errorf("%w: providers[%d] (%s): quarantine without an accepted snapshot", ErrState, i, ps.ID)
		}
		if len(ps.JWKS) > 0 {
			if r.jwks, err = parseJWKS(ps.JWKS); err != nil {
				return fmt.Errorf("%w: providers[%d] (%s): %w", ErrState, i, ps.ID, err)
			}
		}
		rs = append(rs, r)
	}

	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.providers {
		p.metaETag, p.meta, p.catURL, p.catETag, p.cat, p.sig = "", nil, "", "", nil, nil
		p.jwksURL, p.jwksETag, p.jwks = "", "", nil
		p.accepted, p.pending, p.textBase, p.untrusted = nil, nil, nil, nil
		p.drift, p.quarantined, p.fetchedAt, p.lastErr = nil, false, time.Time{}, nil
	}
	for _, r := range rs {
		p, ps := r.p, r.ps
		p.accepted, p.pending, p.textBase, p.fetchedAt = r.accepted, r.pending, r.base, ps.FetchedAt
		if p.textBase == nil {
			p.textBase = p.accepted
		}
		if p.accepted != nil {
			p.untrusted = diffTexts(p.textBase, p.accepted, true)
		}
		switch {
		case r.pending != nil:
			p.quarantined, p.drift = true, Diff(p.accepted, p.pending)
			reasons := a.policy.Reasons(p.drift)
			if len(reasons) == 0 {
				reasons = []string{"held back before this process started"}
			}
			p.lastErr = &FetchError{Provider: ps.ID, Op: OpDrift, Err: fmt.Errorf("%w: %s", ErrQuarantined, strings.Join(reasons, "; "))}
		case ps.Quarantined:
			cause := fmt.Errorf("%w: %s", ErrSignature, ps.SignatureFailure)
			p.quarantined = true
			p.drift = &Drift{Provider: ps.ID, SignatureFailure: cause}
			p.lastErr = &FetchError{Provider: ps.ID, Op: OpCatalog, Err: fmt.Errorf("%w: %w", ErrQuarantined, cause)}
		}
		var from *Snapshot
		switch ps.Revalidate {
		case "pending":
			from = p.pending
		case "accepted":
			from = p.accepted
		}
		if from != nil {
			p.meta, p.metaETag = from.Metadata, ps.MetadataETag
			p.catURL, p.cat, p.sig, p.catETag = from.Metadata.CatalogURI, from.Catalog, from.Signature, ps.CatalogETag
		}
		if r.jwks != nil {
			p.jwksURL, p.jwks, p.jwksETag = ps.JWKSURL, r.jwks, ps.JWKSETag
		}
	}
	return nil
}

// decodeSnapshot parses and validates a stored snapshot of provider id.
func (a *Aggregator) decodeSnapshot(id string, in *SnapshotState) (*Snapshot, error) {
	if in == nil {
		return nil, nil
	}
	meta, err := catalogschema.ParseMetadata(in.Metadata, a.limits)
	if err != nil {
		return nil, err
	}
	cat, err := catalogschema.ParseCatalog(in.Catalog, a.limits)
	if err != nil {
		return nil, err
	}
	if meta.ProviderID != id || cat.ProviderID != id {
		return nil, fmt.Errorf("%w: documents name %q and %q", ErrProviderMismatch, meta.ProviderID, cat.ProviderID)
	}
	return &Snapshot{ProviderID: id, Metadata: meta, Catalog: cat, Signature: in.Signature, ETag: in.ETag}, nil
}
