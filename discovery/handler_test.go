package discovery

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/problem"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const goldenBase = "https://registrar.example"

func goldenHandler(t testing.TB) *Handler {
	t.Helper()
	cat := testCatalog("example", append([]*catalogschema.Service{domainService(1299)}, computeServices()...)...)
	h, err := NewHandler(testMeta("example", goldenBase, true), cat, &HandlerOptions{
		SigningKey: &jose.SigningKey{Algorithm: jose.EdDSA, Key: testKey("golden")},
		KeyID:      "golden-2026",
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://provider.test"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got %s\nwant %s", name, got, want)
	}
}

// TestGoldenVectors pins the bytes of every wire document the Handler
// serves. Ed25519 is deterministic, so the signed catalog is stable too.
func TestGoldenVectors(t *testing.T) {
	h := goldenHandler(t)
	for _, tc := range []struct{ path, file, ctype string }{
		{MetadataPath, "metadata.json", MediaTypeJSON},
		{"/catalog", "catalog.jws", MediaTypeJOSE},
		{DefaultJWKSPath, "jwks.json", MediaTypeJSON},
	} {
		w := do(h, "GET", tc.path)
		if w.Code != 200 || w.Header().Get("Content-Type") != tc.ctype {
			t.Fatalf("%s: %d %s", tc.path, w.Code, w.Header().Get("Content-Type"))
		}
		golden(t, tc.file, w.Body.Bytes())
	}
	// The golden JWS verifies with the golden JWKS and carries the golden catalog.
	jws, _ := os.ReadFile("testdata/catalog.jws")
	var set jose.JSONWebKeySet
	raw, _ := os.ReadFile("testdata/jwks.json")
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	cat, info, err := VerifyCatalog(jws, &set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.KeyID != "golden-2026" || info.Algorithm != "EdDSA" {
		t.Errorf("info = %+v", info)
	}
	want := testCatalog("example", append([]*catalogschema.Service{domainService(1299)}, computeServices()...)...)
	if d := cmp.Diff(want, cat, cmpopts.IgnoreUnexported(catalogschema.Service{})); d != "" {
		t.Errorf("catalog (-want +got):\n%s", d)
	}
	golden(t, "catalog.json", catalogJSON(t, cat))
	hdr, rest, _ := strings.Cut(string(jws), ".")
	payloadB64, _, _ := strings.Cut(rest, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(payloadB64)
	if plain, _ := os.ReadFile("testdata/catalog.json"); !bytes.Equal(payload, plain) {
		t.Errorf("JWS payload differs from testdata/catalog.json:\n%s", payload)
	}
	if hdr != "eyJhbGciOiJFZERTQSIsImtpZCI6ImdvbGRlbi0yMDI2IiwidHlwIjoiYWdlbnRwcm92LWNhdGFsb2crandzIn0" {
		t.Errorf("protected header = %s", hdr)
	}
	// The metadata golden parses.
	meta, _ := os.ReadFile("testdata/metadata.json")
	if _, err := parseMetadataResponse("example", "application/json; charset=utf-8", meta, nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatal("JWKS publishes a private key")
		}
	}
	if bytes.Contains(raw, []byte(`"d"`)) {
		t.Fatal("JWKS contains private key material")
	}
}

func TestHandlerCaching(t *testing.T) {
	h := goldenHandler(t)
	w := do(h, "GET", "/catalog")
	etag := w.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || w.Header().Get("Cache-Control") != "max-age=300" {
		t.Fatalf("headers: %v", w.Header())
	}
	for _, inm := range []string{etag, "W/" + etag, `"x", ` + etag, "*"} {
		w := do(h, "GET", "/catalog", "If-None-Match", inm)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d", inm, w.Code)
		}
	}
	if w := do(h, "GET", "/catalog", "If-None-Match", `"other"`); w.Code != 200 {
		t.Errorf("non-matching If-None-Match: %d", w.Code)
	}
	// HEAD: same headers, no body.
	hw := do(h, "HEAD", "/catalog")
	if hw.Code != 200 || hw.Body.Len() != 0 || hw.Header().Get("Content-Length") != w.Header().Get("Content-Length") || hw.Header().Get("ETag") != etag {
		t.Errorf("HEAD: %d %v", hw.Code, hw.Header())
	}
	// A new catalog version changes the ETag.
	if err := h.SetCatalog(testCatalog("example", domainService(1))); err != nil {
		t.Fatal(err)
	}
	if h.CatalogETag() == etag {
		t.Error("ETag unchanged after SetCatalog")
	}
	if w := do(h, "GET", "/catalog", "If-None-Match", etag); w.Code != 200 {
		t.Errorf("old ETag revalidated: %d", w.Code)
	}
	// A catalog of another provider is refused and the old one kept.
	cur := h.CatalogETag()
	if err := h.SetCatalog(testCatalog("other", domainService(1))); !errors.Is(err, ErrProviderMismatch) {
		t.Errorf("SetCatalog(other) = %v", err)
	}
	bad := testCatalog("example", domainService(1))
	bad.Services[0].Kind = "bogus"
	if err := h.SetCatalog(bad); !errors.Is(err, catalogschema.ErrInvalid) {
		t.Errorf("SetCatalog(invalid) = %v", err)
	}
	if h.CatalogETag() != cur {
		t.Error("failed SetCatalog replaced the catalog")
	}
}

func TestHandlerErrors(t *testing.T) {
	h := goldenHandler(t)
	for _, tc := range []struct {
		method, path string
		hdr          []string
		status       int
		code         string
	}{
		{"POST", "/catalog", nil, 405, "method_not_allowed"},
		{"DELETE", MetadataPath, nil, 405, "method_not_allowed"},
		{"GET", "/nope", nil, 404, "not_found"},
		{"GET", "/catalog", []string{VersionHeader, "1.0"}, 400, "unsupported_version"},
	} {
		w := do(h, tc.method, tc.path, tc.hdr...)
		if w.Code != tc.status || w.Header().Get("Content-Type") != problem.MediaType || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: %d %v", tc.method, tc.path, w.Code, w.Header())
		}
		if p := problem.Read(w.Body, 4096); p == nil || p.Code != tc.code {
			t.Errorf("%s %s: problem %+v, want code %s", tc.method, tc.path, p, tc.code)
		}
		if tc.status == 405 && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("Allow = %q", w.Header().Get("Allow"))
		}
	}
	if w := do(h, "GET", "/catalog", VersionHeader, "0.7"); w.Code != 200 {
		t.Errorf("minor version refused: %d", w.Code)
	}
}

