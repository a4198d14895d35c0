package catalogschema_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/catalogschema"
	"pgregory.net/rapid"
)

func TestParseRef(t *testing.T) {
	good := map[string]catalogschema.Ref{
		"cloudflare/registrar:domain":   {"cloudflare", "registrar:domain"},
		"neon/postgres":                 {"neon", "postgres"},
		"0x/a":                          {"0x", "a"},
		"exa/pay_as_you_go":             {"exa", "pay_as_you_go"},
		"a-b/v1.2-x_y:z":                {"a-b", "v1.2-x_y:z"},
		strings.Repeat("p", 64) + "/s":  {strings.Repeat("p", 64), "s"},
		"p/" + strings.Repeat("s", 128): {"p", strings.Repeat("s", 128)},
	}
	for in, want := range good {
		got, err := catalogschema.ParseRef(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseRef(%q) = %v, %v", in, got, err)
		}
	}
	bad := map[string]string{
		"":                              "empty",
		"cloudflare":                    "no '/'",
		"/domain":                       "empty provider id",
		"cloudflare/":                   "empty service id",
		"a/b/c":                         "more than one '/'",
		" cloudflare/domain":            "provider id must start",
		"cloudflare/domain ":            "invalid character",
		"Cloudflare/domain":             "provider id must start",
		"cloudflare/Domain":             "service id must start",
		"cloud_flare/domain":            "provider id has invalid character \"_\"",
		"-cf/domain":                    "provider id must start",
		"cf/:domain":                    "service id must start",
		"cf/dom ain":                    "service id has invalid character",
		"cf/domäin":                     "invalid character",
		strings.Repeat("p", 65) + "/s":  "more than 64",
		"p/" + strings.Repeat("s", 129): "more than 128",
	}
	for in, reason := range bad {
		_, err := catalogschema.ParseRef(in)
		var re *catalogschema.RefError
		if !errors.As(err, &re) || !errors.Is(err, catalogschema.ErrInvalidRef) {
			t.Errorf("ParseRef(%q) = %v, want a RefError", in, err)
			continue
		}
		if !strings.Contains(re.Reason, reason) {
			t.Errorf("ParseRef(%q) reason %q does not mention %q", in, re.Reason, reason)
		}
		if re.Code() != "invalid_ref" || re.HTTPStatus() != 400 {
			t.Errorf("code %s status %d", re.Code(), re.HTTPStatus())
		}
	}
}

func TestRefText(t *testing.T) {
	var v struct {
		Ref catalogschema.Ref `json:"ref"`
	}
	if err := json.Unmarshal([]byte(`{"ref":"neon/postgres"}`), &v); err != nil || v.Ref != (catalogschema.Ref{"neon", "postgres"}) {
		t.Fatalf("unmarshal: %v %v", v, err)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"ref":"neon/postgres"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"ref":"neon"}`), &v); !errors.Is(err, catalogschema.ErrInvalidRef) {
		t.Errorf("bad ref accepted: %v", err)
	}
	v.Ref = catalogschema.Ref{Provider: "Neon", Service: "pg"}
	if _, err := json.Marshal(v); !errors.Is(err, catalogschema.ErrInvalidRef) {
		t.Errorf("invalid ref encoded: %v", err)
	}
}

func genProviderID() *rapid.Generator[string] {
	return rapid.StringMatching(`[a-z0-9][a-z0-9-]{0,63}`)
}

func genServiceID() *rapid.Generator[string] {
	return rapid.StringMatching(`[a-z0-9][a-z0-9._:_-]{0,127}`)
}

// TestRefProperties: generated valid refs round trip, and no string panics
// or yields a ref that does not print back to itself.
func TestRefProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := catalogschema.Ref{Provider: genProviderID().Draw(t, "provider"), Service: genServiceID().Draw(t, "service")}
		got, err := catalogschema.ParseRef(r.String())
		if err != nil || got != r {
			t.Fatalf("ParseRef(%q) = %v, %v", r.String(), got, err)
		}
		s := rapid.OneOf(rapid.String(), rapid.StringMatching(`[ -~]{0,20}/[ -~]{0,20}`)).Draw(t, "any")
		if r, err := catalogschema.ParseRef(s); err == nil && r.String() != s {
			t.Fatalf("ParseRef(%q) accepted as %v", s, r)
		}
	})
}
