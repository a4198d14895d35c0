package payment_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

// FuzzCanonicalJSON: canonicalization is idempotent, yields valid JSON,
// agrees with the 402 challenge encoder on objects, and never panics.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `{"a":1,"a":2}`, `1.50`, `-0`, `"\u2028\ud83d\ude00"`, `{"é":1,"z":{"y":[]}}`, `[1e400]`, ``, `{"n":[1.0,1E0,-0,1e21,0.0000001]}`, `123456789012345678901234567890`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := payment.CanonicalJSON(in)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("invalid output %q", c)
		}
		c2, err := payment.CanonicalJSON(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not idempotent: %q -> %q (%v)", c, c2, err)
		}
		// One canonicalizer: the challenge path (decode, then JCSEncode)
		// yields the same bytes for every object both accept.
		if m, err := payment.HdrDecodeObject(in); err == nil {
			if j, err := paywire.JCSEncode(m); err == nil && !bytes.Equal(j, c) {
				t.Fatalf("challenge encoder disagrees: %q vs %q", j, c)
			}
		}
	})
}

func jsonValid(b []byte) bool { return json.Valid(b) }
