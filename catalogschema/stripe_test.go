package catalogschema_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/google/go-cmp/cmp"
)

func TestImportStripeProjects(t *testing.T) {
	data := stripeFixture(t)
	catalogs, err := catalogschema.ImportStripeProjects(data, nil)
	if err != nil {
		t.Fatalf("ImportStripeProjects: %v", err)
	}
	var orig struct {
		Data struct {
			Services []map[string]any `json:"services"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &orig); err != nil {
		t.Fatal(err)
	}
	if got, want := len(catalogs), 48; got != want {
		t.Errorf("got %d catalogs, want %d", got, want)
	}
	var imported []*catalogschema.Service
	slugs := map[string]bool{}
	for _, c := range catalogs {
		if err := c.Validate(); err != nil {
			t.Errorf("catalog %s: Validate: %v", c.ProviderID, err)
		}
		if slugs[c.ProviderID] {
			t.Errorf("provider id %s used twice", c.ProviderID)
		}
		slugs[c.ProviderID] = true
		if c.Source == nil || c.Source.Kind != catalogschema.SourceStripeProjects || c.Source.ProviderID == "" {
			t.Errorf("catalog %s: source not recorded: %+v", c.ProviderID, c.Source)
		}
		for _, s := range c.Services {
			if s.ProviderName != c.ProviderName || s.ProviderID != c.Source.ProviderID {
				t.Errorf("service %s/%s filed under the wrong provider", c.ProviderID, s.ServiceID)
			}
			imported = append(imported, s)
		}
	}
	if got, want := len(imported), 161; got != want {
		t.Fatalf("got %d services, want %d", got, want)
	}
	if len(orig.Data.Services) != 161 {
		t.Fatalf("fixture has %d services", len(orig.Data.Services))
	}
	// No field lost: every imported service re-encodes to its original JSON.
	byID := map[string]map[string]any{}
	for _, s := range orig.Data.Services {
		byID[s["id"].(string)] = s
	}
	for _, s := range imported {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(byID[s.ID], got); diff != "" {
			t.Errorf("service %s changed on import (-orig +reencoded):\n%s", s.ID, diff)
		}
	}
	for _, want := range []string{"cloudflare", "laravel-cloud", "wordpress-com", "base44-projects", "kernel"} {
		if !slugs[want] {
			t.Errorf("no catalog with provider id %q", want)
		}
	}
}

func TestImportStripeProjectsErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		is   error
		ptrs []string
	}{
		{"malformed", `{"data":`, catalogschema.ErrSyntax, nil},
		{"failed command", `{"ok":false,"data":{"last_updated":"2026-01-01T00:00:00Z","services":[]}}`, catalogschema.ErrInvalid, []string{"/ok"}},
		{"no services", `{"ok":true,"data":{"last_updated":"2026-01-01T00:00:00Z"}}`, catalogschema.ErrInvalid, []string{"/data/services"}},
		{"bad time", `{"ok":true,"data":{"last_updated":"yesterday","services":[]}}`, catalogschema.ErrInvalid, []string{"/data/last_updated"}},
		{"bad service", `{"ok":true,"data":{"last_updated":"2026-01-01T00:00:00Z","services":[
			{"provider_id":"prvdr_1","provider_name":"Acme","service_id":"ok","description":"","kind":"plan","scope":"project","pricing":{"type":"free","component":null,"paid":null}},
			{"provider_id":"prvdr_1","provider_name":"Acme","service_id":"Bad Id","description":"","kind":"plan","scope":"nowhere","pricing":{"type":"free","component":null,"paid":null}}]}}`,
			catalogschema.ErrInvalid, []string{"/data/services/1/scope", "/data/services/1/service_id"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalogschema.ImportStripeProjects([]byte(tc.in), nil)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			if tc.ptrs != nil {
				var ve *catalogschema.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("not a ValidationError: %v", err)
				}
				if diff := cmp.Diff(tc.ptrs, ve.Pointers()); diff != "" {
					t.Errorf("pointers (-want +got):\n%s\n%v", diff, err)
				}
			}
		})
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Cloudflare": "cloudflare", "Laravel_Cloud": "laravel-cloud", "WordPress.com": "wordpress-com",
		"  --Fly.io--  ": "fly-io", "KERNEL": "kernel", "ÜberCloud": "bercloud", "---": "",
	} {
		if got := catalogschema.Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImportStripeProjectsSlugCollision(t *testing.T) {
	svc := func(prv, name, id string) string {
		return `{"id":"prvsvc_` + id + `","provider_id":"` + prv + `","provider_name":"` + name + `","service_id":"` + id +
			`","description":"","kind":"plan","scope":"project","pricing":{"type":"free","component":null,"paid":null},"x_later":[1]}`
	}
	in := `{"ok":true,"data":{"last_updated":"2026-06-13T05:14:18.070+02:00","services":[` +
		svc("prvdr_a", "Fly.io", "a") + "," + svc("prvdr_b", "Fly_io", "b") + "," + svc("prvdr_a", "Fly.io", "c") + `]}}`
	cs, err := catalogschema.ImportStripeProjects([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].ProviderID != "fly-io" || cs[1].ProviderID != "fly-io-2" || len(cs[0].Services) != 2 {
		t.Fatalf("catalogs: %+v", cs)
	}
	if got := cs[0].UpdatedAt.Format(time.RFC3339Nano); got != "2026-06-13T03:14:18.07Z" {
		t.Errorf("updated_at = %s", got)
	}
	if cs[0].Source.LastUpdated != "2026-06-13T05:14:18.070+02:00" {
		t.Errorf("source timestamp not verbatim: %s", cs[0].Source.LastUpdated)
	}
	if string(cs[1].Services[0].Extra["x_later"]) != "[1]" {
		t.Errorf("unknown member lost: %v", cs[1].Services[0].Extra)
	}
	if _, err := catalogschema.ImportStripeProjects([]byte(in), &catalogschema.Limits{MaxServices: 2}); !errors.Is(err, catalogschema.ErrTooManyServices) {
		t.Errorf("service limit: %v", err)
	}
}
