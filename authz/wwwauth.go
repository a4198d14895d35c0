package authz

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentprov/agentprov/internal/oauthwire"
)

// ErrMalformedChallenge reports a WWW-Authenticate value that does not
// follow RFC 9110 §11.6.1.
var ErrMalformedChallenge = errors.New("authz: malformed WWW-Authenticate challenge")

// maxChallengeLen bounds the header bytes the parser looks at; real
// challenges are a few hundred bytes.
const maxChallengeLen = 8 << 10

// maxChallengeParams bounds the parameters of one challenge.
const maxChallengeParams = 32

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 9110 §11.6.1): a scheme, and either auth-params or a token68.
type Challenge struct {
	// Scheme is the auth-scheme as sent; compare with strings.EqualFold.
	Scheme string
	// Params maps lower-cased parameter names to unquoted values.
	Params map[string]string
	// Token68 holds the token68 form, when used instead of Params.
	Token68 string
}

// ParseWWWAuthenticate parses the values of one or more WWW-Authenticate
// header fields into challenges. It is strict about syntax (a malformed value
// is an error, never a partial guess) and bounded in size. It is safe for
// concurrent use.
func ParseWWWAuthenticate(values ...string) ([]Challenge, error) {
	var out []Challenge
	total := 0
	for _, v := range values {
		total += len(v)
		if total > maxChallengeLen {
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedChallenge, maxChallengeLen)
		}
		cs, err := parseChallenges(v)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

// ResourceMetadataURL returns the RFC 9728 resource_metadata parameter of
// the first Bearer challenge in h, or "" when there is none. The URL is
// returned as sent; check it (HTTPS or loopback) before fetching.
func ResourceMetadataURL(h http.Header) (string, error) {
	cs, err := ParseWWWAuthenticate(h.Values("WWW-Authenticate")...)
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, "Bearer") {
			return c.Params["resource_metadata"], nil
		}
	}
	return "", nil
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

type chParser struct {
	s string
	i int
}

func (p *chParser) ws() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *chParser) token() string {
	j := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[j:p.i]
}

func (p *chParser) eof() bool { return p.i >= len(p.s) }

func (p *chParser) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformedChallenge, what, p.i)
}

func (p *chParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.fail("unterminated escape")
			}
			c = p.s[p.i+1]
			p.i++
		}
		// qdtext and quoted-pair exclude controls other than HTAB.
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return "", p.fail("control character in quoted string")
		}
		b.WriteByte(c)
		p.i++
	}
	return "", p.fail("unterminated quoted string")
}

// skipCommas consumes list separators: OWS and empty list elements.
func (p *chParser) skipCommas() {
	for {
		p.ws()
		if p.eof() || p.s[p.i] != ',' {
			return
		}
		p.i++
	}
}

func parseChallenges(s string) ([]Challenge, error) {
	p := &chParser{s: s}
	var out []Challenge
	p.skipCommas()
	for !p.eof() {
		scheme := p.token()
		if scheme == "" {
			return nil, p.fail("expected auth-scheme")
		}
		c := Challenge{Scheme: scheme}
		if !p.eof() && p.s[p.i] != ' ' && p.s[p.i] != ',' {
			return nil, p.fail("expected space after auth-scheme")
		}
		p.ws()
		// token68 is only possible right after the scheme.
		if t68, ok := p.token68(); ok {
			c.Token68 = t68
			out = append(out, c)
			p.skipCommas()
			continue
		}
		for {
			p.skipCommas()
			if p.eof() {
				break
			}
			save := p.i
			name := p.token()
			if name == "" {
				return nil, p.fail("expected auth-param")
			}
			p.ws()
			if p.eof() || p.s[p.i] != '=' {
				// A bare token starts the next challenge.
				p.i = save
				break
			}
			p.i++
			p.ws()
			var val string
			if !p.eof() && p.s[p.i] == '"' {
				v, err := p.quoted()
				if err != nil {
					return nil, err
				}
				val = v
			} else {
				val = p.token()
				if val == "" {
					return nil, p.fail("expected auth-param value")
				}
			}
			if c.Params == nil {
				c.Params = map[string]string{}
			}
			key := strings.ToLower(name)
			if _, dup := c.Params[key]; dup {
				return nil, p.fail(fmt.Sprintf("duplicate parameter %q", key))
			}
			if len(c.Params) >= maxChallengeParams {
				return nil, p.fail("too many parameters")
			}
			c.Params[key] = val
			p.ws()
			if !p.eof() && p.s[p.i] != ',' {
				return nil, p.fail("expected ',' after auth-param")
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// token68 consumes a token68 if one stands at the cursor followed by the
// end or a comma; otherwise it leaves the cursor alone.
func (p *chParser) token68() (string, bool) {
	j := p.i
	k := j
	for k < len(p.s) && oauthwire.IsToken68Char(p.s[k]) {
		k++
	}
	if k == j {
		return "", false
	}
	e := k
	for e < len(p.s) && p.s[e] == '=' {
		e++
	}
	r := e
	for r < len(p.s) && (p.s[r] == ' ' || p.s[r] == '\t') {
		r++
	}
	if r < len(p.s) && p.s[r] != ',' {
		return "", false
	}
	// "name=" followed by a value would have r pointing at the value, so
	// reaching here with e>k means trailing '=' padding of a token68.
	p.i = r
	return p.s[j:e], true
}
