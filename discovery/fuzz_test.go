package discovery

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// FuzzParseSignedCatalog feeds arbitrary bytes to the JWS path. It must
// never panic, and anything accepted must be a valid catalog signed by the
// trusted key.
func FuzzParseSignedCatalog(f *testing.F) {
	golden, err := os.ReadFile("testdata/catalog.jws")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte("a.b.c"))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Add([]byte(""))
	f.Add(golden[:len(golden)/2])
	keys := publicSet("golden-2026", testKey("golden"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cat, info, err := VerifyCatalog(data, keys, &catalogschema.Limits{MaxBytes: 64 << 10})
		if err != nil {
			if !errors.Is(err, ErrSignature) && !errors.Is(err, ErrUnknownKey) &&
				!errors.Is(err, catalogschema.ErrInvalid) && !errors.Is(err, catalogschema.ErrSyntax) &&
				!errors.Is(err, catalogschema.ErrTooLarge) && !errors.Is(err, catalogschema.ErrTooDeep) &&
				!errors.Is(err, catalogschema.ErrStringTooLong) && !errors.Is(err, catalogschema.ErrTooManyServices) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if info.KeyID != "golden-2026" || cat == nil || cat.ProviderID == "" {
			t.Fatalf("accepted without a proper result: %+v %+v", info, cat)
		}
	})
}

// FuzzParseMetadataResponse feeds arbitrary content types and bodies to the
// metadata parser. Accepted metadata must name the trusted provider and only
// fetchable URLs.
func FuzzParseMetadataResponse(f *testing.F) {
	golden, err := os.ReadFile("testdata/metadata.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("application/json", golden)
	f.Add("application/json; charset=utf-8", golden)
	f.Add("text/html", golden)
	f.Add("application/json", []byte(`{"provider_id":"example"}`))
	f.Add("application/json", []byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Add("application/json;", []byte(`null`))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		m, err := parseMetadataResponse("example", ctype, body, nil)
		if err != nil {
			return
		}
		if m.ProviderID != "example" {
			t.Fatalf("accepted provider %q", m.ProviderID)
		}
		if _, err := safehttp.CheckURL(m.CatalogURI); err != nil {
			t.Fatalf("accepted catalog_uri %q", m.CatalogURI)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}
