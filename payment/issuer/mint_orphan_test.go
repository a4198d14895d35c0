package issuer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"testing"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// failingCreate is a RedemptionStore whose next Create fails without
// storing anything.
type failingCreate struct {
	*issuer.MemoryRedemptionStore
	fail bool
}

func (s *failingCreate) Create(ctx context.Context, r issuer.Redemption) (issuer.Redemption, bool, error) {
	if s.fail {
		s.fail = false
		return issuer.Redemption{}, false, errors.New("disk full")
	}
	return s.MemoryRedemptionStore.Create(ctx, r)
}

// A mint whose record cannot be stored gives its budget hold back at once
// when the mint key was generated (nobody can retry it); with a caller's
// key the hold stays, so that the retry finds it.
func TestMintStoreFailureReleasesOrphanHold(t *testing.T) {
	ctx := context.Background()
	ledger, err := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	store := &failingCreate{MemoryRedemptionStore: issuer.NewMemoryRedemptionStore()}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	iss, err := issuer.NewIssuer("https://o.example", payment.SigningKey{KeyID: "k1", Key: priv}, ledger,
		&issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil), Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{Project: "proj-1", Provider: "acme"}
	remaining := func() int64 {
		u, err := ledger.Usage(ctx, scope)
		if err != nil || u.Remaining == nil {
			t.Fatalf("usage: %+v %v", u, err)
		}
		return u.Remaining.Amount
	}
	full := remaining()
	req := issuer.MintRequest{Project: "proj-1", Provider: "acme", Service: "dns", MaxAmount: budget.USD(40)}

	store.fail = true
	if _, err := iss.Mint(ctx, req); !errors.Is(err, payment.ErrStore) {
		t.Fatalf("mint with a failing store: %v", err)
	}
	if got := remaining(); got != full {
		t.Fatalf("remaining %d after a failed mint, want %d: the hold leaked", got, full)
	}

	store.fail = true
	req.IdempotencyKey = "mint-1"
	if _, err := iss.Mint(ctx, req); !errors.Is(err, payment.ErrStore) {
		t.Fatalf("keyed mint with a failing store: %v", err)
	}
	if got := remaining(); got != full-budget.USD(40).Amount {
		t.Fatalf("remaining %d: a keyed mint's hold must wait for its retry", got)
	}
	m, err := iss.Mint(ctx, req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := remaining(); got != full-budget.USD(40).Amount || m.Claims.HoldID == "" {
		t.Fatalf("retry reserved again: remaining %d", got)
	}
}
