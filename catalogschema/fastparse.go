package catalogschema

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The fast path of ParseCatalog.
//
// catalogDecoder reads a catalog in one pass over the bytes: it enforces
// the depth and string-length limits, rejects duplicate member names and
// malformed JSON, decodes straight into the Go types and checks every
// keyword of schemas/catalog.json as it goes. It is an accelerator, not a
// second contract: a document it does not accept in full (any limit,
// syntax error, duplicate, schema or semantic violation) is handed to the
// reference path (precheck, generic decode, the JSON Schema validator,
// typed decode, semantic rules), which produces the error. So errors are
// exactly those of the schema validator, and the fast path only has to be
// exact on what it accepts. TestFastPathAgreesWithSchema and
// FuzzCatalogFastPath hold the two paths to the same verdict.

// fastAbort stops the fast decoder; the reference path takes over.
type fastAbort struct{}

// pathTok is one token of the pointer of the value being decoded.
type pathTok struct {
	key   string
	idx   int
	isIdx bool
}

type catalogDecoder struct {
	data  []byte
	i     int
	l     Limits
	depth int
	path  []pathTok
	// schema holds violations of schemas/catalog.json; other holds those
	// of the rules the schema cannot express (integer literals, dates).
	schema, other []Violation
}

// fastCatalog decodes and validates data on the fast path. ok is false
// when the document must go to the reference path.
func fastCatalog(data []byte, l Limits) (c *Catalog, ok bool) {
	d, c, ok := decodeCatalogFast(data, l)
	if !ok || len(d.schema) > 0 || len(d.other) > 0 {
		return nil, false
	}
	if len(c.Services) > l.MaxServices {
		return nil, false
	}
	if vs := c.semanticTyped(); len(vs) > 0 {
		return nil, false
	}
	if vs := c.rawRemoteRefs(); len(vs) > 0 {
		return nil, false
	}
	return c, true
}

// decodeCatalogFast runs the decoder. ok is false on a limit, syntax or
// duplicate-name error; otherwise d holds the violations found.
func decodeCatalogFast(data []byte, l Limits) (d *catalogDecoder, c *Catalog, ok bool) {
	if int64(len(data)) > l.MaxBytes {
		return nil, nil, false
	}
	d = &catalogDecoder{data: data, l: l, path: make([]pathTok, 0, 8)}
	c = new(Catalog)
	defer func() {
		if r := recover(); r != nil {
			if _, is := r.(fastAbort); !is {
				panic(r)
			}
			ok = false
		}
	}()
	d.ws()
	d.catalog(c)
	d.ws()
	if d.i != len(d.data) {
		d.abort()
	}
	return d, c, true
}

func (d *catalogDecoder) abort() { panic(fastAbort{}) }

// --- pointers and violations ---------------------------------------------

func (d *catalogDecoder) pointer() string {
	toks := make([]string, len(d.path))
	for i, t := range d.path {
		if t.isIdx {
			toks[i] = strconv.Itoa(t.idx)
		} else {
			toks[i] = escapePointer(t.key)
		}
	}
	return joinPointer(toks)
}

func (d *catalogDecoder) fail(msg string) {
	d.schema = append(d.schema, Violation{Pointer: d.pointer(), Message: msg})
}

func (d *catalogDecoder) failAt(member, msg string) {
	d.schema = append(d.schema, Violation{Pointer: ptr(d.pointer(), member), Message: msg})
}

func (d *catalogDecoder) push(key string) { d.path = append(d.path, pathTok{key: key}) }
func (d *catalogDecoder) pushIdx(i int)   { d.path = append(d.path, pathTok{idx: i, isIdx: true}) }
func (d *catalogDecoder) pop()            { d.path = d.path[:len(d.path)-1] }

// --- lexing ----------------------------------------------------------------

