// Package wireid checks the identifiers every wire document carries
// (PROTOCOL §2.5): project ids, provider ids, service ids and service refs.
// It is the one copy budget, authz and payment share; catalogschema keeps
// its own checks, which also say what is wrong, and a test holds the two to
// the same rules.
package wireid

import "strings"

// ProjectID reports whether s is a project id: 1–128 of A–Z a–z 0–9 . _ -.
func ProjectID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ProviderID reports whether s is a provider id: 1–64 of a–z 0–9 -, not
// starting with -.
func ProviderID(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ServiceID reports whether s is a service id: 1–128 of a–z 0–9 . _ : -,
// starting with a letter or digit.
func ServiceID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !(alnum || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// ServiceRef reports whether s is "provider/service".
func ServiceRef(s string) bool {
	p, svc, ok := strings.Cut(s, "/")
	return ok && ProviderID(p) && ServiceID(svc)
}
