package lease

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// Kind names what a journal Record says happened.
type Kind string

// The record kinds, in the order a lease lives through them.
const (
	// KindLease: a lease of Amount on Scope is about to be reserved in the
	// shared store under LeaseKey (written before the store is asked).
	KindLease Kind = "lease"
	// KindGranted: the shared store granted the lease LeaseKey as hold
	// LeaseID, expiring at ExpiresAt.
	KindGranted Kind = "granted"
	// KindReserve: sub-hold Sub of Amount was granted from lease LeaseKey.
	KindReserve Kind = "reserve"
	// KindCommit: sub-hold Sub of lease LeaseKey was committed for Amount.
	KindCommit Kind = "commit"
	// KindSettled: lease LeaseKey was settled in the shared store for
	// Amount (the sum of its commits); recovery skips it.
	KindSettled Kind = "settled"
)

// Record is one journal entry. Releases are not journaled: a sub-hold
// that is not committed counts nothing once its lease is settled, so
// forgetting a release cannot cost money.
type Record struct {
	Kind      Kind         `json:"k"`
	LeaseKey  string       `json:"l"`
	LeaseID   string       `json:"id,omitempty"`
	Sub       string       `json:"s,omitempty"`
	Scope     budget.Scope `json:"scope,omitzero"`
	Amount    int64        `json:"a,omitempty"`
	Currency  string       `json:"c,omitempty"`
	ExpiresAt time.Time    `json:"exp,omitzero"`
}

// Journal is an instance's durable log of its leases and sub-holds. Append
// returns nil only once the record is durable (it survives kill -9 and a
// power cut for a file journal); the Pool reports no grant or commit
// before that. An Append that fails must leave the journal failed: later
// appends fail too, since a failed sync says nothing about what reached
// the disk. An Append whose context is already done appends nothing and
// returns the context's error. Implementations must be safe for concurrent
// use, and keep each caller's own appends in order. leasetest.RunJournal is
// the conformance suite an implementation passes.
type Journal interface {
	Append(ctx context.Context, r Record) error
	// Replay calls fn with every durable record in append order; it can
	// be called again and replays the same. It stops at the first error
	// from fn or ctx and returns it.
	Replay(ctx context.Context, fn func(Record) error) error
}

// MemoryJournal keeps records in memory. It is not durable across a process
// crash; it is for tests and examples, where a "crash" drops a Pool and
// keeps its journal. Fail makes every later Append fail, like a disk that
// stopped syncing.
type MemoryJournal struct {
	mu   sync.Mutex
	recs []Record
	err  error
}

// NewMemoryJournal returns an empty MemoryJournal.
func NewMemoryJournal() *MemoryJournal { return &MemoryJournal{} }

// Append stores r unless the journal has failed or ctx is done.
func (j *MemoryJournal) Append(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	j.recs = append(j.recs, r)
	return nil
}

