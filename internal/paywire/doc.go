// Package paywire holds the helpers that package
// payment and its role packages (payment/issuer, payment/paywall) share:
// the strict parsers of service refs, project ids and amounts, the
// canonical JSON (JCS) encoder, the header encodings of the HTTP
// "Payment" scheme, signer construction and the time and size limits the
// roles must agree on. It imports nothing of package payment, so every
// role package can import it without a cycle. No user should import it;
// the exported API is package payment's.
package paywire
