package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/examples/internal/demo"
)

// TestErrorsAreOneSentence: whatever the chain of wrapped errors, a
// failure's message is one sentence (capital first, a full stop or
// question mark last, no package prefixes, no nested "a: b: c: d"
// transport chain) saying what happened, in major units for money; the
// chain itself is kept as details.cause.
func TestErrorsAreOneSentence(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		code string
		want []string
	}{
		{"provider down", &demo.ProviderError{Provider: "registrar", Op: "provision registrar/registrar:domain", Err: refused},
			"provider_error", []string{"Provider registrar could not be reached to provision registrar/registrar:domain", "connection refused"}},
		{"provider timeout", fmt.Errorf("wrapped: %w", &demo.ProviderError{Provider: "cloud", Op: "deploy", Err: context.DeadlineExceeded}),
			"provider_error", []string{"Provider cloud could not be reached to deploy (no answer in time)."}},
		{"provider 503", &demo.ProviderError{Provider: "cloud", Op: "deploy", Status: 503, Code: "temporarily_unavailable", Err: errors.New("try again")},
			"provider_error", []string{"HTTP 503 temporarily_unavailable: try again", "orchestrator serve"}},
		{"code said once", &demo.ProviderError{Provider: "cloud", Op: "issue a credential", Status: 503, Code: "temporarily_unavailable",
			Err: errors.New("authz: temporarily_unavailable: attestation could not be checked now")},
			"provider_error", []string{"(HTTP 503 temporarily_unavailable: attestation could not be checked now)"}},
		{"provider 409", &demo.ProviderError{Provider: "cloud", Op: "deploy", Status: 409, Code: "conflict"},
			"provider_error", []string{"Provider cloud refused to deploy (HTTP 409 conflict)."}},
		{"cap", fmt.Errorf("payment: reserve: %w", &budget.CapError{Counter: budget.Counter{Project: "p", Provider: "registrar", Window: "month"},
			Limit: budget.USD(1000), Used: 0, Requested: 1299}),
			"cap_exceeded", []string{"month cap of registrar", "10.00 USD allowed", "12.99 USD asked for"}},
		{"not found", fmt.Errorf("%w: cloud/nope: %v", demo.ErrNotFound, fmt.Errorf("discovery: %w", discovery.ErrUnknownService)),
			"not_found", []string{"Not found"}},
		{"terms", &demo.TermsError{Provider: "cloud", URL: "https://cloud.example/terms", Version: "1"},
			"terms_acceptance_required", []string{"--accept-terms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			o := &output{json: true, stdout: &stdout, stderr: &stderr}
			o.failure(classify(tc.err))
			var env envelope
			if err := json.Unmarshal(stdout.Bytes(), &env); err != nil || env.Error == nil {
				t.Fatalf("not an envelope: %v\n%s", err, stdout.String())
			}
			msg := env.Error.Message
			if env.Error.Code != tc.code {
				t.Errorf("code %q, want %q", env.Error.Code, tc.code)
			}
			if msg == "" || msg[:1] != strings.ToUpper(msg[:1]) || !strings.ContainsAny(msg[len(msg)-1:], ".?") {
				t.Errorf("not a sentence: %q", msg)
			}
			for _, bad := range []string{"demo: ", "budget: ", "discovery: ", "payment: ", "dial tcp", "connect: "} {
				if strings.Contains(msg, bad) {
					t.Errorf("message holds %q: %q", bad, msg)
				}
			}
			if strings.Count(msg, ": ") > 2 {
				t.Errorf("a chain, not a sentence: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
		})
	}
}

// TestWaitingShowsProgress: a long wait prints a line per tick saying how
// long it waited and how long is left, and nothing once stopped; --quiet
// prints nothing.
func TestWaitingShowsProgress(t *testing.T) {
	var buf lockedBuffer
	o := &output{stderr: &buf, tick: 20 * time.Millisecond}
	stop := o.waiting("waiting for the approval at cloud", time.Now().Add(time.Minute))
	time.Sleep(110 * time.Millisecond)
	stop()
	n := strings.Count(buf.String(), "… still waiting for the approval at cloud (")
	if n < 2 || !strings.Contains(buf.String(), "s left)") {
		t.Fatalf("%d progress lines:\n%s", n, buf.String())
	}
	after := buf.String()
	time.Sleep(60 * time.Millisecond)
	if buf.String() != after {
		t.Errorf("lines after stop:\n%s", buf.String())
	}
	var quiet lockedBuffer
	q := &output{stderr: &quiet, quiet: true, tick: time.Millisecond}
	stop = q.waiting("x", time.Time{})
	time.Sleep(20 * time.Millisecond)
	stop()
	if quiet.String() != "" {
		t.Errorf("--quiet printed %q", quiet.String())
	}
}
