package embed_test

import (
	"os"
	"strings"
	"testing"
)

// The provider role costs an existing service at most 40 lines: the body of
// mountProvider in the example.
func TestProviderUserCodeFitsFortyLines(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), "\nfunc mountProvider(")
	if !ok {
		t.Fatal("mountProvider not found")
	}
	body, _, _ = strings.Cut(body, "\n}\n")
	if n := strings.Count(body, "\n"); n > 40 {
		t.Errorf("mountProvider is %d lines, more than 40", n)
	} else {
		t.Logf("mountProvider: %d lines", n)
	}
}
