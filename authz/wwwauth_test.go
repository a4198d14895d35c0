package authz

import (
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/internal/oauthwire"
)

func TestParseWWWAuthenticate(t *testing.T) {
	cases := []struct {
		in   []string
		want []Challenge
	}{
		{[]string{`Bearer`}, []Challenge{{Scheme: "Bearer"}}},
		{[]string{`Bearer resource_metadata="https://p.example/.well-known/oauth-protected-resource"`},
			[]Challenge{{Scheme: "Bearer", Params: map[string]string{"resource_metadata": "https://p.example/.well-known/oauth-protected-resource"}}}},
		{[]string{`Bearer error="invalid_token", error_description="a \"quoted\" \\ text", Resource_Metadata=x`},
			[]Challenge{{Scheme: "Bearer", Params: map[string]string{"error": "invalid_token", "error_description": `a "quoted" \ text`, "resource_metadata": "x"}}}},
		{[]string{`Basic realm="a, b", Bearer scope="x y"`},
			[]Challenge{{Scheme: "Basic", Params: map[string]string{"realm": "a, b"}}, {Scheme: "Bearer", Params: map[string]string{"scope": "x y"}}}},
		{[]string{`Negotiate abc+/def==, Bearer`}, []Challenge{{Scheme: "Negotiate", Token68: "abc+/def=="}, {Scheme: "Bearer"}}},
		{[]string{`DPoP algs="ES256"`, ` , Bearer realm = "r" ,`},
			[]Challenge{{Scheme: "DPoP", Params: map[string]string{"algs": "ES256"}}, {Scheme: "Bearer", Params: map[string]string{"realm": "r"}}}},
		{[]string{``}, nil},
	}
	for _, c := range cases {
		got, err := ParseWWWAuthenticate(c.in...)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !challengesEqual(got, c.want) {
			t.Errorf("%q = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestParseWWWAuthenticateRejects(t *testing.T) {
	for _, in := range []string{
		`Bearer realm="unterminated`,
		`Bearer a=b, c=`,
		`Bearer a="1", a="2"`,
		`Bearer realm="x" junk`,
		`=Bearer`,
		`Bearer=x`,
		"Bearer realm=\"ctl\x01\"",
		`Bearer realm="x\`,
		strings.Repeat("a", maxChallengeLen+1),
	} {
		if cs, err := ParseWWWAuthenticate(in); !errors.Is(err, ErrMalformedChallenge) {
			t.Errorf("%q = %+v, %v; want ErrMalformedChallenge", in, cs, err)
		}
	}
}

func TestResourceMetadataURL(t *testing.T) {
	h := http.Header{}
	h.Add("WWW-Authenticate", `Basic realm="x"`)
	h.Add("WWW-Authenticate", `bearer error="invalid_token", resource_metadata="https://p.example/prm"`)
	got, err := ResourceMetadataURL(h)
	if err != nil || got != "https://p.example/prm" {
		t.Fatalf("ResourceMetadataURL = %q, %v", got, err)
	}
	if got, err := ResourceMetadataURL(http.Header{}); got != "" || err != nil {
		t.Fatalf("empty header = %q, %v", got, err)
	}
}

func challengesEqual(a, b []Challenge) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Scheme != b[i].Scheme || a[i].Token68 != b[i].Token68 || !maps.Equal(a[i].Params, b[i].Params) {
			return false
		}
	}
	return true
}

// TestFormatChallengeRoundTrip: whatever printable values the middleware
// puts in a challenge, the parser gives back exactly.
func TestFormatChallengeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 5).Draw(t, "n")
		names := rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z_]{1,12}`), n, n, func(s string) string { return s }).Draw(t, "names")
		var kv []string
		want := map[string]string{}
		for _, name := range names {
			v := rapid.StringMatching(`[ -~\t]{1,40}`).Draw(t, "value")
			kv = append(kv, name, v)
			want[name] = v
		}
		s := oauthwire.FormatChallenge("Bearer", kv...)
		got, err := ParseWWWAuthenticate(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if len(want) == 0 {
			want = nil
		}
		if len(got) != 1 || got[0].Scheme != "Bearer" || !maps.Equal(got[0].Params, want) {
			t.Fatalf("%q parsed to %+v, want %v", s, got, want)
		}
	})
}

func FuzzParseWWWAuthenticate(f *testing.F) {
	for _, s := range []string{
		`Bearer`,
		`Bearer resource_metadata="https://p.example/.well-known/oauth-protected-resource"`,
		`Bearer error="insufficient_scope", scope="a b", resource_metadata="x"`,
		`Basic realm="a, b", Bearer scope="x y"`,
		`Negotiate abc+/def==, Bearer`,
		`Bearer realm="x\"y"`,
		`, ,Bearer a=b,,c="d"`,
		`Bearer realm="unterminated`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := ParseWWWAuthenticate(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedChallenge) {
				t.Fatalf("error %v is not ErrMalformedChallenge", err)
			}
			return
		}
		// Re-serialising what was parsed must parse to the same thing.
		var parts []string
		for _, c := range cs {
			if c.Token68 != "" {
				parts = append(parts, c.Scheme+" "+c.Token68)
				continue
			}
			var kv []string
			for k, v := range c.Params {
				kv = append(kv, k, v)
			}
			if len(kv) == 0 {
				parts = append(parts, c.Scheme)
				continue
			}
			// Empty values are skipped by oauthwire.FormatChallenge; keep them.
			f := oauthwire.FormatChallenge(c.Scheme, kv...)
			for k, v := range c.Params {
				if v == "" {
					if f == c.Scheme {
						f += " "
					} else {
						f += ", "
					}
					f += k + `=""`
				}
			}
			parts = append(parts, f)
		}
		again, err := ParseWWWAuthenticate(strings.Join(parts, ", "))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", strings.Join(parts, ", "), err)
		}
		if !challengesEqual(cs, again) {
			t.Fatalf("round trip changed %+v into %+v", cs, again)
		}
	})
}