func (d *catalogDecoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the first byte of the next value, after white space.
func (d *catalogDecoder) peek() byte {
	d.ws()
	if d.i >= len(d.data) {
		d.abort()
	}
	return d.data[d.i]
}

func (d *catalogDecoder) enter() {
	d.depth++
	if d.depth > d.l.MaxDepth {
		d.abort()
	}
}

// rawString scans the string at d.i and returns its encoded bytes with
// the quotes, and whether it holds escapes or non-ASCII bytes.
func (d *catalogDecoder) rawString() (raw []byte, complex bool) {
	start := d.i
	d.i++ // '"'
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			if d.i-start-1 > d.l.MaxStringLen {
				d.abort()
			}
			d.i++
			return d.data[start:d.i], complex
		case c == '\\':
			complex = true
			if d.i+1 >= len(d.data) {
				d.abort()
			}
			switch d.data[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.data) {
					d.abort()
				}
				for _, h := range d.data[d.i+2 : d.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						d.abort()
					}
				}
				d.i += 6
			default:
				d.abort()
			}
		case c < 0x20:
			d.abort()
		default:
			if c >= 0x80 {
				complex = true
			}
			d.i++
		}
	}
	d.abort()
	return nil, false
}

// str reads a string value, decoded as encoding/json does.
func (d *catalogDecoder) str() string {
	raw, complex := d.rawString()
	return unquote(raw, complex)
}

func unquote(raw []byte, complex bool) string {
	body := raw[1 : len(raw)-1]
	if !complex || (bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body)) {
		return string(body)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		panic(fastAbort{})
	}
	return s
}

func (d *catalogDecoder) literal(lit string) {
	if !bytes.HasPrefix(d.data[d.i:], []byte(lit)) {
		d.abort()
	}
	d.i += len(lit)
}

// number scans a JSON number and returns its bytes.
func (d *catalogDecoder) number() []byte {
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.data) && d.data[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.data) && d.data[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		d.abort()
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if digits() == 0 {
			d.abort()
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			d.abort()
		}
		if hugeExponent(string(d.data[start:d.i])) {
			d.abort() // the reference path reports it
		}
	}
	return d.data[start:d.i]
}

// skip validates and skips any value, checking limits and duplicate names
// inside it, and returns its bytes.
func (d *catalogDecoder) skip() []byte {
	c := d.peek()
	start := d.i
	switch {
	case c == '{':
		d.object(func(string) { d.skip() })
	case c == '[':
		d.array(func(int) { d.skip() })
	case c == '"':
		d.rawString()
	case c == 't':
		d.literal("true")
	case c == 'f':
		d.literal("false")
	case c == 'n':
		d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		d.number()
	default:
		d.abort()
	}
	return d.data[start:d.i]
}

// object reads an object, calling member for each member with d.i at its
// value; member must consume the value. Duplicate names abort.
func (d *catalogDecoder) object(member func(name string)) {
	d.enter()
	d.i++ // '{'
	var small [16]string
	seen := small[:0]
	var many map[string]struct{}
	if d.peek() == '}' {
		d.i++
		d.depth--
		return
	}
	for {
		if d.peek() != '"' {
			d.abort()
		}
		name := d.str()
		if many != nil {
			if _, dup := many[name]; dup {
				d.abort()
			}
			many[name] = struct{}{}
		} else {
			for _, s := range seen {
				if s == name {
					d.abort()
				}
			}
			seen = append(seen, name)
			if len(seen) == len(small) {
				many = make(map[string]struct{}, 2*len(small))
				for _, s := range seen {
					many[s] = struct{}{}
				}
			}
		}
		if d.peek() != ':' {
			d.abort()
		}
		d.i++
		d.ws()
		member(name)
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return
		default:
			d.abort()
		}
	}
}

// array reads an array, calling elem for each element.
func (d *catalogDecoder) array(elem func(i int)) {
	d.enter()
	d.i++ // '['
	if d.peek() == ']' {
		d.i++
		d.depth--
		return
	}
	for n := 0; ; n++ {
		d.ws()
		elem(n)
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return
		default:
			d.abort()
		}
	}
}

// jsonType names the type of the next value as the schema validator does.
func (d *catalogDecoder) jsonType() string {
	switch c := d.peek(); {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	}
	return "number"
}

// expect reports a type violation and skips the value unless the next
// value has one of the given types.
func (d *catalogDecoder) expect(types ...string) bool {
	t := d.jsonType()
	for _, want := range types {
		if t == want {
			return true
		}
	}
	d.fail("expected " + types[0] + ", but got " + t)
	d.skip()
	return false
}

