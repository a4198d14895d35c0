// Package jwstyp compares JOSE "typ" header values the way RFC 7515
// §4.1.9 says they are compared, so every package that verifies a JWS
// accepts and refuses the same spellings.
//
// # Concurrency
//
// Matches is a pure function, safe for concurrent use.
package jwstyp

const prefix = "application/"

// Matches reports whether got, a received typ header value, names the
// media type want. typ is a media type: it is compared case
// insensitively, and the "application/" prefix, which senders SHOULD
// omit, may be present. Only ASCII letters are folded (media type names
// are ASCII), so no Unicode look-alike such as U+212A KELVIN SIGN can
// stand in for a letter of want. An empty want never matches.
func Matches(got, want string) bool {
	if want == "" {
		return false
	}
	if len(got) > len(prefix) && asciiEqualFold(got[:len(prefix)], prefix) {
		got = got[len(prefix):]
	}
	// want is spelled by this module; tolerate it carrying the prefix too.
	if len(want) > len(prefix) && asciiEqualFold(want[:len(prefix)], prefix) {
		want = want[len(prefix):]
	}
	return asciiEqualFold(got, want)
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
