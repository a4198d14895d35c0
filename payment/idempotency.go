package payment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// IdempotencyState is what IdempotencyStore.Begin found.
type IdempotencyState int

// Begin outcomes.
const (
	// IdempotencyStarted: the key was free (or expired); the caller now
	// holds the in-flight marker and must Complete or Abandon it.
	IdempotencyStarted IdempotencyState = iota + 1
	// IdempotencyInFlight: the same request is being processed elsewhere.
	IdempotencyInFlight
	// IdempotencyCompleted: the same request completed; the stored response is returned.
	IdempotencyCompleted
	// IdempotencyMismatch: the key is held by a request with another fingerprint.
	IdempotencyMismatch
)

func (s IdempotencyState) String() string {
	switch s {
	case IdempotencyStarted:
		return "started"
	case IdempotencyInFlight:
		return "in_flight"
	case IdempotencyCompleted:
		return "completed"
	case IdempotencyMismatch:
		return "mismatch"
	}
	return "IdempotencyState(" + strconv.Itoa(int(s)) + ")"
}

// IdempotentResponse is a completed response kept for replay. Stores keep
// and return copies.
type IdempotentResponse struct {
	Status int
	Header http.Header // the replayed subset: Content-Type, Location, Cache-Control
	Body   []byte
}

// IdempotencyStore keeps idempotency records. Every method is one atomic
// operation and must be safe for concurrent use.
//
// Contract (checked by paymenttest.RunIdempotencyStore):
//   - Begin: if key has no record, or its record expired (an in-flight
//     marker past its lease, a completed record past its retention), it
//     writes an in-flight marker for fingerprint lasting until leaseUntil
//     and returns IdempotencyStarted (put-if-absent: of concurrent Begins
//     exactly one starts). Otherwise: a different fingerprint gives
//     IdempotencyMismatch; the same gives IdempotencyInFlight, or
//     IdempotencyCompleted with the stored response.
//   - Complete replaces the in-flight marker of (key, fingerprint) by the
//     completed response kept until keepUntil (compare-and-set); without
//     such a marker it returns an error matching ErrConflict.
//   - Abandon deletes the in-flight marker of (key, fingerprint), if any.
type IdempotencyStore interface {
	Begin(ctx context.Context, key string, fingerprint []byte, now, leaseUntil time.Time) (IdempotencyState, *IdempotentResponse, error)
	Complete(ctx context.Context, key string, fingerprint []byte, resp IdempotentResponse, keepUntil time.Time) error
	Abandon(ctx context.Context, key string, fingerprint []byte) error
}

// IdempotencyOptions configure the Idempotent middleware. The zero value
// is usable; Idempotent copies it.
type IdempotencyOptions struct {
	// Identity names the authenticated caller; keys are scoped to
	// (identity, method, path). Default: every caller shares one scope.
	Identity func(*http.Request) string
	// Now is the clock; nil means time.Now.
	Now clock.Func
	// Retention is how long completed responses are kept; default and
	// minimum 24 hours.
	Retention time.Duration
	// Lease is how long an in-flight marker blocks its key if its request
	// never finishes (a crash); default 1 minute.
	Lease time.Duration
	// RetryAfter is sent with 409 idempotency_in_flight; default 1 second.
	RetryAfter time.Duration
	// MaxBody bounds request bodies (413 above); default 64 KiB.
	MaxBody int64
	// Logger receives store failures; default slog.Default().
	Logger *slog.Logger
}

// MaxIdempotencyKeyLength is the longest Idempotency-Key accepted.
const MaxIdempotencyKeyLength = 255

