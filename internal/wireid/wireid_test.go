package wireid_test

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/wireid"
)

// TestSameRulesAsCatalogschema: the shared checks accept exactly what the
// catalog parser's do, on strings drawn near the edges of the rules.
func TestSameRulesAsCatalogschema(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.StringMatching(`[a-zA-Z0-9._:/ -]{0,140}`).Draw(t, "s")
		if got, want := wireid.ProviderID(s), catalogschema.ValidProviderID(s); got != want {
			t.Fatalf("ProviderID(%q) = %v, catalogschema %v", s, got, want)
		}
		if got, want := wireid.ServiceID(s), catalogschema.ValidServiceID(s); got != want {
			t.Fatalf("ServiceID(%q) = %v, catalogschema %v", s, got, want)
		}
		_, err := catalogschema.ParseRef(s)
		if got := wireid.ServiceRef(s); got != (err == nil) {
			t.Fatalf("ServiceRef(%q) = %v, catalogschema.ParseRef error %v", s, got, err)
		}
	})
}

func TestProjectID(t *testing.T) {
	for s, want := range map[string]bool{"blog": true, "My_Project-1.0": true, "": false, "a b": false, "ü": false, string(make([]byte, 129)): false} {
		if got := wireid.ProjectID(s); got != want {
			t.Errorf("ProjectID(%q) = %v, want %v", s, got, want)
		}
	}
}

func ExampleServiceRef() {
	fmt.Println(wireid.ServiceRef("cloudflare/registrar:domain"), wireid.ServiceRef("Cloudflare/registrar"))
	// Output: true false
}
