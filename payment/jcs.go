package payment

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/agentprov/agentprov/internal/paywire"
)

// CanonicalJSON returns the RFC 8785 (JSON Canonicalization Scheme) form of
// one JSON value: no insignificant whitespace, object members sorted by the
// UTF-16 code units of their names, strings with the minimal escapes, and
// numbers parsed as IEEE 754 doubles and written as ECMAScript's
// Number.prototype.toString writes them ("1.0", "1E0" and "1" are all
// "1"; "-0" is "0"). As RFC 8785 requires (I-JSON, RFC 7493), duplicate
// member names and numbers outside the double range are rejected, and so
// is nesting deeper than 64 levels. An integer beyond ±2^53 loses
// precision exactly as it would in any JCS implementation.
//
// CanonicalJSON is the single canonicalizer of the package: idempotency
// fingerprints and the 402 challenge's request and opaque parameters use
// it. It is safe for concurrent use.
func CanonicalJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := paywire.JCSDecode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("canonical json: trailing data")
	}
	return paywire.JCSEncode(v)
}