// --- typed values ----------------------------------------------------------

// stringVal reads a string member; check, if not nil, returns a violation
// message for a bad value.
func (d *catalogDecoder) stringVal(p *string, check func(string) string) {
	if !d.expect("string") {
		return
	}
	*p = d.str()
	if check != nil {
		if msg := check(*p); msg != "" {
			d.fail(msg)
		}
	}
}

func (d *catalogDecoder) nullableString(p **string) {
	if !d.expect("string", "null") {
		return
	}
	if d.data[d.i] == 'n' {
		d.literal("null")
		*p = nil
		return
	}
	s := d.str()
	*p = &s
}

func (d *catalogDecoder) boolVal(nullable bool) *bool {
	types := []string{"boolean"}
	if nullable {
		types = append(types, "null")
	}
	if !d.expect(types...) {
		return nil
	}
	switch d.data[d.i] {
	case 'n':
		d.literal("null")
		return nil
	case 't':
		d.literal("true")
		v := true
		return &v
	}
	d.literal("false")
	v := false
	return &v
}

func (d *catalogDecoder) stringList(p *[]string) {
	if !d.expect("array") {
		return
	}
	out := []string{}
	d.array(func(i int) {
		d.pushIdx(i)
		var s string
		d.stringVal(&s, nil)
		out = append(out, s)
		d.pop()
	})
	*p = out
}

// raw reads a value of one of types verbatim, as json.RawMessage would.
func (d *catalogDecoder) raw(p *json.RawMessage, types ...string) {
	if !d.expect(types...) {
		return
	}
	b := d.skip()
	*p = append(json.RawMessage(nil), b...)
}

// integer reads an integer member with a lower bound. Values the schema
// accepts as integers but Go cannot hold are reported in d.other, like
// integerViolations does.
func (d *catalogDecoder) integer(p *int64, min int64) {
	if !d.expect("integer", "number") {
		return
	}
	num := d.number()
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err == nil {
		*p = n
		if n < min {
			d.fail("must be >= " + strconv.FormatInt(min, 10))
		}
		return
	}
	r, ok := new(big.Rat).SetString(string(num))
	if !ok || !r.IsInt() {
		d.fail("expected integer, but got number")
		return
	}
	if r.Cmp(new(big.Rat).SetInt64(min)) < 0 {
		d.fail("must be >= " + strconv.FormatInt(min, 10))
	}
	d.other = append(d.other, Violation{Pointer: d.pointer(), Message: "not an integer literal within int64"})
}

func (d *catalogDecoder) enumVal(p *string, values ...string) {
	if d.jsonType() != "string" {
		d.fail("value must be one of the enumeration")
		d.skip()
		return
	}
	*p = d.str()
	for _, v := range values {
		if *p == v {
			return
		}
	}
	d.fail("value must be one of the enumeration")
}

// required reports the names in want that were not seen.
func (d *catalogDecoder) required(seen map[string]bool, want ...string) {
	for _, w := range want {
		if !seen[w] {
			d.failAt(w, "required member is missing")
		}
	}
}

// members decodes an object of the schema: each member goes to fn, which
// returns false for a name it does not know (then skipped, or kept by
// unknown when not nil). It reports the missing required members.
func (d *catalogDecoder) members(fn func(name string) bool, unknown func(name string, raw []byte), required ...string) {
	var seen map[string]bool
	if len(required) > 0 {
		seen = make(map[string]bool, len(required))
	}
	d.object(func(name string) {
		d.push(name)
		if fn(name) {
			if seen != nil {
				seen[name] = true
			}
		} else {
			raw := d.skip()
			if unknown != nil {
				unknown(name, raw)
			}
		}
		d.pop()
	})
	d.required(seen, required...)
}

// --- documents -------------------------------------------------------------

