package authztest

import (
	"context"
	"testing"
)

// newHarness builds a subtest's harness with mk, failing t when it cannot.
func newHarness[H any](t *testing.T, mk func(context.Context, *testing.T) (H, error)) (context.Context, H) {
	t.Helper()
	ctx := t.Context()
	h, err := mk(ctx, t)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return ctx, h
}
