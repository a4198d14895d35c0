package payment_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/google/go-cmp/cmp"
)

func sampleReceiptHeader() *payment.ReceiptHeader {
	return &payment.ReceiptHeader{
		Status: payment.ReceiptStatusSuccess, Method: payment.MethodID, Timestamp: time.Date(2026, 11, 22, 10, 0, 1, 250e6, time.UTC),
		Reference: "hold_01", ChallengeID: "abc", Amount: "250", Currency: "USD", Signed: "eyJ.e30.c2ln",
	}
}

func TestReceiptHeaderRoundTrip(t *testing.T) {
	r := sampleReceiptHeader()
	v, err := payment.FormatReceiptHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(v, "=+/ ") {
		t.Fatalf("%q is not base64url without padding", v)
	}
	got, err := payment.ParseReceiptHeader(v)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func TestReceiptHeaderErrors(t *testing.T) {
	enc := func(s string) string { return paywire.HdrB64.EncodeToString([]byte(s)) }
	for name, v := range map[string]string{
		"not base64":       "***",
		"not json":         enc("x"),
		"array":            enc("[]"),
		"no status":        enc(`{"reference":"r","timestamp":"2026-01-01T00:00:00Z"}`),
		"failed status":    enc(`{"status":"failed","reference":"r","timestamp":"2026-01-01T00:00:00Z"}`),
		"no reference":     enc(`{"status":"success","timestamp":"2026-01-01T00:00:00Z"}`),
		"bad timestamp":    enc(`{"status":"success","reference":"r","timestamp":"yesterday"}`),
		"status not text":  enc(`{"status":1,"reference":"r","timestamp":"2026-01-01T00:00:00Z"}`),
		"trailing garbage": enc(`{"status":"success","reference":"r","timestamp":"2026-01-01T00:00:00Z"} x`),
		"too large":        strings.Repeat("A", payment.MaxHeaderBytes+1),
	} {
		if got, err := payment.ParseReceiptHeader(v); !errors.Is(err, payment.ErrMalformedReceipt) {
			t.Errorf("%s: got %+v, %v; want malformed_receipt", name, got, err)
		}
	}
	bad := sampleReceiptHeader()
	bad.Status = "pending"
	if _, err := payment.FormatReceiptHeader(bad); !errors.Is(err, payment.ErrMalformedReceipt) {
		t.Errorf("format of a non-success receipt: %v", err)
	}
}

func FuzzParseReceipt(f *testing.F) {
	v, _ := payment.FormatReceiptHeader(sampleReceiptHeader())
	f.Add(v)
	f.Add(paywire.HdrB64.EncodeToString([]byte(`{"status":"success","reference":"0xabc","timestamp":"2026-01-01T00:00:00.000Z","extra":{"a":1}}`)))
	f.Add("e30")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := payment.ParseReceiptHeader(s)
		if err != nil {
			if !errors.Is(err, payment.ErrMalformedReceipt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		v, err := payment.FormatReceiptHeader(r)
		if err != nil {
			if strings.Contains(err.Error(), "-byte limit") {
				return // re-encoding may grow a large value over the limit
			}
			t.Fatalf("parsed %+v but cannot format: %v", r, err)
		}
		again, err := payment.ParseReceiptHeader(v)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		// Formatting keeps milliseconds, the draft's precision.
		r.Timestamp = r.Timestamp.Truncate(time.Millisecond)
		if d := cmp.Diff(r, again); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}
