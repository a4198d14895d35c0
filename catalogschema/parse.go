package catalogschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/internal/safehttp"
)

// ParseMetadata parses and validates a provider metadata document (§3.1).
//
// Checks run in order, each only if the previous passed: size, nesting
// depth and string length (a byte scan before decoding), JSON syntax, the
// embedded JSON Schema, then semantic rules (URLs that are fetched must be
// https or loopback http, endpoints required by the advertised modes).
// Errors: *LimitError, *SyntaxError, or *ValidationError listing every
// violation.
func ParseMetadata(data []byte, lim *Limits) (*ProviderMetadata, error) {
	l := lim.resolved()
	if lim == nil || lim.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxMetadataBytes
	}
	v, err := decodeChecked(data, l, docMetadata)
	if err != nil {
		return nil, err
	}
	var vs []Violation
	if err := mustSchemas().metadata.Validate(v); err != nil {
		vs = schemaViolations(err)
	}
	m := new(ProviderMetadata)
	if err := json.Unmarshal(data, m); err != nil {
		if len(vs) == 0 {
			vs = append(vs, decodeViolation(err))
		}
		return nil, &ValidationError{Document: docMetadata, Violations: sortViolations(vs)}
	}
	vs = append(vs, m.semantic()...)
	if len(vs) > 0 {
		return nil, &ValidationError{Document: docMetadata, Violations: sortViolations(vs)}
	}
	return m, nil
}

// ParseCatalog parses and validates a catalog document (§3.2, §3.3), with
// the same order of checks as ParseMetadata plus the service count limit
// before schema validation. Semantic rules: unique service ids, ISO 4217
// currencies, one currency per service, max_amount ≥ amount, metered prices
// name their unit, configuration schemas hold no remote $ref.
//
// A valid document is read in one pass that decodes and checks the schema
// together; a document that fails any check is read again by the JSON
// Schema validator, so errors are the same whichever path found them.
func ParseCatalog(data []byte, lim *Limits) (*Catalog, error) {
	l := lim.resolved()
	if c, ok := fastCatalog(data, l); ok {
		return c, nil
	}
	return parseCatalogReference(data, l)
}

// parseCatalogReference is ParseCatalog through the JSON Schema validator:
// the reference the fast path is held to, and the source of its errors.
func parseCatalogReference(data []byte, l Limits) (*Catalog, error) {
	v, vs, err := checkCatalog(data, l)
	if err != nil {
		return nil, err
	}
	c := new(Catalog)
	if err := json.Unmarshal(data, c); err != nil {
		if len(vs) == 0 {
			vs = append(vs, decodeViolation(err))
		}
		return nil, &ValidationError{Document: docCatalog, Violations: sortViolations(vs)}
	}
	vs = append(vs, c.semantic(v)...)
	if len(vs) > 0 {
		return nil, &ValidationError{Document: docCatalog, Violations: sortViolations(vs)}
	}
	return c, nil
}

// checkCatalog runs the checks of ParseCatalog that need no Go value:
// limits, syntax, service count, schema and integer ranges. It returns the
// generic document and its violations, or a limit or syntax error.
func checkCatalog(data []byte, l Limits) (any, []Violation, error) {
	v, err := decodeChecked(data, l, docCatalog)
	if err != nil {
		return nil, nil, err
	}
	if m, ok := v.(map[string]any); ok {
		if s, ok := m["services"].([]any); ok && len(s) > l.MaxServices {
			return nil, nil, &LimitError{Limit: LimitServices, Max: int64(l.MaxServices), Got: int64(len(s))}
		}
	}
	var vs []Violation
	if err := mustSchemas().catalog.Validate(v); err != nil {
		vs = schemaViolations(err)
	}
	return v, append(vs, integerViolations(v)...), nil
}

// decodeViolation turns a typed-decode failure that neither the schema nor
// integerViolations caught into a violation.
func decodeViolation(err error) Violation {
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return Violation{Pointer: "/updated_at", Message: "must be an RFC 3339 date-time"}
	}
	return Violation{Pointer: "", Message: err.Error()}
}

func decodeChecked(data []byte, l Limits, doc string) (any, error) {
	if err := precheck(data, l, doc); err != nil {
		return nil, err
	}
	v, err := decodeGeneric(data)
	if err != nil {
		return nil, err
	}
	var vs []Violation
	hugeNumbers("", v, &vs)
	if len(vs) > 0 {
		return nil, &ValidationError{Document: doc, Violations: vs}
	}
	return v, nil
}

