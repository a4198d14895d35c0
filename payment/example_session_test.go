package payment_test

import (
	"fmt"

	"github.com/agentprov/agentprov/payment"
)

// A session call's authorization: the orchestrator and the provider derive
// the same session key from their shared secret and the session id, the
// payer tags each call with it, and the provider recomputes the tag
// locally — no round trip, no signature.
func ExampleSessionMAC() {
	secret := []byte("provider-session-secret-0123456789abcdef")
	key := payment.SessionKey(secret, "hold_01JDEXAMPLE")
	call := &payment.SessionCall{
		ChallengeID: "ch_7Qm2", SessionID: "hold_01JDEXAMPLE", Seq: 1,
		Amount: 250, Currency: "USD", Route: "POST /v1/inference",
	}
	tag := payment.SessionMAC(key, call)
	again := payment.SessionMAC(payment.SessionKey(secret, "hold_01JDEXAMPLE"), call)
	call.Seq = 2
	next := payment.SessionMAC(key, call)
	fmt.Println(len(tag), tag == again, tag == next)
	// Output: 43 true false
}