func (d *catalogDecoder) catalog(c *Catalog) {
	if !d.expect("object") {
		return
	}
	d.members(func(name string) bool {
		switch name {
		case "protocol_version":
			d.stringVal(&c.ProtocolVersion, checkPattern(matchProtocolVersion))
		case "provider_id":
			d.stringVal(&c.ProviderID, checkPattern(ValidProviderID))
		case "provider_name":
			d.stringVal(&c.ProviderName, checkLength(1, 200))
		case "updated_at":
			if !d.expect("string") {
				return true
			}
			raw, complex := d.rawString()
			s := unquote(raw, complex)
			if !jsonschema.Formats["date-time"](s) {
				d.fail("'" + s + "' is not valid 'date-time'")
			} else if err := c.UpdatedAt.UnmarshalJSON(raw); err != nil {
				d.other = append(d.other, Violation{Pointer: "/updated_at", Message: "must be an RFC 3339 date-time"})
			}
		case "services":
			if !d.expect("array") {
				return true
			}
			c.Services = []*Service{}
			d.array(func(i int) {
				d.pushIdx(i)
				if d.jsonType() == "object" {
					s := new(Service)
					d.service(s)
					c.Services = append(c.Services, s)
				} else {
					d.expect("object")
					c.Services = append(c.Services, nil)
				}
				d.pop()
			})
		case "source":
			if !d.expect("object") {
				return true
			}
			c.Source = new(Source)
			d.members(func(name string) bool {
				switch name {
				case "kind":
					d.stringVal(&c.Source.Kind, checkLength(1, -1))
				case "provider_id":
					d.stringVal(&c.Source.ProviderID, nil)
				case "last_updated":
					d.stringVal(&c.Source.LastUpdated, nil)
				default:
					return false
				}
				return true
			}, nil, "kind")
		default:
			return false
		}
		return true
	}, nil, "protocol_version", "provider_id", "provider_name", "updated_at", "services")
}

func (d *catalogDecoder) service(s *Service) {
	d.members(func(name string) bool {
		switch name {
		case "id":
			d.stringVal(&s.ID, nil)
		case "object":
			d.stringVal(&s.Object, nil)
		case "service_id":
			d.stringVal(&s.ServiceID, checkPattern(ValidServiceID))
		case "provider_id":
			d.stringVal(&s.ProviderID, nil)
		case "provider_name":
			d.stringVal(&s.ProviderName, nil)
		case "description":
			d.stringVal(&s.Description, checkLength(0, 4096))
		case "kind":
			d.enumVal((*string)(&s.Kind), string(KindPlan), string(KindDeployable))
		case "scope":
			d.enumVal((*string)(&s.Scope), string(ScopeAccount), string(ScopeProject))
		case "availability":
			d.stringVal(&s.Availability, checkPattern(matchAvailability))
		case "categories":
			d.stringList(&s.Categories)
		case "group":
			d.nullableString(&s.Group)
		case "llm_context":
			d.nullableString(&s.LLMContext)
		case "development":
			s.Development = d.boolVal(false)
		case "livemode":
			s.Livemode = d.boolVal(false)
		case "created":
			d.rawCreated(s)
		case "configuration_schema":
			d.raw(&s.ConfigurationSchema, "object", "boolean", "null")
		case "provider_configuration_schema":
			d.raw(&s.ProviderConfigurationSchema, "object", "boolean", "null")
		case "allowed_updates":
			if !d.expect("array") {
				return true
			}
			s.AllowedUpdates = []AllowedUpdate{}
			d.array(func(i int) {
				d.pushIdx(i)
				var u AllowedUpdate
				if d.expect("object") {
					d.members(func(name string) bool {
						switch name {
						case "direction":
							d.enumVal(&u.Direction, "any", "up", "down")
						case "service":
							d.stringVal(&u.Service, checkLength(1, -1))
						default:
							return false
						}
						return true
					}, nil, "direction", "service")
				}
				s.AllowedUpdates = append(s.AllowedUpdates, u)
				d.pop()
			})
		case "updateable_to":
			d.stringList(&s.UpdateableTo)
		case "constraints":
			if !d.expect("array") {
				return true
			}
			s.Constraints = []Constraint{}
			d.array(func(i int) {
				d.pushIdx(i)
				var c Constraint
				if d.expect("object") {
					d.constraint(&c)
				}
				s.Constraints = append(s.Constraints, c)
				d.pop()
			})
		case "pricing":
			if d.expect("object") {
				d.pricing(&s.Pricing)
			}
		case "prices":
			if !d.expect("array") {
				return true
			}
			s.Prices = []Price{}
			d.array(func(i int) {
				d.pushIdx(i)
				var p Price
				if d.expect("object") {
					d.price(&p)
				}
				s.Prices = append(s.Prices, p)
				d.pop()
			})
			if len(s.Prices) > 64 {
				d.fail("maximum 64 items required")
			}
		default:
			return false
		}
		return true
	}, func(name string, raw []byte) {
		if s.Extra == nil {
			s.Extra = make(map[string]json.RawMessage)
		}
		s.Extra[name] = append(json.RawMessage(nil), raw...)
	}, "service_id", "description", "kind", "scope", "pricing")
}

