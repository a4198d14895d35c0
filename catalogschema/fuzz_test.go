package catalogschema_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/google/go-cmp/cmp"
)

func seedFiles(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, _ := filepath.Glob(filepath.Join("testdata", p))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// fuzzLimits keeps fuzzing fast while exercising every limit.
var fuzzLimits = &catalogschema.Limits{MaxBytes: 64 << 10, MaxDepth: 16, MaxServices: 50, MaxStringLen: 4096}

func checkTypedError(t *testing.T, err error) {
	if _, ok := err.(catalogschema.ProtocolError); !ok {
		t.Fatalf("error of type %T is not a ProtocolError: %v", err, err)
	}
}

func FuzzParseMetadata(f *testing.F) {
	seedFiles(f, "metadata.json", "invalid/metadata-*.json")
	f.Add([]byte(`{"a":{"a":{"a":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}}`))
	f.Add([]byte(`{"x":1,"x":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := catalogschema.ParseMetadata(data, fuzzLimits)
		if err != nil {
			checkTypedError(t, err)
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := catalogschema.ParseMetadata(b, nil)
		if err != nil {
			t.Fatalf("re-encoded metadata rejected: %v\n%s", err, b)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("round trip changed metadata:\n%s", diff)
		}
	})
}

func FuzzParseCatalog(f *testing.F) {
	seedFiles(f, "catalog.json", "invalid/catalog-*.json")
	f.Add([]byte(`{"services":[{"configuration_schema":{"$ref":"http://127.0.0.1/x"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := catalogschema.ParseCatalog(data, fuzzLimits)
		if err != nil {
			checkTypedError(t, err)
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := catalogschema.ParseCatalog(b, nil)
		if err != nil {
			t.Fatalf("re-encoded catalog rejected: %v\n%s", err, b)
		}
		if diff := cmp.Diff(c, c2, cmpCatalog...); diff != "" {
			t.Fatalf("round trip changed catalog:\n%s", diff)
		}
		for _, s := range c.Services {
			_ = s.ValidateConfig(json.RawMessage(`{"a":1}`)) // must not panic or fetch
		}
	})
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"cloudflare/registrar:domain", "neon/postgres", "a/b/c", "", "/", "Cf/x", "cf/ x", "cf/dom\u00e4in"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := catalogschema.ParseRef(s)
		if err != nil {
			checkTypedError(t, err)
			return
		}
		if r.String() != s {
			t.Fatalf("ParseRef(%q).String() = %q", s, r.String())
		}
		if !catalogschema.ValidProviderID(r.Provider) || !catalogschema.ValidServiceID(r.Service) {
			t.Fatalf("accepted invalid parts %+v", r)
		}
	})
}
