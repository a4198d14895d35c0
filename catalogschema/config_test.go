package catalogschema_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/google/go-cmp/cmp"
)

func goldenService(t *testing.T, id string) *catalogschema.Service {
	t.Helper()
	c, err := catalogschema.ParseCatalog(readTestdata(t, "catalog.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Service(id)
	if s == nil {
		t.Fatalf("no service %s in golden catalog", id)
	}
	return s
}

func TestValidateConfig(t *testing.T) {
	s := goldenService(t, "registrar:domain")
	cases := []struct {
		name string
		in   string
		ptrs []string // nil: valid
	}{
		{"valid", `{"domain_query":"example.com","years":2}`, nil},
		{"missing", `{}`, []string{"/domain_query"}},
		{"empty config means {}", ``, []string{"/domain_query"}},
		{"wrong types", `{"domain_query":"","years":"two","extra":true}`, []string{"/domain_query", "/extra", "/years"}},
		{"odd names", `{"domain_query":"x","a'b":1,"c, \"d\"":2}`, []string{"/a'b", "/c, \"d\""}},
		{"not an object", `[1]`, []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.ValidateConfig(json.RawMessage(tc.in))
			if tc.ptrs == nil {
				if err != nil {
					t.Fatalf("ValidateConfig: %v", err)
				}
				return
			}
			var ve *catalogschema.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, catalogschema.ErrInvalidConfig) || errors.Is(err, catalogschema.ErrInvalid) {
				t.Fatalf("err = %v, want a configuration ValidationError", err)
			}
			if ve.Code() != "invalid_configuration" {
				t.Errorf("code = %s", ve.Code())
			}
			if diff := cmp.Diff(tc.ptrs, ve.Pointers()); diff != "" {
				t.Errorf("pointers (-want +got):\n%s\n%v", diff, ve)
			}
		})
	}
	if err := s.ValidateConfig(json.RawMessage(`{"domain_query":`)); !errors.Is(err, catalogschema.ErrSyntax) {
		t.Errorf("malformed config: %v", err)
	}
	// Services without a schema (Stripe's `{}`) accept any object.
	free := goldenService(t, "workers:free")
	if err := free.ValidateConfig(json.RawMessage(`{"anything":[1,2,3]}`)); err != nil {
		t.Errorf("schemaless service: %v", err)
	}
}

// TestValidateConfigNeverFetches proves a catalog cannot make the library
// fetch a URL: the referenced server fails the test if it is ever hit.
func TestValidateConfigNeverFetches(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Errorf("schema server was contacted: %s %s", r.Method, r.URL)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"type":"string"}`))
	}))
	defer srv.Close()
	for _, sch := range []string{
		`{"type":"object","properties":{"a":{"$ref":"` + srv.URL + `/evil.json"}}}`,
		`{"$ref":"` + srv.URL + `/evil.json#/defs/x"}`,
		`{"$id":"` + srv.URL + `/base.json","properties":{"a":{"$ref":"other.json"}}}`,
		`{"$ref":"relative.json"}`,
		`{"$schema":"` + srv.URL + `/meta.json"}`,
	} {
		s := &catalogschema.Service{ServiceID: "x", ConfigurationSchema: json.RawMessage(sch)}
		for i := 0; i < 2; i++ { // the second call answers from the cache
			err := s.ValidateConfig(json.RawMessage(`{"a":"b"}`))
			if !errors.Is(err, catalogschema.ErrRemoteRef) || !errors.Is(err, catalogschema.ErrBadConfigSchema) {
				t.Errorf("schema %s: err = %v, want ErrRemoteRef", sch, err)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server hit %d times", n)
	}
	// Local references keep working.
	s := &catalogschema.Service{ServiceID: "x", ConfigurationSchema: json.RawMessage(
		`{"$defs":{"name":{"type":"string","minLength":2}},"properties":{"a":{"$ref":"#/$defs/name"}}}`)}
	if err := s.ValidateConfig(json.RawMessage(`{"a":"bb"}`)); err != nil {
		t.Errorf("local $ref: %v", err)
	}
	var ve *catalogschema.ValidationError
	if err := s.ValidateConfig(json.RawMessage(`{"a":"b"}`)); !errors.As(err, &ve) || ve.Violations[0].Pointer != "/a" {
		t.Errorf("local $ref violation: %v", err)
	}
}

func TestValidateConfigBadSchema(t *testing.T) {
	s := &catalogschema.Service{ServiceID: "x", ConfigurationSchema: json.RawMessage(`{"type":12}`)}
	err := s.ValidateConfig(json.RawMessage(`{}`))
	if !errors.Is(err, catalogschema.ErrBadConfigSchema) || errors.Is(err, catalogschema.ErrRemoteRef) {
		t.Fatalf("err = %v", err)
	}
	// Draft-07 schemas, as some providers publish, compile too.
	s = &catalogschema.Service{ServiceID: "y", ConfigurationSchema: json.RawMessage(
		`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","required":["n"]}`)}
	if err := s.ValidateConfig(json.RawMessage(`{}`)); !errors.Is(err, catalogschema.ErrInvalidConfig) {
		t.Fatalf("draft-07 schema: %v", err)
	}
}

func TestValidateConfigConcurrent(t *testing.T) {
	s := goldenService(t, "registrar:domain")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cfg := `{"domain_query":"a.example"}`
			if i%2 == 1 {
				cfg = `{}`
			}
			err := s.ValidateConfig(json.RawMessage(cfg))
			if (err == nil) != (i%2 == 0) {
				t.Errorf("goroutine %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
}
