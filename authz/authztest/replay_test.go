package authztest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
)

// A store implementation runs the suite from its own tests; this is what
// the in-memory replay store's test looks like.
func TestMemoryReplayStoreViaSuite(t *testing.T) {
	authztest.RunReplayStore(t, memoryReplayHarness)
}

func memoryReplayHarness(ctx context.Context, t *testing.T) (*authztest.ReplayHarness, error) {
	s := authz.NewMemoryReplayStore(nil)
	return &authztest.ReplayHarness{
		Store:  s,
		Reopen: func(context.Context) (authz.ReplayStore, error) { return s, nil },
	}, nil
}

// A harness maker hands the suite a fresh store (and, optionally, a way to
// reopen it); in a test, pass it to RunReplayStore.
func ExampleReplayHarnessMaker() {
	var mk authztest.ReplayHarnessMaker = memoryReplayHarness
	h, _ := mk(context.Background(), nil)
	exp := time.Now().Add(time.Minute)
	first, _ := h.Store.PutIfAbsent(context.Background(), "jti", exp)
	second, _ := h.Store.PutIfAbsent(context.Background(), "jti", exp)
	fmt.Println(first, second)
	// Output: true false
}
