package catalogschema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata from the current encoder")

// cmpCatalog compares catalogs field by field, ignoring Service's
// unexported schema cache and nil-vs-empty differences.
var cmpCatalog = []cmp.Option{
	cmpopts.IgnoreUnexported(catalogschema.Service{}),
	cmp.FilterPath(func(p cmp.Path) bool { return p.Last().Type() != reflect.TypeFor[json.RawMessage]() }, cmpopts.EquateEmpty()),
	cmp.Comparer(func(a, b json.RawMessage) bool { return jsonEqual(a, b) }),
}

func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return cmp.Equal(x, y)
}

func encodeGolden(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// checkGolden compares the canonical encoding of v with testdata/name, so
// the wire form of every document is pinned; -update rewrites the file.
func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	got := encodeGolden(t, v)
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: encoding differs from golden file (run with -update after review):\n%s", name, cmp.Diff(string(want), string(got)))
	}
}

func TestGoldenMetadata(t *testing.T) {
	data := readTestdata(t, "metadata.json")
	m, err := catalogschema.ParseMetadata(data, nil)
	if err != nil {
		t.Fatalf("ParseMetadata(golden): %v", err)
	}
	want := &catalogschema.ProviderMetadata{
		ProtocolVersion:             "0.1",
		ProviderID:                  "acme-cloud",
		Name:                        "Acme Cloud",
		Website:                     "https://acme.example",
		TermsOfService:              catalogschema.Terms{URL: "https://acme.example/legal/terms", Version: "2026-05-01"},
		PrivacyURL:                  "https://acme.example/legal/privacy",
		JWKSURI:                     "https://acme.example/.well-known/jwks.json",
		CatalogURI:                  "https://acme.example/agent-provisioning/catalog",
		CatalogSigning:              catalogschema.SigningJWS,
		AuthorizationServer:         "https://auth.acme.example",
		AccountProvisioningEndpoint: "https://acme.example/agent-provisioning/accounts",
		RevocationEndpoint:          "https://acme.example/agent-provisioning/revocations",
		PaymentEndpoint:             "https://acme.example/agent-provisioning/payments",
		AuthModes:                   []catalogschema.AuthMode{catalogschema.AuthAttestation, catalogschema.AuthOAuthAuthorizationCode},
		PaymentMethods:              []string{catalogschema.PaymentMethodAgentprovToken},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("decoded metadata (-want +got):\n%s", diff)
	}
	checkGolden(t, "metadata.json", m)
	// Round trip: decode → encode → decode.
	m2, err := catalogschema.ParseMetadata(encodeGolden(t, m), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, m2); diff != "" {
		t.Errorf("round trip (-first +second):\n%s", diff)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestGoldenCatalog(t *testing.T) {
	data := readTestdata(t, "catalog.json")
	c, err := catalogschema.ParseCatalog(data, nil)
	if err != nil {
		t.Fatalf("ParseCatalog(golden): %v", err)
	}
	if got, want := len(c.Services), 3; got != want {
		t.Fatalf("%d services, want %d", got, want)
	}
	if !c.UpdatedAt.Equal(time.Date(2026, 6, 13, 3, 14, 18, 70e6, time.UTC)) {
		t.Errorf("updated_at = %v", c.UpdatedAt)
	}
	paid := c.Service("workers:paid")
	if paid == nil || len(paid.Prices) != 2 || *paid.Prices[1].MaxAmount != 10000 || paid.Prices[1].PerUnits != 1_000_000 {
		t.Fatalf("workers:paid prices not decoded: %+v", paid)
	}
	if c.Service("nope") != nil {
		t.Error("Service found a missing id")
	}
	if got := c.Ref(paid).String(); got != "acme-cloud/workers:paid" {
		t.Errorf("Ref = %s", got)
	}
	checkGolden(t, "catalog.json", c)
	c2, err := catalogschema.ParseCatalog(encodeGolden(t, c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, c2, cmpCatalog...); diff != "" {
		t.Errorf("round trip (-first +second):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestInvalidVectors checks every document under testdata/invalid against
// the violation pointers listed in testdata/invalid/expect.json.
func TestInvalidVectors(t *testing.T) {
	var expect map[string]struct {
		Document string   `json:"document"`
		Code     string   `json:"code"`
		Pointers []string `json:"pointers"`
	}
	if err := json.Unmarshal(readTestdata(t, "invalid/expect.json"), &expect); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "invalid", "*.json"))
	seen := 0
	for _, f := range files {
		name := filepath.Base(f)
		if name == "expect.json" {
			continue
		}
		seen++
		t.Run(name, func(t *testing.T) {
			want, ok := expect[name]
			if !ok {
				t.Fatalf("%s has no entry in expect.json", name)
			}
			data := readTestdata(t, "invalid/"+name)
			var err error
			switch want.Document {
			case "metadata":
				_, err = catalogschema.ParseMetadata(data, nil)
			case "catalog":
				_, err = catalogschema.ParseCatalog(data, nil)
			default:
				t.Fatalf("unknown document kind %q", want.Document)
			}
			var ve *catalogschema.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			if ve.Code() != want.Code || !errors.Is(err, catalogschema.ErrInvalid) || ve.HTTPStatus() != 422 {
				t.Errorf("code %s status %d, want %s 422", ve.Code(), ve.HTTPStatus(), want.Code)
			}
			got := ve.Pointers()
			uniq := got[:0:0]
			for i, p := range got {
				if i == 0 || p != got[i-1] {
					uniq = append(uniq, p)
				}
			}
			if diff := cmp.Diff(want.Pointers, uniq); diff != "" {
				t.Errorf("violation pointers (-want +got):\n%s\nerror: %v", diff, ve.Violations)
			}
			for _, v := range ve.Violations {
				if v.Message == "" {
					t.Errorf("violation at %q has no message", v.Pointer)
				}
			}
		})
	}
	if seen != len(expect) {
		t.Errorf("expect.json lists %d files, found %d", len(expect), seen)
	}
}

func TestParseLimits(t *testing.T) {
	golden := readTestdata(t, "catalog.json")
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	manyServices := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026-01-01T00:00:00Z","services":[`)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{}`)
		}
		b.WriteString(`]}`)
		return []byte(b.String())
	}
	cases := []struct {
		name  string
		data  []byte
		lim   *catalogschema.Limits
		is    error
		limit string
		code  string
	}{
		{"too large", golden, &catalogschema.Limits{MaxBytes: 100}, catalogschema.ErrTooLarge, catalogschema.LimitBytes, "document_too_large"},
		{"too deep", []byte(`{"a":` + deep + `}`), nil, catalogschema.ErrTooDeep, catalogschema.LimitDepth, "document_too_deep"},
		{"too deep custom", golden, &catalogschema.Limits{MaxDepth: 3}, catalogschema.ErrTooDeep, catalogschema.LimitDepth, "document_too_deep"},
		{"too many services", manyServices(11), &catalogschema.Limits{MaxServices: 10}, catalogschema.ErrTooManyServices, catalogschema.LimitServices, "too_many_services"},
		{"too many services default", manyServices(2001), nil, catalogschema.ErrTooManyServices, catalogschema.LimitServices, "too_many_services"},
		{"string too long", []byte(`{"provider_name":"` + strings.Repeat("x", 101) + `"}`), &catalogschema.Limits{MaxStringLen: 100}, catalogschema.ErrStringTooLong, catalogschema.LimitStringLen, "string_too_long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalogschema.ParseCatalog(tc.data, tc.lim)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			var le *catalogschema.LimitError
			if !errors.As(err, &le) || le.Limit != tc.limit || le.Got <= le.Max || le.Code() != tc.code {
				t.Fatalf("LimitError = %+v", le)
			}
			for _, other := range []error{catalogschema.ErrTooLarge, catalogschema.ErrTooDeep, catalogschema.ErrTooManyServices, catalogschema.ErrStringTooLong, catalogschema.ErrSyntax, catalogschema.ErrInvalid} {
				if other != tc.is && errors.Is(err, other) {
					t.Errorf("error also matches %v", other)
				}
			}
		})
	}
	// Exactly at the limits passes.
	if _, err := catalogschema.ParseCatalog(golden, &catalogschema.Limits{MaxBytes: int64(len(golden)), MaxDepth: 8, MaxServices: 3}); err != nil {
		t.Errorf("at limits: %v", err)
	}
	if _, err := catalogschema.ParseMetadata(readTestdata(t, "metadata.json"), &catalogschema.Limits{MaxBytes: 10}); !errors.Is(err, catalogschema.ErrTooLarge) {
		t.Errorf("metadata size limit: %v", err)
	}
	d := catalogschema.DefaultLimits()
	if d.MaxBytes != 4<<20 || d.MaxDepth != 32 || d.MaxServices != 2000 || d.MaxStringLen != 64<<10 {
		t.Errorf("DefaultLimits = %+v", d)
	}
}

func TestParseSyntax(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a":}`, `{"a":1}{`, `{"a":1} x`, `nul`, `{"a":"\x"}`, "{\"a\":1,}"} {
		_, err := catalogschema.ParseCatalog([]byte(in), nil)
		var se *catalogschema.SyntaxError
		if !errors.Is(err, catalogschema.ErrSyntax) || !errors.As(err, &se) {
			t.Errorf("ParseCatalog(%q) = %v, want a SyntaxError", in, err)
			continue
		}
		if se.Offset < 0 || se.Offset > int64(len(in)) || se.Code() != "malformed_document" || se.HTTPStatus() != 400 {
			t.Errorf("ParseCatalog(%q): offset %d code %s", in, se.Offset, se.Code())
		}
		if _, err := catalogschema.ParseMetadata([]byte(in), nil); !errors.Is(err, catalogschema.ErrSyntax) {
			t.Errorf("ParseMetadata(%q) = %v", in, err)
		}
	}
	var jse *json.SyntaxError
	var se *catalogschema.SyntaxError
	_, err := catalogschema.ParseCatalog([]byte(`{"a" 1}`), nil)
	if !errors.As(err, &jse) || !errors.As(err, &se) || se.Offset != jse.Offset || se.Offset < 5 {
		t.Errorf("decoder error not wrapped with its offset: %v", err)
	}
}

func TestDuplicateMembers(t *testing.T) {
	data := readTestdata(t, "metadata.json")
	// A second "jwks_uri" would let two parsers disagree on the key set.
	bad := bytes.Replace(data, []byte(`"name":`), []byte(`"jwks_uri": "https://evil.example/jwks", "name":`), 1)
	_, err := catalogschema.ParseMetadata(bad, nil)
	var ve *catalogschema.ValidationError
	if !errors.As(err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].Pointer != "/jwks_uri" {
		t.Fatalf("duplicate member not reported at /jwks_uri: %v", err)
	}
	esc := []byte(`{"services":[{},{"a":1,"\u0061":2}]}`)
	_, err = catalogschema.ParseCatalog(esc, nil)
	if !errors.As(err, &ve) || ve.Violations[0].Pointer != "/services/1/a" {
		t.Fatalf("escaped duplicate not reported: %v", err)
	}
}

func TestCatalogValidateGoBuilt(t *testing.T) {
	max := int64(50)
	c := &catalogschema.Catalog{
		ProtocolVersion: catalogschema.ProtocolVersion,
		ProviderID:      "acme",
		ProviderName:    "Acme",
		UpdatedAt:       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Services: []*catalogschema.Service{{
			ServiceID: "api", Kind: catalogschema.KindPlan, Scope: catalogschema.ScopeProject,
			Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
			Prices:  []catalogschema.Price{{Amount: 100, Currency: "USD", Basis: catalogschema.BasisMetered, Unit: "call", MaxAmount: &max}},
		}},
	}
	err := c.Validate()
	var ve *catalogschema.ValidationError
	if !errors.As(err, &ve) || !cmp.Equal(ve.Pointers(), []string{"/services/0/prices/0/max_amount"}) {
		t.Fatalf("Validate = %v", err)
	}
	max = 100
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after fix: %v", err)
	}
	c.UpdatedAt = c.UpdatedAt.In(time.FixedZone("X", 3600))
	if err := c.Validate(); !errors.As(err, &ve) || ve.Violations[0].Pointer != "/updated_at" {
		t.Fatalf("non-UTC updated_at: %v", err)
	}
	if err := (&catalogschema.ProviderMetadata{}).Validate(); !errors.Is(err, catalogschema.ErrInvalid) {
		t.Fatalf("empty metadata: %v", err)
	}
}