// Replay calls fn with every record in order, stopping at the first error
// from fn or ctx.
func (j *MemoryJournal) Replay(ctx context.Context, fn func(Record) error) error {
	j.mu.Lock()
	recs := append([]Record(nil), j.recs...)
	j.mu.Unlock()
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Compact drops the records of every lease whose KindSettled record it
// holds (see Compacter).
func (j *MemoryJournal) Compact(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	settled := map[string]bool{}
	for _, r := range j.recs {
		if r.Kind == KindSettled {
			settled[r.LeaseKey] = true
		}
	}
	kept := j.recs[:0:0]
	for _, r := range j.recs {
		if !settled[r.LeaseKey] {
			kept = append(kept, r)
		}
	}
	n := len(j.recs) - len(kept)
	j.recs = kept
	return n, nil
}

// Fail makes every later Append return err (nil restores the journal).
func (j *MemoryJournal) Fail(err error) {
	j.mu.Lock()
	j.err = err
	j.mu.Unlock()
}

// FileJournal is a Journal in one append-only file. Concurrent appends are
// group-committed: records that arrive while a sync is in progress are
// written and synced together by the next one, so 32 concurrent callers
// share about one fsync. Each line is a CRC-32C of the record and the
// record as JSON; a torn last line (a write cut off by a crash, never
// acknowledged) is dropped when the file is opened.
type FileJournal struct {
	path string

	mu      sync.Mutex
	cond    sync.Cond
	f       *os.File
	pending []byte
	spare   []byte
	seq     uint64 // records appended
	synced  uint64 // records durable
	syncing bool
	err     error // sticky: the first write or sync failure

	compact sync.Mutex // one Compact at a time
}

// Compacter is implemented by a Journal that can drop the records of
// settled leases, which recovery skips anyway. A Pool whose journal
// implements it compacts it after every Options.CompactAfter settled
// leases, so that the journal stays about as large as what is live.
type Compacter interface {
	// Compact drops every record of each lease whose KindSettled record
	// is durable, keeping the order of the rest, and returns how many
	// records it dropped. Appends may run concurrently. A failed Compact
	// leaves the journal as it was, unless the journal reports itself
	// failed (every later Append failing too).
	Compact(ctx context.Context) (int, error)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// OpenFileJournal opens (creating if needed) the journal at path, dropping a
// torn last line. The directory entry is synced when the file is created.
func OpenFileJournal(path string) (*FileJournal, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease: journal: %w", err)
	}
	good, err := scanJournal(f, nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("lease: journal: truncate torn tail: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("lease: journal: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("lease: journal: sync directory: %w", err)
			}
		}
	}
	j := &FileJournal{path: path, f: f}
	j.cond.L = &j.mu
	return j, nil
}

// scanJournal reads records from the start of f, calling fn (if non-nil)
// on each, and returns the offset after the last complete, valid line. A
// bad line that is not the last is corruption and an error.
func scanJournal(f *os.File, fn func(Record) error) (int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("lease: journal: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	var torn bool
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && (err != nil || torn) {
			if torn || err != io.EOF {
				return 0, fmt.Errorf("lease: journal: corrupt record at offset %d", off)
			}
			return off, nil // a torn last line: never acknowledged
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return 0, fmt.Errorf("lease: journal: %w", err)
		}
		rec, ok := decodeLine(line)
		if !ok {
			torn = true // only acceptable if nothing follows
			continue
		}
		if torn {
			return 0, fmt.Errorf("lease: journal: corrupt record before offset %d", off)
		}
		if fn != nil {
			if err := fn(rec); err != nil {
				return 0, err
			}
		}
		off += int64(len(line))
	}
}

func decodeLine(line []byte) (Record, bool) {
	var rec Record
	sum, body, ok := bytes.Cut(bytes.TrimSuffix(line, []byte{'\n'}), []byte{' '})
	if !ok || len(sum) != 8 {
		return rec, false
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || uint32(want) != crc32.Checksum(body, crcTable) {
		return rec, false
	}
	if json.Unmarshal(body, &rec) != nil {
		return rec, false
	}
	return rec, true
}

func encodeLine(dst []byte, r Record) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return dst, err
	}
	dst = fmt.Appendf(dst, "%08x ", crc32.Checksum(body, crcTable))
	dst = append(dst, body...)
	return append(dst, '\n'), nil
}

// Append writes r and returns once it is synced to disk, sharing the sync
// with every record appended meanwhile. After any write or sync failure the
// journal is failed: this and every later Append return the error.
func (j *FileJournal) Append(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	var err error
	if j.pending, err = encodeLine(j.pending, r); err != nil {
		return fmt.Errorf("lease: journal: encode: %w", err)
	}
	j.seq++
	mine := j.seq
	for j.synced < mine && j.err == nil {
		if j.syncing {
			j.cond.Wait()
			continue
		}
		// Lead one group commit: everything pending so far.
		j.syncing = true
		buf, upto := j.pending, j.seq
		j.pending = j.spare[:0]
		j.mu.Unlock()
		_, werr := j.f.Write(buf)
		if werr == nil {
			werr = j.f.Sync()
		}
		j.mu.Lock()
		j.spare = buf[:0]
		j.syncing = false
		if werr != nil {
			j.err = fmt.Errorf("lease: journal %s: %w", j.path, werr)
		} else {
			j.synced = upto
		}
		j.cond.Broadcast()
	}
	if j.synced >= mine {
		return nil
	}
	return j.err
}

