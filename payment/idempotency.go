package payment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/paywire"
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

// String is the state's snake_case name, as it appears in logs.
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
	Now func() time.Time
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
	// MaxResponseBytes bounds the response body kept for replay; default
	// 1 MiB. A final response whose body outgrows it is streamed to its
	// caller unbuffered, and the key is completed with a 500
	// idempotency_response_too_large problem in its place: replays answer
	// that and never run the handler again (see Idempotent).
	MaxResponseBytes int64
	// Logger receives store failures; default slog.Default().
	Logger *slog.Logger
}

// MaxIdempotencyKeyLength is the longest Idempotency-Key accepted.
const MaxIdempotencyKeyLength = 255

// ErrIdempotencyResponseTooLarge is what a replay answers when the first
// response under its key was too large to keep (see
// IdempotencyOptions.MaxResponseBytes): the request was processed, so it
// must not be repeated under a new key, but its response cannot be
// replayed.
var ErrIdempotencyResponseTooLarge = sentinel("idempotency_response_too_large", http.StatusInternalServerError,
	"the request was processed but its response was too large to keep for replay")

// Idempotent returns middleware applying the idempotency rules of §5.3 to
// state-changing requests (every method but GET, HEAD and OPTIONS):
// Idempotency-Key is required (400 idempotency_key_required); the same key
// and the same body (compared as canonical JSON) replay the first response
// with "Idempotent-Replayed: true"; the same key with another body gives
// 422 idempotency_conflict; a duplicate while the first is running gives
// 409 idempotency_in_flight with Retry-After. Responses with status 5xx or
// carrying Retry-After (transient answers) are not kept, so a retry runs
// the handler again.
//
// Responses are buffered so they can be stored before they are sent, up to
// MaxResponseBytes. A larger final response is sent to its caller as it is
// written, and the key is completed with a stored 500
// idempotency_response_too_large problem instead: a replay gets that
// answer, never a second run of the handler, because re-executing a
// state-changing request is worse than not replaying its result. (A
// transient response that outgrows the limit is streamed and not kept, as
// usual.) The middleware is safe for concurrent use.
func Idempotent(store IdempotencyStore, opts *IdempotencyOptions) func(http.Handler) http.Handler {
	if opts == nil {
		opts = &IdempotencyOptions{}
	}
	o := *opts
	o.Retention = max(o.Retention, 24*time.Hour)
	o.Lease = paywire.OrDefault(o.Lease, time.Minute)
	o.RetryAfter = paywire.OrDefault(o.RetryAfter, time.Second)
	if o.MaxBody <= 0 {
		o.MaxBody = 64 << 10
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 1 << 20
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
				WriteErr(w, ErrIdempotencyKeyRequired)
				return
			}
			if len(key) > MaxIdempotencyKeyLength || !printable(key) {
				WriteErr(w, ErrInvalidRequest.With(nil, "Idempotency-Key must be 1-%d printable ASCII characters", MaxIdempotencyKeyLength))
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
			now := clock.Func(o.Now).Now()
			state, stored, err := store.Begin(r.Context(), skey, fp, now, now.Add(o.Lease))
			if err != nil {
				o.Logger.ErrorContext(r.Context(), "payment: idempotency store failed", "err", err)
				WriteErr(w, ErrStore)
				return
			}
			switch state {
			case IdempotencyCompleted:
				replay(w, stored)
				return
			case IdempotencyMismatch:
				WriteErr(w, ErrIdempotencyConflict)
				return
			case IdempotencyInFlight:
				w.Header().Set("Retry-After", retryAfter)
				problem.Write(w, ErrIdempotencyInFlight.Status, ErrIdempotencyInFlight.Code, ErrIdempotencyInFlight.Detail)
				return
			case IdempotencyStarted:
			default:
				WriteErr(w, ErrStore)
				return
			}
			// Store the outcome even if the client went away: a retry must
			// find it.
			sctx := context.WithoutCancel(r.Context())
			rec := &idemWriter{w: w, header: http.Header{}, limit: o.MaxResponseBytes}
			rec.spill = func(status int, header http.Header) {
				// Settle the key before the first byte leaves: a retry
				// must find the outcome, not a free key.
				if transient(status, header) {
					if err := store.Abandon(sctx, skey, fp); err != nil {
						o.Logger.ErrorContext(r.Context(), "payment: idempotency abandon failed", "err", err)
					}
					return
				}
				o.Logger.WarnContext(r.Context(), "payment: idempotent response too large to keep", "status", status, "limit", o.MaxResponseBytes)
				if err := store.Complete(sctx, skey, fp, tooLargeResponse(status), clock.Func(o.Now).Now().Add(o.Retention)); err != nil {
					o.Logger.ErrorContext(r.Context(), "payment: idempotency complete failed", "err", err)
				}
			}
			finished := false
			defer func() {
				if !finished {
					_ = store.Abandon(sctx, skey, fp) // panic in next: free the key
				}
			}()
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(rec, r)
			finished = true
			if rec.streaming {
				return // settled by spill, already sent
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			if transient(rec.status, rec.header) {
				if err := store.Abandon(sctx, skey, fp); err != nil {
					o.Logger.ErrorContext(r.Context(), "payment: idempotency abandon failed", "err", err)
				}
			} else {
				resp := IdempotentResponse{Status: rec.status, Header: keptHeaders(rec.header), Body: rec.body.Bytes()}
				if err := store.Complete(sctx, skey, fp, resp, clock.Func(o.Now).Now().Add(o.Retention)); err != nil {
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

// transient reports whether a response is a transient answer, which is
// not kept so that a retry runs the handler again.
func transient(status int, h http.Header) bool {
	return status >= 500 || h.Get("Retry-After") != ""
}

// tooLargeResponse is the record kept in place of a response that
// outgrew MaxResponseBytes.
func tooLargeResponse(status int) IdempotentResponse {
	e := ErrIdempotencyResponseTooLarge
	body, _ := json.Marshal(problem.Details{
		Type:   problem.TypeBase + e.Code,
		Title:  http.StatusText(e.Status),
		Status: e.Status,
		Code:   e.Code,
		Detail: fmt.Sprintf("the request was processed (status %d) but its response was too large to keep for replay; do not repeat it under a new key", status),
	})
	return IdempotentResponse{
		Status: e.Status,
		Header: http.Header{"Content-Type": {problem.MediaType}, "Cache-Control": {"no-store"}},
		Body:   append(body, '\n'),
	}
}

// idemWriter buffers a response up to limit bytes of body. When a write
// would pass the limit it calls spill once with the status and headers,
// sends those and the buffered bytes to w, and passes every later write
// straight through, so memory stays bounded whatever the handler writes.
type idemWriter struct {
	w         http.ResponseWriter
	header    http.Header
	status    int
	body      bytes.Buffer
	limit     int64
	spill     func(status int, header http.Header)
	streaming bool
}

func (b *idemWriter) Header() http.Header { return b.header }

func (b *idemWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *idemWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.streaming {
		return b.w.Write(p)
	}
	if int64(b.body.Len())+int64(len(p)) <= b.limit {
		return b.body.Write(p)
	}
	b.spill(b.status, b.header)
	b.streaming = true
	h := b.w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	b.w.WriteHeader(b.status)
	if _, err := b.w.Write(b.body.Bytes()); err != nil {
		return 0, err
	}
	b.body = bytes.Buffer{}
	return b.w.Write(p)
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
	WriteStored(w, &StoredResponse{Status: s.Status, Header: s.Header, Body: s.Body})
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