func TestUnknownMembersPreserved(t *testing.T) {
	in := `{"protocol_version":"0.1","provider_id":"acme","provider_name":"Acme","updated_at":"2026-01-01T00:00:00Z","future":1,
	 "services":[{"service_id":"a","description":"","kind":"plan","scope":"project","pricing":{"type":"free","component":null,"paid":null},
	   "x_new":{"k":[1,2]},"constraints":[{"type":"region","regions":["eu"]}]}]}`
	c, err := catalogschema.ParseCatalog([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services[0]
	if string(s.Extra["x_new"]) != `{"k":[1,2]}` || string(s.Constraints[0].Extra["regions"]) != `["eu"]` {
		t.Fatalf("extras: %s / %v", s.Extra, s.Constraints[0].Extra)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if _, ok := m["x_new"]; !ok {
		t.Errorf("x_new lost on encode: %s", b)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !strings.Contains(string(b), `"constraints":[{"type":"region","regions":["eu"]}]`) {
		t.Errorf("constraint extra lost: %s", b)
	}
	s.Extra["service_id"] = json.RawMessage(`"hijack"`) // a known name never overrides the field
	b, _ = json.Marshal(s)
	if strings.Contains(string(b), "hijack") {
		t.Errorf("extra overrode a known member: %s", b)
	}
	s.Extra["bad"] = json.RawMessage(`{`)
	if _, err := json.Marshal(s); err == nil {
		t.Error("invalid extra JSON encoded")
	}
}

func TestMetadataDefaultSizeLimit(t *testing.T) {
	data := readTestdata(t, "metadata.json")
	big := bytes.Replace(data, []byte(`"name": "Acme Cloud"`), []byte(`"name": "Acme Cloud", "x_pad": "`+strings.Repeat("a", 60<<10)+`", "x_pad2": "`+strings.Repeat("a", 5<<10)+`"`), 1)
	_, err := catalogschema.ParseMetadata(big, nil)
	var le *catalogschema.LimitError
	if !errors.As(err, &le) || le.Max != catalogschema.DefaultMaxMetadataBytes {
		t.Fatalf("metadata over 64 KiB: %v", err)
	}
	if _, err := catalogschema.ParseMetadata(big, &catalogschema.Limits{MaxBytes: 1 << 20}); err != nil {
		t.Fatalf("explicit limit not honoured: %v", err)
	}
}

func TestSchemas(t *testing.T) {
	s := catalogschema.Schemas()
	for _, id := range []string{catalogschema.MetadataSchemaID, catalogschema.CatalogSchemaID} {
		var doc struct {
			ID     string `json:"$id"`
			Schema string `json:"$schema"`
		}
		if err := json.Unmarshal(s[id], &doc); err != nil || doc.ID != id || doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("schema %s: %+v %v", id, doc, err)
		}
	}
	s[catalogschema.CatalogSchemaID][0] = 'X' // a copy: must not corrupt the package
	if _, err := catalogschema.ParseCatalog(readTestdata(t, "catalog.json"), nil); err != nil {
		t.Fatal(err)
	}
}
