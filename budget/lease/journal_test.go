package lease_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agentprov/agentprov/budget/lease"
)

// TestFileJournal: 32 concurrent appends all replay; a torn last line (a
// write cut off by a crash) is dropped on open; appends after Close fail.
func TestFileJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j")
	j, err := lease.OpenFileJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				if err := j.Append(ctx, lease.Record{Kind: lease.KindCommit, LeaseKey: "l", Sub: "s", Amount: int64(i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	j.Close()
	if err := j.Append(ctx, lease.Record{Kind: lease.KindCommit}); err == nil {
		t.Fatal("append after close succeeded")
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`1234abcd {"k":"com`)
	f.Close()
	j, err = lease.OpenFileJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	n := 0
	if err := j.Replay(ctx, func(lease.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 32*20 {
		t.Fatalf("replayed %d records, want %d", n, 32*20)
	}
}
