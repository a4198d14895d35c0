package payment_test

import (
	"fmt"

	"github.com/agentprov/agentprov/payment"
)

// CanonicalJSON is RFC 8785: member order, whitespace and number spelling
// do not matter, so these bodies have one fingerprint.
func ExampleCanonicalJSON() {
	for _, body := range []string{`{"b": [1.0, 2e0], "a": "x"}`, `{"a":"x","b":[1,2]}`} {
		c, err := payment.CanonicalJSON([]byte(body))
		fmt.Println(string(c), err)
	}
	// Output:
	// {"a":"x","b":[1,2]} <nil>
	// {"a":"x","b":[1,2]} <nil>
}
