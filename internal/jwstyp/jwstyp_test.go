package jwstyp

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestMatches(t *testing.T) {
	const want = "agentprov-payment+jwt"
	tests := []struct {
		got  string
		want string
		ok   bool
	}{
		{"agentprov-payment+jwt", want, true},
		{"AGENTPROV-PAYMENT+JWT", want, true},
		{"Agentprov-Payment+Jwt", want, true},
		{"application/agentprov-payment+jwt", want, true},
		{"APPLICATION/AGENTPROV-PAYMENT+JWT", want, true},
		{"agentprov-payment+jwt", "application/agentprov-payment+jwt", true},
		{"agentprov-attestation+jwt", want, false},
		{"application/agentprov-attestation+jwt", want, false},
		{"JWT", want, false},
		{"jwt", want, false},
		{"", want, false},
		{"application/", want, false},
		{"application/application/agentprov-payment+jwt", want, false},
		{"text/agentprov-payment+jwt", want, false},
		{" agentprov-payment+jwt", want, false},
		{"agentprov-payment+jwt ", want, false},
		{"agentprov-payment+jwt\x00", want, false},
		{"applicationagentprov-payment+jwt", want, false},
		{"agentprov-payment+\u212Awt", "agentprov-payment+kwt", false}, // KELVIN SIGN is not k
		{"", "", false},
		{"jwt", "", false},
	}
	for _, tc := range tests {
		if got := Matches(tc.got, tc.want); got != tc.ok {
			t.Errorf("Matches(%q, %q) = %v, want %v", tc.got, tc.want, got, tc.ok)
		}
	}
}

// typGen draws media-type-like subtype names: ASCII letters, digits and
// the punctuation RFC 6838 allows in restricted names.
func typGen() *rapid.Generator[string] {
	return rapid.StringMatching(`[a-zA-Z0-9][a-zA-Z0-9!#$&\-^_.+]{0,40}`)
}

func TestMatchesProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := typGen().Draw(t, "want")
		if !Matches(want, want) {
			t.Fatalf("Matches(%q, itself) = false", want)
		}
		if !Matches(strings.ToUpper(want), want) || !Matches("Application/"+want, want) {
			t.Fatalf("case or prefix variant of %q refused", want)
		}
		other := typGen().Draw(t, "other")
		if !strings.EqualFold(other, want) && Matches(other, want) {
			t.Fatalf("Matches(%q, %q) = true for a different type", other, want)
		}
		if !strings.EqualFold(other, want) && Matches("application/"+other, want) {
			t.Fatalf("Matches(application/%q, %q) = true for a different type", other, want)
		}
	})
}

func ExampleMatches() {
	fmt.Println(Matches("APPLICATION/AGENTPROV-PAYMENT+JWT", "agentprov-payment+jwt"))
	fmt.Println(Matches("agentprov-attestation+jwt", "agentprov-payment+jwt"))
	// Output:
	// true
	// false
}
