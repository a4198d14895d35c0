package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/budget"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
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
		t.Errorf("%s changed:\n got %s\nwant %s", name, got, want)
	}
}

// The documents the provider's API and the CLI's --json output carry.
func TestWireGolden(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	charged := budget.USD(1299)
	res := Resource{ID: "res_abc", Service: "registrar/registrar:domain", Name: "site", Project: "proj_1",
		AccountID: "acct_1", Config: json.RawMessage(`{"domain":"ada-builds.dev"}`), Status: "active",
		Charged: &charged, Env: map[string]string{"REGISTRAR_DOMAIN": "ada-builds.dev"}, CreatedAt: at}
	golden(t, "resource.json", res)
	conn := Connection{Provider: "cloud", Service: "cloud/compute:small", AccountID: "acct_2", LinkAction: "linked_existing",
		Scopes: []string{"deploy"}, Expiry: at.Add(30 * 24 * time.Hour),
		Device: &DeviceLink{Provider: "cloud", UserCode: "WDJB-MJHT", VerificationURI: "https://cloud.example/device", ExpiresIn: 600}}
	golden(t, "connection.json", conn)

	// And they read back unchanged.
	for name, v := range map[string]any{"resource.json": &Resource{}, "connection.json": &Connection{}} {
		b, _ := os.ReadFile(filepath.Join("testdata", name))
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// createHandlerFor returns the registrar's provisioning handler behind a
// fixed identity, as the bearer middleware would leave it.
func createHandlerFor(t testing.TB) (*Provider, http.Handler) {
	p, err := NewProvider(ProviderConfig{Profile: Registrar(), BaseURL: "http://127.0.0.1:1",
		OrchestratorIssuer: "http://127.0.0.1:2", RedemptionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	h := p.createHandler(p.profile.Service(ServiceDomain))
	id := &provision.Identity{AccountID: "acct_1", Service: "registrar/" + ServiceDomain, Project: "p"}
	return p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(provision.ContextWithIdentity(r.Context(), id)))
	})
}

// FuzzCreateBody sends arbitrary bodies to the provisioning handler: it
// never fails with a 5xx, and it records a resource only when it answers 201.
func FuzzCreateBody(f *testing.F) {
	for _, s := range []string{`{"name":"site","config":{"domain":"a.dev"}}`, `{}`, ``, `{"config":[1]}`,
		`{"config":{"domain":"x.dev","extra":1}}`, `{"name":` + strings.Repeat("[", 100)} {
		f.Add([]byte(s))
	}
	p, h := createHandlerFor(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		list, _ := p.resources.ByAccount(context.Background(), "acct_1")
		before := len(list)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/services/"+ServiceDomain, bytes.NewReader(body)))
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d for %q", rec.Code, body)
		}
		list, _ = p.resources.ByAccount(context.Background(), "acct_1")
		after := len(list)
		if grew := after > before; grew != (rec.Code == http.StatusCreated) {
			t.Fatalf("HTTP %d but resource recorded = %v", rec.Code, grew)
		}
	})
}