// maxExponent bounds the decimal exponent of every number in a document.
// The schema validator turns numbers into exact rationals, and 1e999999999
// would take unbounded time and memory (or crash it); no member of any
// protocol document needs an exponent anywhere near this.
const maxExponent = 400

// hugeNumbers reports every number whose exponent exceeds maxExponent.
func hugeNumbers(p string, v any, vs *[]Violation) {
	switch t := v.(type) {
	case json.Number:
		if hugeExponent(string(t)) {
			*vs = append(*vs, Violation{Pointer: p, Message: fmt.Sprintf("number exponent exceeds %d", maxExponent)})
		}
	case map[string]any:
		for _, k := range sortedKeys(t) {
			hugeNumbers(ptr(p, k), t[k], vs)
		}
	case []any:
		for i, e := range t {
			hugeNumbers(ptr(p, strconv.Itoa(i)), e, vs)
		}
	}
}

// hugeExponent reports whether the JSON number n has an exponent above
// maxExponent in magnitude.
func hugeExponent(n string) bool {
	i := strings.IndexAny(n, "eE")
	if i < 0 {
		return false
	}
	e := strings.TrimLeft(n[i+1:], "+-")
	e = strings.TrimLeft(e, "0")
	return len(e) > 3 || len(e) == 3 && e > strconv.Itoa(maxExponent)
}

// Validate checks a document built in Go by encoding it and running every
// check of ParseMetadata, with default limits. It returns nil or an error
// of the same types.
func (m *ProviderMetadata) Validate() error {
	data, err := json.Marshal(m)
	if err != nil {
		return &ValidationError{Document: docMetadata, Violations: []Violation{{Message: err.Error()}}}
	}
	_, err = ParseMetadata(data, nil)
	return err
}

// Validate checks a catalog built in Go by encoding it and running every
// check of ParseCatalog, with default limits, so that what passes here
// passes at every receiver using default limits.
func (c *Catalog) Validate() error {
	data, err := json.Marshal(c)
	if err != nil {
		return &ValidationError{Document: docCatalog, Violations: []Violation{{Message: err.Error()}}}
	}
	if _, ok := fastCatalog(data, DefaultLimits()); ok {
		return nil
	}
	// The encoding of c stands in for the document; c itself replaces the
	// decoded value, which saves a decode.
	v, vs, err := checkCatalog(data, DefaultLimits())
	if err != nil {
		return err
	}
	vs = append(vs, c.semantic(v)...)
	if len(vs) > 0 {
		return &ValidationError{Document: docCatalog, Violations: sortViolations(vs)}
	}
	return nil
}

// Service returns the service with the given id, or nil.
func (c *Catalog) Service(serviceID string) *Service {
	for _, s := range c.Services {
		if s != nil && s.ServiceID == serviceID {
			return s
		}
	}
	return nil
}

// Ref returns the ref of s within c.
func (c *Catalog) Ref(s *Service) Ref { return Ref{Provider: c.ProviderID, Service: s.ServiceID} }

func checkVersion(v string) string {
	major, _, ok := strings.Cut(v, ".")
	if !ok {
		return "" // the schema reports the format
	}
	if major != "0" {
		return fmt.Sprintf("unsupported protocol major version %s (this implementation speaks %s)", major, ProtocolVersion)
	}
	return ""
}

func (m *ProviderMetadata) semantic() []Violation {
	var vs []Violation
	add := func(p, format string, a ...any) {
		vs = append(vs, Violation{Pointer: p, Message: fmt.Sprintf(format, a...)})
	}
	if msg := checkVersion(m.ProtocolVersion); msg != "" {
		add("/protocol_version", "%s", msg)
	}
	fetched := []struct {
		p, v string
	}{
		{"/jwks_uri", m.JWKSURI},
		{"/catalog_uri", m.CatalogURI},
		{"/authorization_server", m.AuthorizationServer},
		{"/account_provisioning_endpoint", m.AccountProvisioningEndpoint},
		{"/revocation_endpoint", m.RevocationEndpoint},
		{"/payment_endpoint", m.PaymentEndpoint},
	}
	for _, f := range fetched {
		if f.v == "" {
			continue
		}
		if _, err := safehttp.CheckURL(f.v); err != nil {
			add(f.p, "must be an https URL (or http on a loopback host)")
		} else if strings.Contains(f.v, "#") {
			add(f.p, "must not have a fragment")
		}
	}
	shown := []struct {
		p, v string
	}{
		{"/website", m.Website},
		{"/privacy_url", m.PrivacyURL},
		{"/terms_of_service/url", m.TermsOfService.URL},
	}
	for _, f := range shown {
		if f.v != "" && !isWebURL(f.v) {
			add(f.p, "must be an absolute http or https URL")
		}
	}
	for _, mode := range m.AuthModes {
		switch mode {
		case AuthAttestation:
			if m.AccountProvisioningEndpoint == "" {
				add("/account_provisioning_endpoint", "required when auth_modes contains %q", mode)
			}
		case AuthOAuthAuthorizationCode, AuthOAuthDeviceCode:
			if m.AuthorizationServer == "" {
				add("/authorization_server", "required when auth_modes contains %q", mode)
			}
		}
	}
	if len(m.PaymentMethods) > 0 && m.PaymentEndpoint == "" {
		add("/payment_endpoint", "required when payment_methods is not empty")
	}
	return vs
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	return u.Scheme == "https" || u.Scheme == "http"
}

