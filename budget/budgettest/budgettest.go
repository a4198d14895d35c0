// Package budgettest is the conformance suite every budget.Store passes.
//
// An implementation hooks in with a Harness over its store and one test
// (this one is over the in-memory store; see ExampleRun):
//
//	type memoryHarness struct{ store budget.Store }
//
//	func (h memoryHarness) Store() budget.Store { return h.store }
//	func (h memoryHarness) Reopen(context.Context) (budget.Store, error) {
//		return nil, budgettest.ErrReopenUnsupported // no durable data
//	}
//	func (h memoryHarness) Close() {}
//
//	func TestConformance(t *testing.T) {
//		budgettest.Run(t, func(ctx context.Context, t *testing.T) (budgettest.Harness, error) {
//			return memoryHarness{budget.NewMemoryStore(nil)}, nil // fresh, empty
//		})
//	}
//
// Run exercises, through a budget.Ledger and directly: cap enforcement at
// every scope, many goroutines on one scope, idempotency of every operation,
// expiry, window rollover, cap changes, usage in arrears and overrun, alerts
// delivered once, durability across reopen, failure injection and a rapid
// state-machine test against a simple model (also available alone as
// RunModel).
//
// # Roles
//
// Whoever implements a budget.Store for an orchestrator's Ledger.
package budgettest

import (
	"context"
	"errors"
	"testing"

	"github.com/agentprov/agentprov/budget"
)

// ErrReopenUnsupported is returned by Harness.Reopen for stores without
// durable data (the in-memory store); the durability tests then skip.
var ErrReopenUnsupported = errors.New("budgettest: reopen unsupported")

// Harness gives the suite one store over fresh, empty data.
type Harness interface {
	// Store returns the store under test. Repeated calls return the same store.
	Store() budget.Store
	// Reopen closes the store's handle and opens the same data again, as a
	// process restart would, returning the new store (which Store then
	// returns). Stores without durable data return ErrReopenUnsupported.
	Reopen(ctx context.Context) (budget.Store, error)
	// Close releases everything the harness holds.
	Close()
}

// HarnessMaker makes a harness over fresh data. It is called once per
// subtest, possibly from parallel subtests.
type HarnessMaker func(ctx context.Context, t *testing.T) (Harness, error)
