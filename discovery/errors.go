package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/safehttp"
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
	// ErrNotQuarantined: Accept was called for a provider with nothing to
	// accept: not quarantined and no untrusted text.
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

// Code classifies the failure for a caller that reports it; see ErrorCode.
func (e *FetchError) Code() string { return ErrorCode(e) }

// Fetch failure codes of FetchError.Code and ProviderResult.Code. A
// document a provider served that catalogschema rejected carries that
// package's protocol code instead (catalogschema.CodeInvalidDocument,
// CodeMalformedDocument, CodeDocumentTooLarge, …).
const (
	CodeQuarantined      = "quarantined"       // ErrQuarantined (checked first)
	CodeTimeout          = "timeout"           // context.DeadlineExceeded
	CodeCanceled         = "canceled"          // context.Canceled
	CodeRedirectRefused  = "redirect_refused"  // ErrRedirect
	CodeInsecureURL      = "insecure_url"      // not https, nor http on loopback
	CodeTooLarge         = "too_large"         // a body over its size limit
	CodeContentType      = "content_type"      // ErrContentType
	CodeHTTPStatus       = "http_status"       // ErrStatus
	CodeSignatureInvalid = "signature_invalid" // ErrSignature
	CodeUnknownKey       = "unknown_key"       // ErrUnknownKey
	CodeProviderMismatch = "provider_mismatch" // ErrProviderMismatch
	CodeNetwork          = "network"           // connection, DNS or TLS failure
	CodeFetchFailed      = "fetch_failed"      // anything else
)

// ErrorCode returns the code of a fetch failure ("" for nil): one of the
// Code constants above, or a catalogschema protocol code.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var pe catalogschema.ProtocolError
	var ne net.Error
	switch {
	case errors.Is(err, ErrQuarantined):
		return CodeQuarantined
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, ErrRedirect):
		return CodeRedirectRefused
	case errors.Is(err, safehttp.ErrInsecureURL):
		return CodeInsecureURL
	case errors.Is(err, safehttp.ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrContentType):
		return CodeContentType
	case errors.Is(err, ErrStatus):
		return CodeHTTPStatus
	case errors.Is(err, ErrSignature):
		return CodeSignatureInvalid
	case errors.Is(err, ErrUnknownKey):
		return CodeUnknownKey
	case errors.Is(err, ErrProviderMismatch):
		return CodeProviderMismatch
	case errors.As(err, &pe):
		return pe.Code()
	case errors.As(err, &ne):
		if ne.Timeout() {
			return CodeTimeout
		}
		return CodeNetwork
	}
	return CodeFetchFailed
}