// semantic checks what the schema cannot. generic is the decoded document,
// used to find $ref members inside configuration schemas.
func (c *Catalog) semantic(generic any) []Violation {
	vs := c.semanticTyped()
	// Remote references are looked for in the generic form, which keeps
	// the exact location of every "$ref".
	if m, ok := generic.(map[string]any); ok {
		if svcs, ok := m["services"].([]any); ok {
			for i, sv := range svcs {
				sm, ok := sv.(map[string]any)
				if !ok {
					continue
				}
				for _, k := range []string{"configuration_schema", "provider_configuration_schema"} {
					if sch, ok := sm[k]; ok {
						remoteRefs(ptr("/services", strconv.Itoa(i), k), sch, &vs)
					}
				}
			}
		}
	}
	return vs
}

// semanticTyped checks the rules of semantic that need only the Go value.
func (c *Catalog) semanticTyped() []Violation {
	var vs []Violation
	add := func(p, format string, a ...any) {
		vs = append(vs, Violation{Pointer: p, Message: fmt.Sprintf(format, a...)})
	}
	if msg := checkVersion(c.ProtocolVersion); msg != "" {
		add("/protocol_version", "%s", msg)
	}
	if _, off := c.UpdatedAt.Zone(); off != 0 {
		add("/updated_at", "must be in UTC (offset Z)")
	}
	first := make(map[string]int, len(c.Services))
	for i, s := range c.Services {
		base := "/services/" + strconv.Itoa(i)
		if s == nil {
			continue // the schema reports null entries
		}
		if j, dup := first[s.ServiceID]; dup {
			add(base+"/service_id", "duplicate service id %q (first at /services/%d)", s.ServiceID, j)
		} else {
			first[s.ServiceID] = i
		}
		vs = append(vs, pricesViolations(base, s.Prices)...)
	}
	return vs
}

// integerViolations reports integer members the schema accepts (it sees
// 1e2 as an integer and has no int64 bound) but Go cannot hold: written
// with a fraction or exponent, or outside int64.
func integerViolations(generic any) []Violation {
	var vs []Violation
	check := func(p string, v any) {
		n, ok := v.(json.Number)
		if !ok {
			return // absent, or a type error the schema reports
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			vs = append(vs, Violation{Pointer: p, Message: fmt.Sprintf("%s is not an integer literal within int64", n)})
		}
	}
	m, _ := generic.(map[string]any)
	svcs, _ := m["services"].([]any)
	for i, sv := range svcs {
		sm, _ := sv.(map[string]any)
		base := "/services/" + strconv.Itoa(i)
		prices, _ := sm["prices"].([]any)
		for j, pv := range prices {
			pm, _ := pv.(map[string]any)
			for _, k := range []string{"amount", "per_units", "max_amount"} {
				if x, ok := pm[k]; ok {
					check(base+"/prices/"+strconv.Itoa(j)+"/"+k, x)
				}
			}
		}
		cons, _ := sm["constraints"].([]any)
		for j, cv := range cons {
			cm, _ := cv.(map[string]any)
			cnt, _ := cm["count"].(map[string]any)
			if x, ok := cnt["at_most"]; ok {
				check(base+"/constraints/"+strconv.Itoa(j)+"/count/at_most", x)
			}
		}
	}
	return vs
}

