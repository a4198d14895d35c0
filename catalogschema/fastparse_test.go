package catalogschema

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// schemaVerdict runs the reference checks the JSON Schema covers: limits,
// duplicates and syntax (pre), then the schema validator. pre is the error
// of the first stage; ptrs are the pointers of the schema violations.
func schemaVerdict(data []byte, l Limits) (pre error, ptrs []string) {
	v, err := decodeChecked(data, l, docCatalog)
	if err != nil {
		return err, nil
	}
	if err := mustSchemas().catalog.Validate(v); err != nil {
		for _, vi := range schemaViolations(err) {
			ptrs = append(ptrs, vi.Pointer)
		}
	}
	return nil, uniqueSorted(ptrs)
}

func uniqueSorted(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// caseFoldedKey reports whether data has a member name that differs from
// a field name only in case: encoding/json matches those to the field, the
// fast path (member names are case-sensitive) does not.
func caseFoldedKey(data []byte) bool {
	v, err := decodeGeneric(data)
	if err != nil {
		return false
	}
	known := map[string]bool{}
	for _, t := range []reflect.Type{reflect.TypeFor[Catalog](), reflect.TypeFor[serviceFields](), reflect.TypeFor[constraintFields](),
		reflect.TypeFor[Source](), reflect.TypeFor[AllowedUpdate](), reflect.TypeFor[CountConstraint](), reflect.TypeFor[Pricing](),
		reflect.TypeFor[PaidPricing](), reflect.TypeFor[PricingOption](), reflect.TypeFor[ComponentPricing](),
		reflect.TypeFor[ComponentOption](), reflect.TypeFor[Price]()} {
		for k := range jsonKeys(t) {
			known[strings.ToLower(k)] = true
			known[k] = false
		}
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				if isKnown, ok := known[k]; !ok && known[strings.ToLower(k)] || ok && isKnown && strings.ToLower(k) != k {
					return true
				}
				if walk(c) {
					return true
				}
			}
		case []any:
			for _, c := range t {
				if walk(c) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// checkAgreement holds the fast path to the reference on one document:
// same schema verdict (and the same pointers) as the JSON Schema
// validator, and the same result from ParseCatalog as from the reference.
func checkAgreement(t interface {
	Helper()
	Fatalf(string, ...any)
}, data []byte, l Limits) {
	t.Helper()
	pre, ptrs := schemaVerdict(data, l)
	d, _, ok := decodeCatalogFast(data, l)
	switch {
	case pre != nil && ok:
		t.Fatalf("reference rejects before the schema (%v), fast path decoded it\n%s", pre, data)
	case pre == nil && !ok:
		t.Fatalf("fast path aborted on a document the reference decodes\n%s", data)
	case ok:
		var fast []string
		for _, v := range d.schema {
			fast = append(fast, v.Pointer)
		}
		fast = uniqueSorted(fast)
		if len(fast) == 0 != (len(ptrs) == 0) {
			t.Fatalf("schema verdict differs: fast %q, JSON Schema %q\n%s", fast, ptrs, data)
		}
		if !reflect.DeepEqual(fast, ptrs) {
			t.Fatalf("schema pointers differ: fast %q, JSON Schema %q\n%s", fast, ptrs, data)
		}
	}
	got, gotErr := ParseCatalog(data, &l)
	want, wantErr := parseCatalogReference(data, l)
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("ParseCatalog error %v, reference %v\n%s", gotErr, wantErr, data)
	}
	if !reflect.DeepEqual(got, want) && !caseFoldedKey(data) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("ParseCatalog value differs from the reference:\n got %s\nwant %s\n%s", g, w, data)
	}
}

// agreementCorpus is every catalog fixture: testdata, the invalid ones,
// and (when present) the 48 catalogs of the shared Stripe capture.
func agreementCorpus(tb testing.TB) [][]byte {
	tb.Helper()
	var docs [][]byte
	for _, pat := range []string{"catalog*.json", "invalid/catalog-*.json"} {
		files, _ := filepath.Glob(filepath.Join("testdata", pat))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			docs = append(docs, b)
		}
	}
	if len(docs) == 0 {
		tb.Fatal("no catalog fixtures in testdata")
	}
	if capture, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "stripe-projects-catalog.json")); err == nil {
		cats, err := ImportStripeProjects(capture, nil)
		if err != nil {
			tb.Fatal(err)
		}
		for _, c := range cats {
			b, err := json.Marshal(c)
			if err != nil {
				tb.Fatal(err)
			}
			docs = append(docs, b)
		}
	} else if t, ok := tb.(*testing.T); ok {
		t.Logf("Stripe Projects capture not available (%v); agreement checked on testdata only", err)
	}
	return docs
}

