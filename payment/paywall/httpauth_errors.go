package paywall

import (
	"strings"

	"github.com/agentprov/agentprov/payment"
)

// hdrProblemType maps a code to its problem "type" URI: the draft's registry
// for the codes it defines, the agentprov base for ours.
func hdrProblemType(code string) string {
	switch code {
	case "payment_required", "malformed_credential", "invalid_challenge", "payment_expired",
		"verification_failed", "payment_insufficient", "method_unsupported":
		return payment.ProblemTypeBase + strings.ReplaceAll(code, "_", "-")
	}
	return "https://agentprov.dev/problems/" + code
}
