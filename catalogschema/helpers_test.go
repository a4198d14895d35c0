package catalogschema_test

import (
	"os"
	"path/filepath"
	"testing"
)

// stripeFixture reads the shared Stripe Projects capture, which lives next
// to the repository (never inside it), or skips the test.
func stripeFixture(tb testing.TB) []byte {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("module root not found; cannot locate ../shared/fixtures")
		}
		dir = parent
	}
	path := filepath.Join(dir, "..", "shared", "fixtures", "stripe-projects-catalog.json")
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Skipf("Stripe Projects capture not available at %s: %v", path, err)
	}
	return b
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
