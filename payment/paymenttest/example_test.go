package paymenttest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paymenttest"
)

// memoryHarness is the harness maker a store implementation writes; its
// test then calls
//
//	paymenttest.RunIdempotencyStore(t, memoryHarness)
//
// (see payment's redeem_store_conformance_test.go and payment/sqlstore).
func memoryHarness(context.Context, *testing.T) (*paymenttest.IdempotencyHarness, error) {
	return &paymenttest.IdempotencyHarness{Store: payment.NewMemoryIdempotencyStore()}, nil
}

// The suite checks, among others, the put-if-absent contract shown here by
// hand: the first Begin starts, a duplicate is in flight, another body is
// a mismatch, and after Complete the duplicate gets the stored response.
func Example() {
	h, _ := memoryHarness(context.Background(), nil)
	ctx, now := context.Background(), time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	fpA, fpB := []byte("fingerprint-a"), []byte("fingerprint-b")
	st, _, _ := h.Store.Begin(ctx, "key", fpA, now, now.Add(time.Minute))
	fmt.Println(st)
	st, _, _ = h.Store.Begin(ctx, "key", fpA, now, now.Add(time.Minute))
	fmt.Println(st)
	st, _, _ = h.Store.Begin(ctx, "key", fpB, now, now.Add(time.Minute))
	fmt.Println(st)
	_ = h.Store.Complete(ctx, "key", fpA, payment.IdempotentResponse{Status: 201, Body: []byte("{}")}, now.Add(24*time.Hour))
	st, resp, _ := h.Store.Begin(ctx, "key", fpA, now, now.Add(time.Minute))
	fmt.Println(st, resp.Status)
	// Output:
	// started
	// in_flight
	// mismatch
	// completed 201
}
