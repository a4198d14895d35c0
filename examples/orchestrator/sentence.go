package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/examples/internal/demo"
)

// A person (or an agent) reads one clear sentence per failure: what went
// wrong and, where there is one, what to do. The wrapped chain an error
// carries ("provider registrar: provision …: dial tcp …: connection
// refused") stays available as the envelope's details.cause for whoever
// debugs it, but is never the message.

// sentence renders err as one sentence, beginning with a capital letter
// and ending with a full stop.
func sentence(err error) string {
	var capErr *budget.CapError
	var pe *demo.ProviderError
	var ve *catalogschema.ValidationError
	var ce *cliError
	var s string
	switch {
	case errors.As(err, &ce) && ce.Err == nil:
		s = ce.Msg
	case errors.As(err, &capErr):
		s = capSentence(capErr)
	case errors.As(err, &pe):
		s = providerSentence(pe)
	case errors.As(err, &ve):
		s = "the configuration is invalid: " + strings.TrimPrefix(ve.Error(), "catalogschema: ")
	case errors.Is(err, context.DeadlineExceeded):
		s = "the operation did not finish in time"
	case errors.Is(err, context.Canceled):
		s = "the operation was interrupted"
	default:
		s = stripPrefixes(err.Error())
	}
	return finish(s)
}

// capSentence says which cap refused, in major units.
func capSentence(e *budget.CapError) string {
	scope := "the whole project"
	if e.Counter.Provider != "" {
		scope = e.Counter.Provider
	}
	cur := e.Limit.Currency
	return fmt.Sprintf("refused by the %s cap of %s: %s allowed, %s already used or held, %s asked for (raise it with \"orchestrator billing update --human\")",
		e.Counter.Window, scope, demo.Money(e.Limit.Amount, cur), demo.Money(e.Used, cur), demo.Money(e.Requested, cur))
}

// providerSentence says what the provider did, without the transport's
// wording.
func providerSentence(e *demo.ProviderError) string {
	what := "provider " + e.Provider
	op := e.Op
	if op == "" {
		op = "answer"
	}
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s could not be reached to %s (%s)", what, op, transportReason(e.Err))
	case e.Status >= 500 || e.Status == http.StatusPaymentRequired:
		return fmt.Sprintf("%s could not %s (HTTP %d%s); it may be unable to reach this orchestrator: is \"orchestrator serve\" running?",
			what, op, e.Status, detail(e))
	}
	return fmt.Sprintf("%s refused to %s (HTTP %d%s)", what, op, e.Status, detail(e))
}

func detail(e *demo.ProviderError) string {
	var b strings.Builder
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Err != nil {
		msg := strings.TrimSuffix(stripPrefixes(e.Err.Error()), ".")
		if e.Code != "" {
			msg = strings.TrimPrefix(msg, e.Code+": ") // said already
		}
		b.WriteString(": " + msg)
	}
	return b.String()
}

// transportReason names a network failure in a few words.
func transportReason(err error) string {
	var ne net.Error
	var dns *net.DNSError
	switch {
	case err == nil:
		return "no answer"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: is it running?"
	case errors.As(err, &dns):
		return "unknown host " + dns.Name
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return strings.TrimSuffix(stripPrefixes(err.Error()), ".")
}

// stripPrefixes drops the package prefixes ("demo: ", "authz: ", …) that
// library errors carry, wherever they occur in a chain.
func stripPrefixes(s string) string {
	for _, p := range []string{"demo: ", "authz: ", "payment: ", "budget: ", "discovery: ", "catalogschema: ", "sqlstore: ", "safehttp: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// finish capitalises s and ends it with a full stop.
func finish(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "Failed."
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}
