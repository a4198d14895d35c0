package catalogschema

import "fmt"

// ParseRef parses a service ref "provider_id/service_id" strictly (§2.5):
// exactly one '/', both parts valid identifiers, no spaces, no upper case.
// The error is a *RefError naming what is wrong.
func ParseRef(s string) (Ref, error) {
	fail := func(format string, a ...any) (Ref, error) {
		in := s
		if len(in) > 200 {
			in = in[:200]
		}
		return Ref{}, &RefError{Input: in, Reason: fmt.Sprintf(format, a...)}
	}
	if s == "" {
		return fail("empty")
	}
	slash := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			if slash >= 0 {
				return fail("more than one '/'")
			}
			slash = i
		}
	}
	if slash < 0 {
		return fail("no '/' between provider id and service id")
	}
	p, svc := s[:slash], s[slash+1:]
	if p == "" {
		return fail("empty provider id")
	}
	if svc == "" {
		return fail("empty service id")
	}
	if msg := checkProviderID(p); msg != "" {
		return fail("provider id %s", msg)
	}
	if msg := checkServiceID(svc); msg != "" {
		return fail("service id %s", msg)
	}
	return Ref{Provider: p, Service: svc}, nil
}

// String returns "provider/service".
func (r Ref) String() string { return r.Provider + "/" + r.Service }

// MarshalText encodes r as its string form; it fails for an invalid ref so
// that an invalid ref never reaches the wire.
func (r Ref) MarshalText() ([]byte, error) {
	if _, err := ParseRef(r.String()); err != nil {
		return nil, err
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses a ref with ParseRef.
func (r *Ref) UnmarshalText(b []byte) error {
	v, err := ParseRef(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ValidProviderID reports whether s is a provider id (§2.5).
func ValidProviderID(s string) bool { return checkProviderID(s) == "" }

// ValidServiceID reports whether s is a service id (§2.5).
func ValidServiceID(s string) bool { return checkServiceID(s) == "" }

// checkProviderID returns "" if s is a valid provider id, else the reason.
func checkProviderID(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > 64 {
		return fmt.Sprintf("is %d characters long, more than 64", len(s))
	}
	if !isLowerAlnum(s[0]) {
		return fmt.Sprintf("must start with a lowercase letter or digit, not %q", s[:1])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && c != '-' {
			return fmt.Sprintf("has invalid character %q at %d (allowed: a-z 0-9 -)", s[i:i+1], i)
		}
	}
	return ""
}

// checkServiceID returns "" if s is a valid service id, else the reason.
func checkServiceID(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > 128 {
		return fmt.Sprintf("is %d characters long, more than 128", len(s))
	}
	if !isLowerAlnum(s[0]) {
		return fmt.Sprintf("must start with a lowercase letter or digit, not %q", s[:1])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && c != '-' && c != '.' && c != '_' && c != ':' {
			return fmt.Sprintf("has invalid character %q at %d (allowed: a-z 0-9 . _ : -)", s[i:i+1], i)
		}
	}
	return ""
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
