package catalogschema

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Protocol error codes (§3.3.5). Servers put them in the problem document's
// "code" member; clients branch on them.
const (
	CodeInvalidDocument   = "invalid_document"
	CodeMalformedDocument = "malformed_document"
	CodeDocumentTooLarge  = "document_too_large"
	CodeDocumentTooDeep   = "document_too_deep"
	CodeTooManyServices   = "too_many_services"
	CodeStringTooLong     = "string_too_long"
	CodeInvalidRef        = "invalid_ref"
	CodeInvalidConfig     = "invalid_configuration"
)

// Sentinels; every error returned by this package matches at most one of
// them with errors.Is.
var (
	// ErrInvalid matches every *ValidationError.
	ErrInvalid = errors.New("catalogschema: invalid document")
	// ErrSyntax reports malformed JSON.
	ErrSyntax = errors.New("catalogschema: malformed JSON")
	// ErrTooLarge, ErrTooDeep, ErrTooManyServices and ErrStringTooLong
	// match a *LimitError of the corresponding limit.
	ErrTooLarge        = errors.New("catalogschema: document too large")
	ErrTooDeep         = errors.New("catalogschema: document nested too deeply")
	ErrTooManyServices = errors.New("catalogschema: too many services")
	ErrStringTooLong   = errors.New("catalogschema: string too long")
	// ErrInvalidRef matches every *RefError.
	ErrInvalidRef = errors.New("catalogschema: invalid service ref")
	// ErrInvalidConfig matches the *ValidationError of ValidateConfig and a
	// configuration schema that does not compile.
	ErrInvalidConfig = errors.New("catalogschema: invalid service configuration")
	// ErrBadConfigSchema reports a configuration_schema that does not
	// compile. A remote reference also matches ErrRemoteRef.
	ErrBadConfigSchema = errors.New("catalogschema: configuration_schema does not compile")
	// ErrRemoteRef reports a schema $ref to a location outside the document;
	// the library never fetches one.
	ErrRemoteRef = errors.New("catalogschema: remote $ref refused")
	// ErrCurrency reports a price computation asked in a currency the
	// service has no price in, or with prices in several currencies.
	ErrCurrency = errors.New("catalogschema: currency mismatch")
	// ErrOverflow reports a price computation exceeding int64.
	ErrOverflow = errors.New("catalogschema: amount overflows int64")
)

// Violation is one reason a document is invalid.
type Violation struct {
	// Pointer is an RFC 6901 JSON Pointer to the offending value ("" is
	// the whole document).
	Pointer string `json:"pointer"`
	// Message says what is wrong, for humans.
	Message string `json:"message"`
}

// String is the quoted JSON pointer followed by the message.
func (v Violation) String() string {
	return fmt.Sprintf("%q: %s", v.Pointer, v.Message)
}

// ValidationError lists every violation found in a document, sorted by
// pointer. It matches ErrInvalid, or ErrInvalidConfig when Document is
// "configuration" (from ValidateConfig).
type ValidationError struct {
	// Document names what was validated: "metadata", "catalog",
	// "configuration".
	Document   string
	Violations []Violation
}

// Error lists the first few violations and counts the rest, keeping log
// lines short for documents with many problems.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "catalogschema: invalid %s: ", e.Document)
	const show = 5
	for i, v := range e.Violations {
		if i == show {
			fmt.Fprintf(&b, "; and %d more", len(e.Violations)-show)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.String())
	}
	return b.String()
}

// Is reports whether target is ErrInvalid (or ErrInvalidConfig for a
// configuration).
func (e *ValidationError) Is(target error) bool {
	if e.Document == docConfig {
		return target == ErrInvalidConfig
	}
	return target == ErrInvalid
}

// Code is the protocol error code.
func (e *ValidationError) Code() string {
	if e.Document == docConfig {
		return CodeInvalidConfig
	}
	return CodeInvalidDocument
}