// rawCreated keeps created (a string, an integer or null) verbatim.
func (d *catalogDecoder) rawCreated(s *Service) {
	if d.jsonType() == "number" {
		start := d.i
		num := d.number()
		if _, err := strconv.ParseInt(string(num), 10, 64); err != nil {
			r, ok := new(big.Rat).SetString(string(num))
			if !ok || !r.IsInt() {
				d.fail("expected string or integer or null, but got number")
			}
		}
		s.Created = append(json.RawMessage(nil), d.data[start:d.i]...)
		return
	}
	d.raw(&s.Created, "string", "null")
}

func (d *catalogDecoder) constraint(c *Constraint) {
	d.members(func(name string) bool {
		switch name {
		case "type":
			d.stringVal(&c.Type, checkLength(1, -1))
		case "count":
			if !d.expect("object") {
				return true
			}
			c.Count = new(CountConstraint)
			d.members(func(name string) bool {
				if name != "at_most" {
					return false
				}
				var n int64
				d.integer(&n, 0)
				c.Count.AtMost = &n
				return true
			}, nil)
		case "mutual_exclusion_allowed_updates":
			c.MutualExclusionAllowedUpdates = d.boolVal(false)
		default:
			return false
		}
		return true
	}, func(name string, raw []byte) {
		if c.Extra == nil {
			c.Extra = make(map[string]json.RawMessage)
		}
		c.Extra[name] = append(json.RawMessage(nil), raw...)
	}, "type")
}

// paid reads a $defs/paid value (an object or null).
func (d *catalogDecoder) paid() *PaidPricing {
	if !d.expect("object", "null") {
		return nil
	}
	if d.data[d.i] == 'n' {
		d.literal("null")
		return nil
	}
	p := new(PaidPricing)
	d.members(func(name string) bool {
		switch name {
		case "type":
			d.stringVal(&p.Type, checkLength(1, -1))
		case "freeform":
			d.nullableString(&p.Freeform)
		case "description":
			d.nullableString(&p.Description)
		default:
			return false
		}
		return true
	}, nil, "type")
	return p
}

func (d *catalogDecoder) pricing(p *Pricing) {
	d.members(func(name string) bool {
		switch name {
		case "type":
			d.enumVal((*string)(&p.Type), string(PricingFree), string(PricingPaid), string(PricingComponent))
		case "paid":
			p.Paid = d.paid()
		case "paid_pricing":
			if !d.expect("array") {
				return true
			}
			p.PaidPricing = []PricingOption{}
			d.array(func(i int) {
				d.pushIdx(i)
				var o PricingOption
				if d.expect("object") {
					d.members(func(name string) bool {
						switch name {
						case "type":
							d.stringVal(&o.Type, checkLength(1, -1))
						case "freeform":
							d.nullableString(&o.Freeform)
						case "description":
							d.nullableString(&o.Description)
						case "is_default":
							o.IsDefault = d.boolVal(true)
						case "configuration":
							d.raw(&o.Configuration, "object", "null")
						default:
							return false
						}
						return true
					}, nil, "type")
				}
				p.PaidPricing = append(p.PaidPricing, o)
				d.pop()
			})
		case "component":
			if !d.expect("object", "null") {
				return true
			}
			if d.data[d.i] == 'n' {
				d.literal("null")
				p.Component = nil
				return true
			}
			p.Component = new(ComponentPricing)
			d.members(func(name string) bool {
				if name != "options" {
					return false
				}
				if !d.expect("array") {
					return true
				}
				p.Component.Options = []ComponentOption{}
				d.array(func(i int) {
					d.pushIdx(i)
					var o ComponentOption
					if d.expect("object") {
						d.members(func(name string) bool {
							switch name {
							case "type":
								d.stringVal(&o.Type, checkLength(1, -1))
							case "is_default":
								o.IsDefault = d.boolVal(true)
							case "paid":
								o.Paid = d.paid()
							case "parent_services":
								d.stringList(&o.ParentServices)
							default:
								return false
							}
							return true
						}, nil, "type")
					}
					p.Component.Options = append(p.Component.Options, o)
					d.pop()
				})
				return true
			}, nil)
		default:
			return false
		}
		return true
	}, nil, "type")
}