// TestFastPathAgreesWithSchema: on every fixture and on hand-written edge
// cases, the one-pass decoder and the JSON Schema validator give the same
// verdict at the same pointers, and ParseCatalog equals the reference.
func TestFastPathAgreesWithSchema(t *testing.T) {
	l := DefaultLimits()
	for _, doc := range agreementCorpus(t) {
		checkAgreement(t, doc, l)
	}
	base := `{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026-01-02T03:04:05Z","services":[%s]}`
	svc := `{"service_id":"s","description":"d","kind":"plan","scope":"account","pricing":{"type":"free"}%s}`
	cases := []string{
		`null`, `[]`, `{}`, `{"services":null}`, `{"a":1,"a":2}`, `{"a":1}x`, `{"a":"\u00e9\ud800"}`,
		`{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026-01-02T03:04:05+01:00","services":[]}`,
		`{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026-01-02T23:59:60Z","services":[]}`,
		`{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026\u002d01-02T03:04:05Z","services":[]}`,
		`{"protocol_version":"1.0","provider_id":"p","provider_name":"","updated_at":"x","services":[null, 1]}`,
		`{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026-01-02T03:04:05Z","services":[],"source":null}`,
		`{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026-01-02T03:04:05Z","services":[],"source":{"kind":""}}`,
	}
	for _, extra := range []string{
		``, `,"created":null`, `,"created":12`, `,"created":1.5`, `,"created":1e2`, `,"created":"x"`, `,"created":true`,
		`,"configuration_schema":null`, `,"configuration_schema":true`, `,"configuration_schema":{"$ref":"#/x"}`,
		`,"configuration_schema":{"$ref":"https://x"}`, `,"configuration_schema":{"\u0024ref":"https://x"}`, `,"configuration_schema":1`,
		`,"group":null,"llm_context":"x"`, `,"group":1`, `,"development":null`, `,"livemode":false`,
		`,"categories":[]`, `,"categories":null`, `,"categories":["a",1]`, `,"availability":"Not"`,
		`,"prices":[{"amount":1e2,"currency":"USD","basis":"monthly"}]`,
		`,"prices":[{"amount":1.0,"currency":"USD","basis":"monthly"}]`,
		`,"prices":[{"amount":-1,"currency":"usd","basis":"weekly","per_units":0}]`,
		`,"prices":[{"amount":99999999999999999999,"currency":"USD","basis":"metered","unit":"req"}]`,
		`,"prices":[{"amount":1,"currency":"XXX","basis":"metered"}]`,
		`,"constraints":[{"type":"count","count":{"at_most":-1}},{"type":""},{"type":"x","y":[1]}]`,
		`,"constraints":[{"type":"count","count":{"at_most":2.5}}]`,
		`,"allowed_updates":[{"direction":"sideways","service":""}]`,
		`,"pricing":{"type":"paid","paid":null,"paid_pricing":[{"type":"x","is_default":null,"configuration":null}]}`,
		`,"pricing":{"type":"component","component":{"options":[{"type":"x","paid":{"freeform":1},"parent_services":[1]}]}}`,
		`,"pricing":{"type":"component","component":null,"paid":{"type":""}}`,
		`,"x-unknown":{"a":[1,{"b":null}]},"Kind":"plan"`,
	} {
		cases = append(cases, strings.Replace(base, "%s", strings.Replace(svc, "%s", extra, 1), 1))
	}
	cases = append(cases, strings.Replace(base, "%s", strings.Replace(svc, "%s", "", 1)+","+strings.Replace(svc, "%s", "", 1), 1))
	for _, c := range cases {
		checkAgreement(t, []byte(c), l)
	}
	tight := Limits{MaxBytes: 1 << 20, MaxDepth: 4, MaxServices: 1, MaxStringLen: 8}
	for _, c := range cases {
		checkAgreement(t, []byte(c), tight)
	}
}

// TestFastPathMutations: random edits of valid catalogs (a value replaced
// by another of any type, a member removed or added) get the same verdict
// from the fast path and the JSON Schema validator.
func TestFastPathMutations(t *testing.T) {
	var seeds []any
	for _, doc := range agreementCorpus(t) {
		if v, err := decodeGeneric(doc); err == nil {
			seeds = append(seeds, v)
		}
	}
	values := []any{nil, true, false, json.Number("0"), json.Number("-1"), json.Number("1.5"), json.Number("1e2"),
		json.Number("9223372036854775808"), "", "x", "USD", "plan", "metered", "2026-01-02T03:04:05Z", "a.b",
		[]any{}, []any{"x"}, map[string]any{}, map[string]any{"type": "free"}}
	names := []string{"type", "amount", "currency", "basis", "unit", "kind", "scope", "service_id", "prices", "paid",
		"component", "options", "count", "at_most", "$ref", "created", "configuration", "is_default", "x-extra",
		"direction", "service", "description", "provider_name", "updated_at", "source", "group", "availability"}
	rapid.Check(t, func(rt *rapid.T) {
		doc := deepCopy(seeds[rapid.IntRange(0, len(seeds)-1).Draw(rt, "seed")])
		for n := rapid.IntRange(1, 4).Draw(rt, "edits"); n > 0; n-- {
			mutate(rt, &doc, values, names)
		}
		b, err := json.Marshal(doc)
		if err != nil {
			rt.Fatal(err)
		}
		checkAgreement(rt, b, DefaultLimits())
	})
}

