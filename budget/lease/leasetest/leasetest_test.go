package leasetest_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/agentprov/agentprov/budget/lease"
	"github.com/agentprov/agentprov/budget/lease/leasetest"
)

// memoryHarness: a MemoryJournal outlives a dropped Pool, not its
// process, so Reopen hands back the same journal.
type memoryHarness struct{ j *lease.MemoryJournal }

func (h memoryHarness) Journal() lease.Journal { return h.j }

func (h memoryHarness) Reopen(context.Context) (lease.Journal, error) { return h.j, nil }

func (h memoryHarness) Close() {}

func TestMemoryJournal(t *testing.T) {
	leasetest.RunJournal(t, func(context.Context, *testing.T) (leasetest.JournalHarness, error) {
		return memoryHarness{lease.NewMemoryJournal()}, nil
	})
}

// fileHarness reopens the file as a restarted process would.
type fileHarness struct {
	path string
	j    *lease.FileJournal
}

func (h *fileHarness) Journal() lease.Journal { return h.j }

func (h *fileHarness) Reopen(context.Context) (lease.Journal, error) {
	h.j.Close()
	j, err := lease.OpenFileJournal(h.path)
	if err != nil {
		return nil, err
	}
	h.j = j
	return j, nil
}

func (h *fileHarness) Close() { h.j.Close() }

func newFileHarness(_ context.Context, t *testing.T) (leasetest.JournalHarness, error) {
	path := filepath.Join(t.TempDir(), "journal")
	j, err := lease.OpenFileJournal(path)
	if err != nil {
		return nil, err
	}
	return &fileHarness{path: path, j: j}, nil
}

func TestFileJournal(t *testing.T) { leasetest.RunJournal(t, newFileHarness) }