// Idempotent returns middleware applying the idempotency rules of §5.3 to
// state-changing requests (every method but GET, HEAD and OPTIONS):
// Idempotency-Key is required (400 idempotency_key_required); the same key
// and the same body (compared as canonical JSON) replay the first response
// with "Idempotent-Replayed: true"; the same key with another body gives
// 422 idempotency_conflict; a duplicate while the first is running gives
// 409 idempotency_in_flight with Retry-After. Responses with status 5xx or
// carrying Retry-After (transient answers) are not kept, so a retry runs
// the handler again. The middleware is safe for concurrent use.
func Idempotent(store IdempotencyStore, opts *IdempotencyOptions) func(http.Handler) http.Handler {
	if opts == nil {
		opts = &IdempotencyOptions{}
	}
	o := *opts
	o.Retention = max(o.Retention, 24*time.Hour)
	o.Lease = orDefault(o.Lease, time.Minute)
	o.RetryAfter = orDefault(o.RetryAfter, time.Second)
	if o.MaxBody <= 0 {
		o.MaxBody = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	retryAfter := strconv.Itoa(int(max(1, (o.RetryAfter+time.Second-1)/time.Second)))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
				next.ServeHTTP(w, r)
				return
			}
			key := r.Header.Get("Idempotency-Key")
			if key == "" {
				writeErr(w, ErrIdempotencyKeyRequired)
				return
			}
			if len(key) > MaxIdempotencyKeyLength || !printable(key) {
				writeErr(w, ErrInvalidRequest.with(nil, "Idempotency-Key must be 1-%d printable ASCII characters", MaxIdempotencyKeyLength))
				return
			}
			var body []byte
			if r.Body != nil {
				var err error
				if body, err = safehttp.ReadAll(r.Body, o.MaxBody); err != nil {
					problem.Write(w, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("body exceeds %d bytes", o.MaxBody))
					return
				}
			}
			identity := ""
			if o.Identity != nil {
				identity = o.Identity(r)
			}
			skey := scopedKey(identity, r.Method, r.URL.Path, key)
			fp := Fingerprint(body)
			now := o.Now.Now()
			state, stored, err := store.Begin(r.Context(), skey, fp, now, now.Add(o.Lease))
			if err != nil {
				o.Logger.ErrorContext(r.Context(), "payment: idempotency store failed", "err", err)
				writeErr(w, ErrStore)
				return
			}
			switch state {
			case IdempotencyCompleted:
				replay(w, stored)
				return
			case IdempotencyMismatch:
				writeErr(w, ErrIdempotencyConflict)
				return
			case IdempotencyInFlight:
				w.Header().Set("Retry-After", retryAfter)
				problem.Write(w, ErrIdempotencyInFlight.Status, ErrIdempotencyInFlight.Code, ErrIdempotencyInFlight.Detail)
				return
			case IdempotencyStarted:
			default:
				writeErr(w, ErrStore)
				return
			}
			// Store the outcome even if the client went away: a retry must
			// find it.
			sctx := context.WithoutCancel(r.Context())
			rec := &bufferedWriter{header: http.Header{}} // no limit: MaxBody-sized requests, handler-sized answers
			finished := false
			defer func() {
				if !finished {
					_ = store.Abandon(sctx, skey, fp) // panic in next: free the key
				}
			}()
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(rec, r)
			finished = true
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			if rec.status >= 500 || rec.header.Get("Retry-After") != "" {
				if err := store.Abandon(sctx, skey, fp); err != nil {
					o.Logger.ErrorContext(r.Context(), "payment: idempotency abandon failed", "err", err)
				}
			} else {
				resp := IdempotentResponse{Status: rec.status, Header: keptHeaders(rec.header), Body: rec.body.Bytes()}
				if err := store.Complete(sctx, skey, fp, resp, o.Now.Now().Add(o.Retention)); err != nil {
					// The side effect happened but its response is not kept;
					// the handler below must itself be idempotent (the
					// redemption core is), so a retry is still safe.
					o.Logger.ErrorContext(r.Context(), "payment: idempotency complete failed", "err", err)
				}
			}
			h := w.Header()
			for k, v := range rec.header {
				h[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
		})
	}
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func scopedKey(identity, method, path, key string) string {
	h := sha256.New()
	for _, part := range []string{identity, method, path, key} {
		// Length-prefix each part so that no two tuples collide.
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

var keptHeaderNames = []string{"Content-Type", "Location", "Cache-Control"}

func keptHeaders(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range keptHeaderNames {
		if v := h.Values(k); len(v) > 0 {
			out[k] = slices.Clone(v)
		}
	}
	return out
}

func replay(w http.ResponseWriter, s *IdempotentResponse) {
	w.Header().Set("Idempotent-Replayed", "true")
	writeStored(w, &StoredResponse{Status: s.Status, Header: s.Header, Body: s.Body})
}

// Fingerprint is the SHA-256 of the canonical form of a JSON body (see
// CanonicalJSON), or of the raw bytes when body is not JSON. Two bodies
// that differ only in member order or insignificant whitespace have the
// same fingerprint.
func Fingerprint(body []byte) []byte {
	c, err := CanonicalJSON(body)
	if err != nil {
		sum := sha256.Sum256(append([]byte("raw:"), body...))
		return sum[:]
	}
	sum := sha256.Sum256(c)
	return sum[:]
}

// MemoryIdempotencyStore is an in-process IdempotencyStore. It is safe for
// concurrent use; expired records are purged as it goes.
type MemoryIdempotencyStore struct {
	mu     sync.Mutex
	recs   map[string]*idemRecord
	begins int
}

type idemRecord struct {
	fp       []byte
	done     bool
	resp     IdempotentResponse
	deadline time.Time // lease end (in flight) or retention end (done)
}

// NewMemoryIdempotencyStore returns an empty store.
func NewMemoryIdempotencyStore() *MemoryIdempotencyStore {
	return &MemoryIdempotencyStore{recs: map[string]*idemRecord{}}
}

// Begin implements IdempotencyStore.
func (s *MemoryIdempotencyStore) Begin(_ context.Context, key string, fp []byte, now, leaseUntil time.Time) (IdempotencyState, *IdempotentResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.begins++
	if s.begins%1024 == 0 {
		for k, r := range s.recs {
			if !now.Before(r.deadline) {
				delete(s.recs, k)
			}
		}
	}
	if r, ok := s.recs[key]; ok && now.Before(r.deadline) {
		switch {
		case !bytes.Equal(r.fp, fp):
			return IdempotencyMismatch, nil, nil
		case !r.done:
			return IdempotencyInFlight, nil, nil
		}
		resp := cloneResponse(r.resp)
		return IdempotencyCompleted, &resp, nil
	}
	s.recs[key] = &idemRecord{fp: slices.Clone(fp), deadline: leaseUntil}
	return IdempotencyStarted, nil, nil
}

// Complete implements IdempotencyStore.
func (s *MemoryIdempotencyStore) Complete(_ context.Context, key string, fp []byte, resp IdempotentResponse, keepUntil time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key]
	if !ok || r.done || !bytes.Equal(r.fp, fp) {
		return ErrConflict
	}
	r.done, r.resp, r.deadline = true, cloneResponse(resp), keepUntil
	return nil
}

// Abandon implements IdempotencyStore.
func (s *MemoryIdempotencyStore) Abandon(_ context.Context, key string, fp []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[key]; ok && !r.done && bytes.Equal(r.fp, fp) {
		delete(s.recs, key)
	}
	return nil
}

func cloneResponse(r IdempotentResponse) IdempotentResponse {
	return IdempotentResponse{Status: r.Status, Header: r.Header.Clone(), Body: slices.Clone(r.Body)}
}
