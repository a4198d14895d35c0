package catalogschema

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SourceStripeProjects is the Source.Kind of imported Stripe catalogs.
const SourceStripeProjects = "stripe_projects"

// stripeEnvelope is the output of `stripe projects catalog --json`.
type stripeEnvelope struct {
	OK   *bool `json:"ok"`
	Data *struct {
		LastUpdated string            `json:"last_updated"`
		Services    []json.RawMessage `json:"services"`
	} `json:"data"`
}

// ImportStripeProjects converts the JSON output of `stripe projects catalog
// --json` into one Catalog per provider, in order of first appearance.
//
// The protocol provider id is slugged from provider_name ("Laravel_Cloud" →
// "laravel-cloud", "WordPress.com" → "wordpress-com"), with a numeric suffix
// if two Stripe providers would collide; the Stripe ids stay in
// Service.ProviderID, Service.ID and Catalog.Source. Every member of every
// service is kept, unknown ones in Service.Extra. UpdatedAt is the
// capture's last_updated in UTC.
//
// The input is bounded by lim like ParseCatalog (MaxServices applies to the
// whole capture). Each resulting catalog is validated; violations are
// reported in one *ValidationError with pointers into the input document.
func ImportStripeProjects(data []byte, lim *Limits) ([]*Catalog, error) {
	l := lim.resolved()
	if _, err := decodeChecked(data, l, docStripe); err != nil {
		return nil, err
	}
	var env stripeEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, &ValidationError{Document: docStripe, Violations: []Violation{{Message: err.Error()}}}
	}
	fail := func(p, msg string) error {
		return &ValidationError{Document: docStripe, Violations: []Violation{{Pointer: p, Message: msg}}}
	}
	if env.OK != nil && !*env.OK {
		return nil, fail("/ok", "the capture reports a failed command")
	}
	if env.Data == nil || env.Data.Services == nil {
		return nil, fail("/data/services", "required member is missing")
	}
	if n := len(env.Data.Services); n > l.MaxServices {
		return nil, &LimitError{Limit: LimitServices, Max: int64(l.MaxServices), Got: int64(n)}
	}
	updated, err := time.Parse(time.RFC3339Nano, env.Data.LastUpdated)
	if err != nil {
		return nil, fail("/data/last_updated", "must be an RFC 3339 timestamp")
	}
	updated = updated.UTC()

	var (
		catalogs  []*Catalog
		byStripe  = map[string]int{} // Stripe provider id (or name) → catalogs index
		usedSlugs = map[string]bool{}
		origins   = map[origin]int{} // (catalog, service index) → index in the capture
		vs        []Violation
	)
	for i, raw := range env.Data.Services {
		s := new(Service)
		if err := json.Unmarshal(raw, s); err != nil {
			vs = append(vs, Violation{Pointer: ptr("/data/services", strconv.Itoa(i)), Message: err.Error()})
			continue
		}
		key := s.ProviderID
		if key == "" {
			key = "name:" + s.ProviderName
		}
		ci, ok := byStripe[key]
		if !ok {
			slug := Slug(s.ProviderName)
			if slug == "" {
				slug = Slug(s.ProviderID)
			}
			if slug == "" {
				vs = append(vs, Violation{Pointer: ptr("/data/services", strconv.Itoa(i), "provider_name"), Message: "no provider id can be derived from it"})
				continue
			}
			base := slug
			for n := 2; usedSlugs[slug]; n++ {
				slug = fmt.Sprintf("%s-%d", strings.TrimRight(base[:min(len(base), 60)], "-"), n)
			}
			usedSlugs[slug] = true
			ci = len(catalogs)
			byStripe[key] = ci
			catalogs = append(catalogs, &Catalog{
				ProtocolVersion: ProtocolVersion,
				ProviderID:      slug,
				ProviderName:    s.ProviderName,
				UpdatedAt:       updated,
				Services:        []*Service{},
				Source:          &Source{Kind: SourceStripeProjects, ProviderID: s.ProviderID, LastUpdated: env.Data.LastUpdated},
			})
		}
		c := catalogs[ci]
		origins[origin{ci, len(c.Services)}] = i
		c.Services = append(c.Services, s)
	}
	for ci, c := range catalogs {
		err := c.Validate()
		if err == nil {
			continue
		}
		ve, ok := err.(*ValidationError)
		if !ok {
			return nil, err
		}
		for _, v := range ve.Violations {
			vs = append(vs, Violation{Pointer: stripePointer(v.Pointer, ci, origins), Message: v.Message})
		}
	}
	if len(vs) > 0 {
		return nil, &ValidationError{Document: docStripe, Violations: sortViolations(vs)}
	}
	return catalogs, nil
}

// origin locates a service in the imported catalogs.
type origin struct{ catalog, index int }

// stripePointer maps a pointer into an imported catalog back to the input.
func stripePointer(p string, ci int, origins map[origin]int) string {
	rest, ok := strings.CutPrefix(p, "/services/")
	if !ok {
		return "/data" // a catalog-level member derived from the envelope
	}
	num, tail, _ := strings.Cut(rest, "/")
	n, err := strconv.Atoi(num)
	if err != nil {
		return "/data/services"
	}
	out := "/data/services/" + strconv.Itoa(origins[origin{ci, n}])
	if tail != "" {
		out += "/" + tail
	}
	return out
}

// Slug turns a display name into a provider id (§2.5): lower case, runs
// of other characters replaced by one '-', trimmed, at most 64 bytes. It
// returns "" when nothing usable is left.
func Slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
		if b.Len() >= 64 {
			break
		}
	}
	s := b.String()
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.TrimRight(s, "-")
}
