package payment

import (
	"net/http"
)

// ProblemTypeBase prefixes the problem "type" URIs that the Payment HTTP
// authentication scheme (draft-ryan-httpauth-payment) defines. The paywall
// uses them for its 402 answers; the "code" member carries the same name in
// snake_case, as every agentprov problem does.
const ProblemTypeBase = "https://paymentauth.org/problems/"

// Sentinels of the HTTP 402 Payment scheme. The first group is what a
// provider's Paywall answers (each also travels as a problem document); the
// second group is what the client-side Transport and the header parsers
// return. Compare with errors.Is.
var (
	// ErrPaymentRequired: the request carries no Payment credential.
	ErrPaymentRequired = sentinel("payment_required", http.StatusPaymentRequired, "payment is required")
	// ErrMalformedCredential: the Authorization: Payment value does not parse.
	ErrMalformedCredential = sentinel("malformed_credential", http.StatusPaymentRequired, "payment credential is malformed")
	// ErrInvalidChallenge: the echoed challenge was not issued by this
	// server for this request, or was already used by another credential.
	ErrInvalidChallenge = sentinel("invalid_challenge", http.StatusPaymentRequired, "challenge is unknown, altered or already used")
	// ErrPaymentExpired: the echoed challenge (or the token) has expired.
	ErrPaymentExpired = sentinel("payment_expired", http.StatusPaymentRequired, "challenge has expired")
	// ErrVerificationFailed: the payment token failed verification or could
	// not be settled.
	ErrVerificationFailed = sentinel("verification_failed", http.StatusPaymentRequired, "payment verification failed")
	// ErrPaymentInsufficient: the token's maximum or currency does not cover the price.
	ErrPaymentInsufficient = sentinel("payment_insufficient", http.StatusPaymentRequired, "payment does not cover the price")
	// ErrMethodUnsupported: the credential names a payment method this server does not accept.
	ErrMethodUnsupported = sentinel("method_unsupported", http.StatusBadRequest, "payment method is not supported")
	// ErrChallengeInFlight: a request with the same credential is still being
	// served; retry after the Retry-After delay to get its result.
	ErrChallengeInFlight = sentinel("challenge_in_flight", http.StatusConflict, "a request with this credential is in flight")

	// ErrMalformedChallenge: a WWW-Authenticate: Payment value does not parse.
	ErrMalformedChallenge = sentinel("malformed_challenge", http.StatusBadGateway, "payment challenge is malformed")
	// ErrNoChallenge: a 402 carried no usable Payment challenge for an accepted method.
	ErrNoChallenge = sentinel("no_payment_challenge", http.StatusBadGateway, "no usable payment challenge")
	// ErrMalformedReceipt: a Payment-Receipt value does not parse.
	ErrMalformedReceipt = sentinel("malformed_receipt", http.StatusBadGateway, "payment receipt is malformed")
	// ErrOriginNotAllowed: the 402 came from an origin the client does not
	// pay, or its challenge names another recipient than the origin's provider.
	ErrOriginNotAllowed = sentinel("origin_not_allowed", http.StatusForbidden, "origin is not allowed to request payment")
	// ErrBodyNotReplayable: the request body cannot be sent a second time,
	// so the client refused to pay for it.
	ErrBodyNotReplayable = sentinel("body_not_replayable", http.StatusBadRequest, "request body cannot be replayed")
	// ErrPaymentRejected: the provider answered the paid attempt with 402 again.
	ErrPaymentRejected = sentinel("payment_rejected", http.StatusPaymentRequired, "provider rejected the payment")
)
