package discovery

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every failure the Aggregator reports for a provider is a
// *FetchError whose Err wraps one of these (or an error of internal/safehttp,
// catalogschema or context), so callers branch with errors.Is / errors.As.
var (
	// ErrContentType: the response carried a media type the document does not allow.
	ErrContentType = errors.New("discovery: unexpected content type")
	// ErrStatus: the provider answered with an HTTP status other than 200 (or 304 on revalidation).
	ErrStatus = errors.New("discovery: unexpected HTTP status")
	// ErrSignature: the catalog JWS is malformed, uses a forbidden algorithm or
	// header, carries the wrong typ, fails verification, or is missing where a
	// signature is required.
	ErrSignature = errors.New("discovery: catalog signature invalid")
	// ErrUnknownKey: the JWS kid is not in the provider's trusted key set.
	ErrUnknownKey = errors.New("discovery: signing key not trusted")
	// ErrProviderMismatch: a document names a provider id other than the trusted one.
	ErrProviderMismatch = errors.New("discovery: provider id mismatch")
	// ErrQuarantined: the new catalog was held back by the drift policy; the
	// previous accepted copy is still served until Accept is called.
	ErrQuarantined = errors.New("discovery: catalog quarantined")
	// ErrRedirect: the server redirected to another origin.
	ErrRedirect = errors.New("discovery: redirect to another origin refused")
	// ErrUnknownProvider: no trusted provider has this id.
	ErrUnknownProvider = errors.New("discovery: unknown provider")
	// ErrUnknownService: the provider's accepted catalog has no such service.
	ErrUnknownService = errors.New("discovery: unknown service")
	// ErrNotQuarantined: Accept was called for a provider that is not quarantined.
	ErrNotQuarantined = errors.New("discovery: provider not quarantined")
	// ErrNoCatalog: the provider has no accepted catalog yet.
	ErrNoCatalog = errors.New("discovery: no catalog fetched yet")
)

// Problem codes the Handler answers with (PROTOCOL §3.4.1).
const (
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeUnsupportedVersion = "unsupported_version"
)

// Fetch operations named in FetchError.Op.
const (
	OpMetadata = "metadata"
	OpJWKS     = "jwks"
	OpCatalog  = "catalog"
	OpDrift    = "drift"
)

// FetchError reports why one provider's documents were not accepted during a
// Refresh. It never affects other providers.
type FetchError struct {
	Provider string // trusted provider id
	Op       string // OpMetadata, OpJWKS, OpCatalog or OpDrift
	Err      error
}

// Error names the provider and the step of the fetch that failed.
func (e *FetchError) Error() string {
	return fmt.Sprintf("discovery: provider %q: %s: %v", e.Provider, e.Op, e.Err)
}

// Unwrap returns the cause, so errors.Is sees safehttp and schema errors.
func (e *FetchError) Unwrap() error { return e.Err }