// HTTPStatus is the status a server answers with for this error.
func (e *ValidationError) HTTPStatus() int { return http.StatusUnprocessableEntity }

// Pointers returns the pointers of all violations, in order.
func (e *ValidationError) Pointers() []string {
	out := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		out[i] = v.Pointer
	}
	return out
}

// Limit names of a LimitError.
const (
	LimitBytes     = "bytes"
	LimitDepth     = "depth"
	LimitServices  = "services"
	LimitStringLen = "string_length"
)

// LimitError reports input exceeding one of the Limits.
type LimitError struct {
	// Limit is one of LimitBytes, LimitDepth, LimitServices, LimitStringLen.
	Limit string
	Max   int64
	// Got is the observed value; for bytes and string length it may be a
	// lower bound because scanning stops early.
	Got int64
}

// Error names the limit, the size found and the maximum.
func (e *LimitError) Error() string {
	return fmt.Sprintf("catalogschema: %s limit exceeded: %d > %d", e.Limit, e.Got, e.Max)
}

// Is matches the sentinel of e.Limit.
func (e *LimitError) Is(target error) bool { return target == e.sentinel() }

func (e *LimitError) sentinel() error {
	switch e.Limit {
	case LimitBytes:
		return ErrTooLarge
	case LimitDepth:
		return ErrTooDeep
	case LimitServices:
		return ErrTooManyServices
	case LimitStringLen:
		return ErrStringTooLong
	}
	return nil
}

// Code is the protocol error code.
func (e *LimitError) Code() string {
	switch e.Limit {
	case LimitBytes:
		return CodeDocumentTooLarge
	case LimitDepth:
		return CodeDocumentTooDeep
	case LimitServices:
		return CodeTooManyServices
	default:
		return CodeStringTooLong
	}
}

// HTTPStatus is the status a server answers with for this error.
func (e *LimitError) HTTPStatus() int {
	if e.Limit == LimitBytes {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnprocessableEntity
}

// SyntaxError reports malformed JSON. It matches ErrSyntax and unwraps to
// the decoder's error.
type SyntaxError struct {
	// Offset is the byte offset at which the error was detected.
	Offset int64
	Err    error
}

// Error gives the byte offset of the malformed JSON.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("catalogschema: malformed JSON at offset %d: %v", e.Offset, e.Err)
}

// Unwrap returns the decoder error.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Is matches ErrSyntax.
func (e *SyntaxError) Is(target error) bool { return target == ErrSyntax }

// Code is the protocol error code.
func (e *SyntaxError) Code() string { return CodeMalformedDocument }

// HTTPStatus is the status a server answers with for this error.
func (e *SyntaxError) HTTPStatus() int { return http.StatusBadRequest }

// RefError reports a malformed service ref.
type RefError struct {
	// Input is the rejected string, truncated to 200 bytes.
	Input string
	// Reason says what is wrong.
	Reason string
}

// Error quotes the rejected input and says why it is not a ref.
func (e *RefError) Error() string {
	return fmt.Sprintf("catalogschema: invalid service ref %q: %s", e.Input, e.Reason)
}

// Is matches ErrInvalidRef.
func (e *RefError) Is(target error) bool { return target == ErrInvalidRef }

// Code is the protocol error code.
func (e *RefError) Code() string { return CodeInvalidRef }

// HTTPStatus is the status a server answers with for this error.
func (e *RefError) HTTPStatus() int { return http.StatusBadRequest }

// ProtocolError is implemented by every error type of this package, so a
// server can map any of them to a problem document.
type ProtocolError interface {
	error
	Code() string
	HTTPStatus() int
}

var (
	_ ProtocolError = (*ValidationError)(nil)
	_ ProtocolError = (*LimitError)(nil)
	_ ProtocolError = (*SyntaxError)(nil)
	_ ProtocolError = (*RefError)(nil)
)

const (
	docMetadata = "metadata"
	docCatalog  = "catalog"
	docConfig   = "configuration"
	docStripe   = "stripe projects catalog"
)
