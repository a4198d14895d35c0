package payment

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCanonicalJSON: canonicalization is idempotent, yields valid JSON
// that decodes to the same value, and never panics.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `{"a":1,"a":2}`, `1.50`, `-0`, `"\u2028\ud83d\ude00"`, `{"é":1,"z":{"y":[]}}`, `[1e400]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := CanonicalJSON(in)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("invalid output %q", c)
		}
		c2, err := CanonicalJSON(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not idempotent: %q -> %q (%v)", c, c2, err)
		}
	})
}

func jsonValid(b []byte) bool { return json.Valid(b) }