func pricesViolations(base string, prices []Price) []Violation {
	var vs []Violation
	add := func(p, format string, a ...any) {
		vs = append(vs, Violation{Pointer: p, Message: fmt.Sprintf(format, a...)})
	}
	for j, p := range prices {
		pb := base + "/prices/" + strconv.Itoa(j)
		// Negative amounts and malformed codes are the schema's to report.
		if isUpper3(p.Currency) && !ValidCurrency(p.Currency) {
			add(pb+"/currency", "%q is not an ISO 4217 currency code", p.Currency)
		} else if ValidCurrency(p.Currency) && ValidCurrency(prices[0].Currency) && p.Currency != prices[0].Currency {
			add(pb+"/currency", "%s differs from the service's first price currency %s", p.Currency, prices[0].Currency)
		}
		if p.MaxAmount != nil && *p.MaxAmount < p.Amount {
			add(pb+"/max_amount", "%d is less than amount %d", *p.MaxAmount, p.Amount)
		}
		switch p.Basis {
		case BasisMetered:
			if p.Unit == "" {
				add(pb+"/unit", "required for a metered price")
			}
		case BasisOneTime, BasisMonthly, BasisYearly:
			if p.Unit != "" {
				add(pb+"/unit", "only allowed for a metered price")
			}
			if p.PerUnits != 0 {
				add(pb+"/per_units", "only allowed for a metered price")
			}
		}
	}
	return vs
}

// remoteRefs reports every "$ref" (and "$dynamicRef") that does not stay
// inside the schema document, since ValidateConfig refuses them anyway.
func remoteRefs(p string, v any, vs *[]Violation) {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			child := t[k]
			if (k == "$ref" || k == "$dynamicRef") && isRemoteRef(child) {
				*vs = append(*vs, Violation{Pointer: ptr(p, k), Message: fmt.Sprintf("reference %q leaves the document; remote references are not allowed", child)})
				continue
			}
			remoteRefs(ptr(p, k), child, vs)
		}
	case []any:
		for i, e := range t {
			remoteRefs(ptr(p, strconv.Itoa(i)), e, vs)
		}
	}
}

func isRemoteRef(v any) bool {
	s, ok := v.(string)
	return ok && !strings.HasPrefix(s, "#")
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// --- preserving unknown members -------------------------------------------

type serviceFields Service

type constraintFields Constraint

var (
	serviceKeys    = sync.OnceValue(func() map[string]bool { return jsonKeys(reflect.TypeFor[serviceFields]()) })
	constraintKeys = sync.OnceValue(func() map[string]bool { return jsonKeys(reflect.TypeFor[constraintFields]()) })
)

// jsonKeys returns the JSON member names of a struct's fields.
func jsonKeys(t reflect.Type) map[string]bool {
	keys := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		keys[name] = true
	}
	return keys
}

// UnmarshalJSON decodes a service, keeping unknown members in Extra and
// dropping any cached configuration schema.
func (s *Service) UnmarshalJSON(b []byte) error {
	extra, err := unmarshalExtra(b, (*serviceFields)(s), serviceKeys())
	if err != nil {
		return err
	}
	s.Extra = extra
	s.cfg = configCache{}
	return nil
}

// MarshalJSON encodes a service with its Extra members after the known
// ones. Extra members whose names are known fields are ignored.
func (s *Service) MarshalJSON() ([]byte, error) {
	return marshalExtra((*serviceFields)(s), s.Extra, serviceKeys())
}

// UnmarshalJSON decodes a constraint, keeping unknown members in Extra.
func (c *Constraint) UnmarshalJSON(b []byte) error {
	extra, err := unmarshalExtra(b, (*constraintFields)(c), constraintKeys())
	if err != nil {
		return err
	}
	c.Extra = extra
	return nil
}

// MarshalJSON encodes a constraint with its Extra members.
func (c Constraint) MarshalJSON() ([]byte, error) {
	return marshalExtra((*constraintFields)(&c), c.Extra, constraintKeys())
}

func unmarshalExtra(b []byte, into any, known map[string]bool) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(b, into); err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k := range all {
		if known[k] {
			delete(all, k)
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	return all, nil
}

func marshalExtra(v any, extra map[string]json.RawMessage, known map[string]bool) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !known[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := b[:len(b)-1] // drop '}'
	for _, k := range keys {
		raw := extra[k]
		if !json.Valid(raw) {
			return nil, fmt.Errorf("catalogschema: extra member %q is not valid JSON", k)
		}
		kb, _ := json.Marshal(k)
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, kb...)
		out = append(out, ':')
		out = append(out, raw...)
	}
	return append(out, '}'), nil
}

func isUpper3(s string) bool {
	return len(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z'
}
