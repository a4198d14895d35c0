package readme

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEInSync checks that README.md shows every snippet
// of readme.go verbatim, inside a Go code block.
func TestREADMEInSync(t *testing.T) {
	src, err := os.ReadFile("readme.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)// readme:(\w+):begin\n(.*?)\n// readme:(\w+):end`)
	found := 0
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		if m[1] != m[3] {
			t.Fatalf("marker %s closed by %s", m[1], m[3])
		}
		found++
		block := "```go\n" + strings.TrimRight(m[2], "\n") + "\n```"
		if !strings.Contains(string(doc), block) {
			t.Errorf("README.md does not show snippet %q verbatim; paste it from readme.go", m[1])
		}
	}
	if found != 3 {
		t.Fatalf("found %d snippets, want 3", found)
	}
}
