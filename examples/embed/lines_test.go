package embed_test

import (
	"os"
	"strings"
	"testing"
)

// Each role costs its user at most 40 lines: the provider role mounted on
// an existing service (mountProvider) and an orchestrator that pays
// (orchestrator).
func TestUserCodeFitsFortyLines(t *testing.T) {
	for file, fn := range map[string]string{"example_test.go": "mountProvider", "example_buy_test.go": "orchestrator"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, body, ok := strings.Cut(string(src), "\nfunc "+fn+"(")
		if !ok {
			t.Fatalf("%s not found in %s", fn, file)
		}
		body, _, _ = strings.Cut(body, "\n}\n")
		if n := strings.Count(body, "\n"); n > 40 {
			t.Errorf("%s is %d lines, more than 40", fn, n)
		} else {
			t.Logf("%s: %d lines", fn, n)
		}
	}
}