func TestNewHandlerRejects(t *testing.T) {
	key := &jose.SigningKey{Algorithm: jose.EdDSA, Key: testKey("k")}
	cat := testCatalog("p", domainService(1))
	for name, tc := range map[string]struct {
		signed bool
		opts   *HandlerOptions
	}{
		"key but catalog_signing none": {false, &HandlerOptions{SigningKey: key, KeyID: "k"}},
		"jws but no key":               {true, nil},
		"no kid":                       {true, &HandlerOptions{SigningKey: key}},
		"HMAC":                         {true, &HandlerOptions{SigningKey: &jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, KeyID: "k"}},
		"both key and signer":          {true, &HandlerOptions{SigningKey: key, Signer: testKey("k"), KeyID: "k"}},
		"private extra key":            {false, &HandlerOptions{ExtraKeys: []jose.JSONWebKey{{Key: testKey("x"), KeyID: "x"}}}},
	} {
		if _, err := NewHandler(testMeta("p", "https://p.example", tc.signed), cat, tc.opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewHandler(testMeta("p", "https://p.example", false), testCatalog("q", domainService(1)), nil); !errors.Is(err, ErrProviderMismatch) {
		t.Errorf("mismatched catalog: %v", err)
	}
}

// TestCryptoSigner signs through go-jose's opaque signer (how a KMS key is
// used) with both allowed algorithms, and verifies end to end.
func TestCryptoSigner(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, s := range map[string]crypto.Signer{"Ed25519": testKey("kms"), "P-256": ec} {
		t.Run(name, func(t *testing.T) {
			f := newFarm(t)
			opts := HandlerOptions{BasePath: "/p", KeyID: "kms-1", Signer: s}
			h, err := NewHandler(testMeta("p", f.base("p"), true), testCatalog("p", domainService(5)), &opts)
			if err != nil {
				t.Fatal(err)
			}
			f.set("p", h)
			agg, _ := NewAggregator([]TrustedProvider{{ID: "p", BaseURL: f.base("p"), RequireSignature: true}}, nil)
			r := agg.Refresh(t.Context()).Result("p")
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			pc, _ := agg.Provider("p")
			if !pc.Snapshot.Signed() || pc.Snapshot.Signature.KeyID != "kms-1" {
				t.Fatalf("snapshot: %+v", pc.Snapshot)
			}
		})
	}
}

func TestHandlerOptionsRedacted(t *testing.T) {
	key := testKey("secret")
	o := &HandlerOptions{SigningKey: &jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, KeyID: "k1"}
	secret := base64.RawURLEncoding.EncodeToString(key.Seed())
	for _, s := range []string{fmt.Sprint(o), fmt.Sprintf("%v %+v %#v %s", o, *o, o, o)} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprint([]byte(key))) || !strings.Contains(s, "redacted") {
			t.Errorf("options print key material: %s", s)
		}
	}
}

func TestHandlerMaxAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "max-age=300"}, {time.Hour, "max-age=3600"}, {-1, "no-cache"}} {
		h, err := NewHandler(testMeta("p", "https://p.example", false), testCatalog("p", domainService(1)), &HandlerOptions{MaxAge: tc.d})
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{MetadataPath, "/catalog", DefaultJWKSPath} {
			w := do(h, "GET", path)
			if got := w.Header().Get("Cache-Control"); w.Code != 200 || got != tc.want {
				t.Errorf("MaxAge %v %s: %d %q, want %q", tc.d, path, w.Code, got, tc.want)
			}
		}
		if w := do(h, "GET", DefaultJWKSPath); strings.TrimSpace(w.Body.String()) != `{"keys":[]}` {
			t.Errorf("unsigned JWKS = %s", w.Body)
		}
	}
}