// mutate edits one value of v chosen uniformly among all of them:
// replaced by a value of any type, or, in an object, a member removed or
// added.
func mutate(rt *rapid.T, v *any, values []any, names []string) {
	type slot struct {
		get func() any
		set func(any)
	}
	var slots []slot
	var collect func(get func() any, set func(any))
	collect = func(get func() any, set func(any)) {
		slots = append(slots, slot{get, set})
		switch t := get().(type) {
		case map[string]any:
			for _, k := range sortedKeys(t) {
				collect(func() any { return t[k] }, func(x any) { t[k] = x })
			}
		case []any:
			for i := range t {
				collect(func() any { return t[i] }, func(x any) { t[i] = x })
			}
		}
	}
	collect(func() any { return *v }, func(x any) { *v = x })
	s := slots[rapid.IntRange(0, len(slots)-1).Draw(rt, "slot")]
	if m, ok := s.get().(map[string]any); ok {
		switch rapid.IntRange(0, 2).Draw(rt, "op") {
		case 0:
			if keys := sortedKeys(m); len(keys) > 0 {
				delete(m, rapid.SampledFrom(keys).Draw(rt, "delete"))
				return
			}
		case 1:
			m[rapid.SampledFrom(names).Draw(rt, "add")] = deepCopy(rapid.SampledFrom(values).Draw(rt, "value"))
			return
		}
	}
	s.set(deepCopy(rapid.SampledFrom(values).Draw(rt, "replace")))
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, c := range t {
			m[k] = deepCopy(c)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, c := range t {
			s[i] = deepCopy(c)
		}
		return s
	}
	return v
}

// FuzzCatalogFastPath runs the fast path and the JSON Schema reference on
// the same input and fails on any disagreement.
func FuzzCatalogFastPath(f *testing.F) {
	for _, doc := range agreementCorpus(f) {
		if len(doc) < 64<<10 {
			f.Add(doc)
		}
	}
	f.Add([]byte(`{"services":[{"configuration_schema":{"$ref":"http://127.0.0.1/x"}}]}`))
	f.Add([]byte(`{"a":{"a":{"a":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}}`))
	l := Limits{MaxBytes: 64 << 10, MaxDepth: 16, MaxServices: 50, MaxStringLen: 4096}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgreement(t, data, l)
	})
}

// TestPatternMatchers: the hand-written matchers accept exactly what the
// schema's regular expressions accept.
func TestPatternMatchers(t *testing.T) {
	for _, m := range []struct {
		re    string
		match func(string) bool
	}{
		{`^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$`, matchProtocolVersion},
		{`^[a-z0-9][a-z0-9-]{0,63}$`, ValidProviderID},
		{`^[a-z0-9][a-z0-9._:_-]{0,127}$`, ValidServiceID},
		{`^[a-z][a-z0-9_]*$`, matchAvailability},
		{`^[A-Z]{3}$`, isUpper3},
		{`^[a-z][a-z0-9_.-]{0,63}$`, matchUnit},
	} {
		re := regexp.MustCompile(m.re)
		rapid.Check(t, func(rt *rapid.T) {
			s := rapid.StringOfN(rapid.SampledFrom([]rune("0123456789.:_-azAZé\n")), 0, 140, -1).Draw(rt, "s")
			if got, want := m.match(s), re.MatchString(s); got != want {
				rt.Fatalf("%s on %q: matcher %v, regexp %v", m.re, s, got, want)
			}
		})
	}
}

// TestHugeExponent: a number like 1e99999999 made the JSON Schema
// validator crash (big.Rat refuses it, then is dereferenced) or spin; it
// is now rejected at its pointer before the schema runs, on both paths and
// in configurations.
func TestHugeExponent(t *testing.T) {
	doc := `{"protocol_version":"0.1","provider_id":"p","provider_name":"P","updated_at":"2026-01-02T03:04:05Z","services":[{"service_id":"s","description":"d","kind":"plan","scope":"account","pricing":{"type":"free"},"prices":[{"amount":1e99999999,"currency":"USD","basis":"monthly"}],"x":[-2E-401,1e400]}]}`
	_, err := ParseCatalog([]byte(doc), nil)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("ParseCatalog: %v, want a *ValidationError", err)
	}
	want := []string{"/services/0/prices/0/amount", "/services/0/x/0"}
	if got := ve.Pointers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("pointers %q, want %q", got, want)
	}
	checkAgreement(t, []byte(doc), DefaultLimits())
	s := &Service{ServiceID: "s", ConfigurationSchema: json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}}}`)}
	if err := s.ValidateConfig(json.RawMessage(`{"n":1e99999999}`)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("ValidateConfig: %v, want ErrInvalidConfig", err)
	}
}
