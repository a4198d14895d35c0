package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, src := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReportsEveryKindOfMissingDoc(t *testing.T) {
	root := writeTree(t, map[string]string{
		"nodoc/a.go": `package nodoc

func Exported() {}

type T struct{}

func (T) Method() {}
func (*T) PtrMethod() {}

type hidden struct{}

func (hidden) Method() {} // unexported receiver: not in godoc

const C = 1

var (
	V1 = 1
	v2 = 2
)

type G[P any] struct{}

func (G[P]) M() {}
`,
		"nodoc/a_test.go": "package nodoc\n\nfunc TestIgnored() {}\n",
		"ok/ok.go": `// Package ok is documented throughout.
package ok

// F does a thing.
func F() {}

// The colours.
const (
	Red = iota
	Blue
)

// T is a type.
type T struct{}

// M is a method.
func (T) M() {}

var X = 1 // X is documented by its line comment.
`,
		"testdata/bad.go": "package bad\n\nfunc Bad() {}\n",
	})
	var out strings.Builder
	n, err := run(&out, root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"package nodoc has no package doc",
		"func Exported has no doc comment",
		"type T has no doc comment",
		"method T.Method has no doc comment",
		"method T.PtrMethod has no doc comment",
		"const C has no doc comment",
		"var V1 has no doc comment",
		"type G has no doc comment",
		"method G.M has no doc comment",
	}
	got := out.String()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing report %q in:\n%s", w, got)
		}
	}
	if n != len(want) {
		t.Errorf("got %d reports, want %d:\n%s", n, len(want), got)
	}
	for _, not := range []string{"hidden", "v2", "ok/", "Bad", "TestIgnored"} {
		if strings.Contains(got, not) {
			t.Errorf("reported %q, which needs no doc:\n%s", not, got)
		}
	}
}