// Replay reads the file from the start and calls fn with every record. Call
// it before appending (as New and Recover do).
func (j *FileJournal) Replay(ctx context.Context, fn func(Record) error) error {
	f, err := os.Open(j.path)
	if err != nil {
		return fmt.Errorf("lease: journal: %w", err)
	}
	defer f.Close()
	_, err = scanJournal(f, func(r Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(r)
	})
	return err
}

// Close closes the file. Appends after Close fail.
func (j *FileJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = errors.New("lease: journal: closed")
	}
	return j.f.Close()
}

// Compact rewrites the journal without the records of settled leases: it
// copies what is kept to a new file beside it without blocking appends,
// then, with appends paused, adds what was appended meanwhile, syncs the
// new file, renames it over the old one and syncs the directory. A crash at
// any point leaves either the old file or the new one, each a complete
// journal. A failure before the rename leaves the journal as it was; a
// failure after it fails the journal.
func (j *FileJournal) Compact(ctx context.Context) (int, error) {
	j.compact.Lock()
	defer j.compact.Unlock()
	// Everything before off is durable, and no write is in flight.
	j.mu.Lock()
	for j.syncing {
		j.cond.Wait()
	}
	if j.err != nil {
		j.mu.Unlock()
		return 0, j.err
	}
	off, err := j.f.Seek(0, io.SeekCurrent)
	j.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("lease: journal: compact: %w", err)
	}

	old, err := os.Open(j.path)
	if err != nil {
		return 0, fmt.Errorf("lease: journal: compact: %w", err)
	}
	defer old.Close()
	// Every line before off is a complete, valid record.
	type line struct {
		raw []byte
		key string
	}
	var lines []line
	settled := map[string]bool{}
	r := bufio.NewReaderSize(io.NewSectionReader(old, 0, off), 1<<16)
	for {
		raw, err := r.ReadBytes('\n')
		if err == io.EOF && len(raw) == 0 {
			break
		}
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("lease: journal: compact: %w", err)
		}
		rec, ok := decodeLine(raw)
		if !ok {
			return 0, fmt.Errorf("lease: journal: compact: corrupt record in %s", j.path)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if rec.Kind == KindSettled {
			settled[rec.LeaseKey] = true
		}
		lines = append(lines, line{raw, rec.LeaseKey})
	}
	var kept []byte
	dropped := 0
	for _, l := range lines {
		if settled[l.key] {
			dropped++
			continue
		}
		kept = append(kept, l.raw...)
	}
	if dropped == 0 {
		return 0, nil
	}
	tmpPath := j.path + ".compact"
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("lease: journal: compact: %w", err)
	}
	abandon := func(err error) (int, error) {
		tmp.Close()
		os.Remove(tmpPath)
		return 0, fmt.Errorf("lease: journal: compact: %w", err)
	}
	if _, err := tmp.Write(kept); err != nil {
		return abandon(err)
	}

	// Appends pause from here to the swap.
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.syncing {
		j.cond.Wait()
	}
	if j.err != nil {
		tmp.Close()
		os.Remove(tmpPath)
		return 0, j.err
	}
	end, err := j.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return abandon(err)
	}
	if end > off {
		if _, err := io.Copy(tmp, io.NewSectionReader(j.f, off, end-off)); err != nil {
			return abandon(err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return abandon(err)
	}
	if err := os.Rename(tmpPath, j.path); err != nil {
		return abandon(err)
	}
	// From here the new file is the journal: a failure fails the journal,
	// since appends to a file whose name may not survive are not durable.
	fail := func(err error) (int, error) {
		tmp.Close()
		j.err = fmt.Errorf("lease: journal %s: compact: %w", j.path, err)
		j.cond.Broadcast()
		return 0, j.err
	}
	d, err := os.Open(filepath.Dir(j.path))
	if err != nil {
		return fail(err)
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return fail(err)
	}
	j.f.Close()
	j.f = tmp
	return dropped, nil
}