func (d *catalogDecoder) price(p *Price) {
	d.members(func(name string) bool {
		switch name {
		case "amount":
			d.integer(&p.Amount, 0)
		case "currency":
			d.stringVal(&p.Currency, checkPattern(isUpper3))
		case "basis":
			d.enumVal((*string)(&p.Basis), string(BasisOneTime), string(BasisMonthly), string(BasisYearly), string(BasisMetered))
		case "unit":
			d.stringVal(&p.Unit, checkPattern(matchUnit))
		case "per_units":
			d.integer(&p.PerUnits, 1)
		case "max_amount":
			var n int64
			d.integer(&n, 0)
			p.MaxAmount = &n
		case "description":
			d.stringVal(&p.Description, checkLength(0, 1024))
		default:
			return false
		}
		return true
	}, nil, "amount", "currency", "basis")
}

// --- keyword checks --------------------------------------------------------

func checkPattern(match func(string) bool) func(string) string {
	return func(s string) string {
		if !match(s) {
			return "does not match pattern"
		}
		return ""
	}
}

// checkLength bounds the length in code points; max < 0 means none.
func checkLength(min, max int) func(string) string {
	return func(s string) string {
		n := utf8.RuneCountInString(s)
		if n < min {
			return "length must be >= " + strconv.Itoa(min)
		}
		if max >= 0 && n > max {
			return "length must be <= " + strconv.Itoa(max)
		}
		return ""
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// matchProtocolVersion: ^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$
func matchProtocolVersion(s string) bool {
	part := func(p string) bool {
		if p == "0" {
			return true
		}
		if len(p) < 1 || len(p) > 4 || p[0] < '1' || p[0] > '9' {
			return false
		}
		for i := 1; i < len(p); i++ {
			if !isDigit(p[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return part(s[:i]) && part(s[i+1:])
		}
	}
	return false
}

// matchAvailability: ^[a-z][a-z0-9_]*$
func matchAvailability(s string) bool {
	if s == "" || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// matchUnit: ^[a-z][a-z0-9_.-]{0,63}$
func matchUnit(s string) bool {
	if s == "" || len(s) > 64 || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// rawRemoteRefs finds remote references in configuration schemas from
// their raw bytes; only a schema that could hold one is decoded.
func (c *Catalog) rawRemoteRefs() []Violation {
	var vs []Violation
	for i, s := range c.Services {
		if s == nil {
			continue
		}
		for _, f := range []struct {
			k   string
			raw json.RawMessage
		}{{"configuration_schema", s.ConfigurationSchema}, {"provider_configuration_schema", s.ProviderConfigurationSchema}} {
			if len(f.raw) == 0 || !bytes.Contains(f.raw, []byte("ef")) && bytes.IndexByte(f.raw, '\\') < 0 {
				continue
			}
			v, err := decodeGeneric(f.raw)
			if err != nil {
				vs = append(vs, Violation{Pointer: ptr("/services", strconv.Itoa(i), f.k), Message: err.Error()})
				continue
			}
			remoteRefs(ptr("/services", strconv.Itoa(i), f.k), v, &vs)
		}
	}
	return vs
}
