// Package discovery implements the Discovery component of the agent
// provisioning protocol (PROTOCOL §3): how a provider publishes its metadata,
// catalog and signing keys, and how an orchestrator aggregates many
// providers' catalogs safely.
//
// # Roles
//
// Provider side: [NewHandler] returns an [http.Handler] serving the provider
// metadata at /.well-known/agent-provisioning, the catalog at the path of the
// metadata's catalog_uri (as JSON, or as a compact JWS with typ
// "agentprov-catalog+jws" when a signing key is configured) and the public
// JWKS. Responses carry strong ETags and Cache-Control; the catalog can be
// replaced at runtime with [Handler.SetCatalog], which signs once per version.
//
// Orchestrator side: [NewAggregator] takes the list of providers the
// orchestrator trusts. [Aggregator.Refresh] fetches them all concurrently,
// each under its own deadline, over HTTPS (or http on loopback) only, with
// bounded bodies, strict media types, schema validation (package
// catalogschema) and JWS verification against pinned or trusted keys. It
// revalidates with If-None-Match, keeps serving the last good copy (marked
// stale) when a provider fails, and computes a [Drift] against the accepted
// copy. A price rise, or a rise of a price's upper bound (max_amount), above
// the [DriftPolicy] threshold, a signed → unsigned
// downgrade, or a signature failure of a previously signed provider
// quarantines the new catalog: the previous one stays in service until an
// operator calls [Aggregator.Accept]. Changes to the human-readable
// pricing text are reported in the drift but never quarantine. Queries: [Aggregator.Catalogs],
// [Aggregator.Search] and [Aggregator.Lookup] (by service ref), and
// [Aggregator.Metadata] for a provider's endpoints; every
// [ProviderResult] also carries the [Snapshot] served after the refresh.
//
// A refresh reports each provider as updated, unchanged (identical
// documents, whether or not the provider uses ETags), failed or
// quarantined, with a stable [ProviderResult.Code] ([ErrorCode]) that a
// caller can print or branch on.
//
// [FetchMetadata] is the same safe fetch for a provider that is not in the
// trust list yet (an "init --provider URL" command).
//
// # Untrusted text
//
// Catalog text (description, llm_context, names, categories, pricing and
// configuration-schema prose) is untrusted provider data: this package
// exposes it as-is and never interprets it. Its changes are drift
// ([Drift.Text], [Drift.PricingText]) and, until the operator calls
// Accept, every text that differs from the last accepted one is listed in
// UntrustedText on [ProviderCatalog], [ProviderResult] and [Entry], so an
// orchestrator can mark it unreviewed before an agent reads it.
//
// # Stores
//
// The Aggregator keeps its cache in memory. A process that lives for one
// command saves [Aggregator.State] (plain JSON) after the command and calls
// [Aggregator.Restore] before the next, so quarantine, drift, accepted texts,
// fetched keys and stale copies survive between processes. Restore
// validates every document again and changes nothing on error.
//
// # Errors
//
// Every per-provider failure in a [RefreshReport] is a [*FetchError] naming
// the provider and the operation, with a Code method. Its chain matches, with errors.Is, one of
// this package's sentinels ([ErrContentType], [ErrStatus], [ErrSignature],
// [ErrUnknownKey], [ErrProviderMismatch], [ErrQuarantined], [ErrRedirect]),
// safehttp's too-large and insecure-URL errors, context.DeadlineExceeded, or
// catalogschema's errors (errors.As to *catalogschema.ValidationError or
// *catalogschema.LimitError). The Handler answers errors with RFC 9457
// problem documents carrying a "code": not_found, method_not_allowed,
// unsupported_version.
//
// # Concurrency
//
// Handler and Aggregator are safe for concurrent use, as are SignCatalog,
// VerifyCatalog and Diff. Snapshots and the catalogs and services they point
// to are shared and immutable: never modify them. Every other exported type
// (reports, drifts, entries, options, filters) is a plain value: safe for
// concurrent reads, and the package never modifies one after returning it.
// Options and trust entries (including pinned key sets) are read by the
// constructors and must not be modified afterwards.
//
// # Assembly
//
// A provider usually gets its Handler from agentprov.NewProvider, which fills
// the metadata's endpoint URLs from one base URL and mounts it next to the
// provisioning endpoints; alone it is
//
//	h, _ := discovery.NewHandler(meta, catalog, nil)
//	mux.Handle("GET /.well-known/agent-provisioning", h)
//	mux.Handle("GET /catalog", h) // the path of meta.CatalogURI
//	mux.Handle("GET /.well-known/jwks.json", h)
//
// An orchestrator trusts base URLs and searches what it fetched:
//
//	agg, _ := discovery.NewAggregator([]discovery.TrustedProvider{{ID: "acme", BaseURL: "https://acme.example"}}, nil)
//	agg.Refresh(ctx)
//	entries := agg.Search(discovery.Filter{Category: "dns"})
package discovery
