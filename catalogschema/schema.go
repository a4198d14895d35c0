package catalogschema

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

//go:embed schemas/*.json
var schemaFS embed.FS

// Schema identifiers ($id) of the embedded documents.
const (
	MetadataSchemaID = "https://agentprov.dev/schemas/0.1/metadata.json"
	CatalogSchemaID  = "https://agentprov.dev/schemas/0.1/catalog.json"
)

// Schemas returns the embedded JSON Schema (2020-12) documents by $id, for
// publishing or use with other validators. The returned slices are copies.
func Schemas() map[string][]byte {
	out := make(map[string][]byte, 2)
	for id, name := range schemaFiles() {
		b, err := schemaFS.ReadFile(name)
		if err != nil {
			panic(err) // embedded at build time
		}
		out[id] = b
	}
	return out
}

func schemaFiles() map[string]string {
	return map[string]string{
		MetadataSchemaID: "schemas/metadata.json",
		CatalogSchemaID:  "schemas/catalog.json",
	}
}

type compiledSchemas struct {
	metadata, catalog *jsonschema.Schema
}

// builtinSchemas compiles the embedded schemas once per process. The
// result is immutable, and jsonschema.Schema.Validate is safe for concurrent
// use.
var builtinSchemas = sync.OnceValues(func() (*compiledSchemas, error) {
	c := newCompiler(nil)
	c.AssertFormat = true // updated_at must be a real date-time
	for id, name := range schemaFiles() {
		b, err := schemaFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(id, bytes.NewReader(b)); err != nil {
			return nil, err
		}
	}
	m, err := c.Compile(MetadataSchemaID)
	if err != nil {
		return nil, err
	}
	cat, err := c.Compile(CatalogSchemaID)
	if err != nil {
		return nil, err
	}
	return &compiledSchemas{metadata: m, catalog: cat}, nil
})

func mustSchemas() *compiledSchemas {
	s, err := builtinSchemas()
	if err != nil {
		panic("catalogschema: embedded schema does not compile: " + err.Error())
	}
	return s
}

// newCompiler returns a draft 2020-12 compiler that never loads anything it
// was not given: every URL outside the added resources is refused, and
// *refused is set so callers can tell a remote reference from other
// compile errors whatever way the compiler wraps it.
func newCompiler(refused *string) *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.LoadURL = func(u string) (io.ReadCloser, error) {
		if refused != nil && *refused == "" {
			*refused = u
		}
		return nil, fmt.Errorf("%w: %s", ErrRemoteRef, u)
	}
	return c
}

// schemaViolations flattens a validator error into violations: one per
// failing leaf, missing members reported at their own pointer.
func schemaViolations(err error) []Violation {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Violation{{Pointer: "", Message: err.Error()}}
	}
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		// Member-level failures are reported by the validator at the
		// enclosing object; locate them at the member itself.
		if rest, ok := strings.CutPrefix(e.Message, "missing properties: "); ok {
			if names, ok := parseQuotedNames(rest); ok {
				for _, n := range names {
					out = append(out, Violation{Pointer: ptr(e.InstanceLocation, n), Message: "required member is missing"})
				}
				return
			}
		}
		if rest, ok := strings.CutPrefix(e.Message, "additionalProperties "); ok {
			if names, ok := parseQuotedNames(strings.TrimSuffix(rest, " not allowed")); ok && strings.HasSuffix(rest, " not allowed") {
				for _, n := range names {
					out = append(out, Violation{Pointer: ptr(e.InstanceLocation, n), Message: "member not allowed"})
				}
				return
			}
		}
		out = append(out, Violation{Pointer: e.InstanceLocation, Message: e.Message})
	}
	walk(ve)
	return out
}

// sortViolations orders by pointer, keeping the first of identical pairs.
func sortViolations(vs []Violation) []Violation {
	sort.SliceStable(vs, func(i, j int) bool { return pointerLess(vs[i].Pointer, vs[j].Pointer) })
	out := vs[:0]
	for i, v := range vs {
		if i > 0 && v == vs[i-1] {
			continue
		}
		out = append(out, v)
	}
	return out
}

// pointerLess orders pointers token by token, array indexes numerically,
// so "/services/2" comes before "/services/10".
func pointerLess(a, b string) bool {
	ta, tb := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(ta) && i < len(tb); i++ {
		if ta[i] == tb[i] {
			continue
		}
		na, ea := atoiOK(ta[i])
		nb, eb := atoiOK(tb[i])
		if ea && eb {
			return na < nb
		}
		return ta[i] < tb[i]
	}
	return len(ta) < len(tb)
}

func atoiOK(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// parseQuotedNames reverses the validator's list of quoted names:
// 'a', 'b\'c' with Go escapes inside the quotes.
func parseQuotedNames(s string) ([]string, bool) {
	var names []string
	for {
		if !strings.HasPrefix(s, "'") {
			return nil, false
		}
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '\'' {
				end = i
				break
			}
		}
		if end < 0 {
			return nil, false
		}
		body := strings.ReplaceAll(s[1:end], `\'`, `'`)
		body = strings.ReplaceAll(body, `"`, `\"`)
		n, err := strconv.Unquote(`"` + body + `"`)
		if err != nil {
			return nil, false
		}
		names = append(names, n)
		s = s[end+1:]
		if s == "" {
			return names, true
		}
		if s, _ = strings.CutPrefix(s, ", "); s == "" {
			return nil, false
		}
	}
}
