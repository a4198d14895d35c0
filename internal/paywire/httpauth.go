package paywire

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// QuoteParam renders v as an RFC 9110 quoted-string. Control characters
// other than HTAB cannot be carried and are refused.
func QuoteParam(name, v string) (string, error) {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c != '\t' && (c < 0x20 || c == 0x7f):
			return "", fmt.Errorf("parameter %s: control character 0x%02x cannot be sent in a header", name, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// HdrB64 is base64url without padding, the draft's encoding for every JSON
// value it puts in a header.
var HdrB64 = base64.RawURLEncoding

// HdrDecodeB64 accepts base64url with or without trailing padding: the draft
// sends none, but being lenient on padding costs nothing.
func HdrDecodeB64(s string) ([]byte, error) {
	return HdrB64.DecodeString(strings.TrimRight(s, "="))
}

// HdrIsCurrency reports whether c is three upper-case ASCII letters, the
// shape of an ISO 4217 code in a challenge request.
func HdrIsCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}
