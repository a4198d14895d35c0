// Package catalogschema defines the Discovery documents of the agent
// provisioning protocol — provider metadata (§3.1) and catalogs (§3.2,
// §3.3) — as Go types, embedded JSON Schemas (draft 2020-12) and bounded,
// strict parsers.
//
// A catalog service entry is a superset of Stripe Projects'
// provider_service_detail, so a Stripe capture imports losslessly
// (ImportStripeProjects), and it adds machine-readable prices (Price) so a
// budget can be checked before anything is provisioned
// (Service.MaxChargeWithin, Service.WorstCaseMonthly).
//
// # Roles
//
// A provider builds a ProviderMetadata and a Catalog in Go, checks them
// with Validate and serves them (package discovery does the HTTP). An
// orchestrator parses what it fetched with ParseMetadata and ParseCatalog,
// resolves user input with ParseRef, and checks a provisioning
// configuration with Service.ValidateConfig before sending it.
//
// # Parsing untrusted input
//
// Parsers check, in order: size, nesting depth and string length (a byte
// scan before decoding, which also rejects duplicate member names), JSON
// syntax, the service count, the JSON Schema, then semantic rules the
// schema cannot express (identifiers per §2.5, ISO 4217 currencies, unique
// service ids, consistent prices, https-or-loopback URLs for everything
// that is fetched, no remote $ref in configuration schemas). Limits has
// safe defaults, and no number may have a decimal exponent above 400.
// Nothing is fetched, ever: configuration schemas compile with a loader
// that refuses every URL.
//
// ParseCatalog does all of this in one pass for a valid document: a
// decoder written for the catalog schema enforces the limits, rejects
// duplicates and checks every schema keyword while it fills the Go types.
// A document it does not accept in full is read again by the JSON Schema
// validator, so the embedded schema stays the contract and every error
// (its type, pointers and messages) comes from it. Member names are
// case-sensitive: "Kind" is an unknown member, not kind.
//
// # Errors
//
// Every error implements ProtocolError (a protocol code and an HTTP
// status) and matches one sentinel with errors.Is:
//
//   - *ValidationError (ErrInvalid, or ErrInvalidConfig from ValidateConfig)
//     lists every Violation with an RFC 6901 pointer;
//   - *LimitError (ErrTooLarge, ErrTooDeep, ErrTooManyServices,
//     ErrStringTooLong) names the limit, its maximum and the value seen;
//   - *SyntaxError (ErrSyntax) wraps the decoder error and its offset;
//   - *RefError (ErrInvalidRef) says what is wrong with a service ref.
//
// # Concurrency
//
// All functions are safe for concurrent use. Parsed documents are plain
// values: safe for concurrent reads, not for concurrent writes. A Service
// caches its compiled configuration schema, so it must not be copied, nor
// its ConfigurationSchema changed, after the first ValidateConfig; that
// method is itself safe for concurrent use. The embedded schemas are
// compiled once per process on first use and are immutable.
//
// # Assembly
//
// A provider writes its ProviderMetadata with its identity (ProviderID,
// Name, TermsOfService, AuthModes) and lets agentprov.NewProvider fill the
// endpoint URLs; the orchestrator never builds these types, it parses them
// (package discovery does so while aggregating).
package catalogschema
