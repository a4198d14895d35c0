package budget_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)

func usd(n int64) *budget.Money { m := budget.USD(n); return &m }

// goldens are the wire documents of the package, each with its file.
func goldens() map[string]any {
	return map[string]any{
		"hold_active.json": budget.Hold{
			ID: "hold_3f9c0a1b2c3d4e5f60718293_1", Key: "order-7f3a",
			Scope: budget.Scope{Project: "proj_42", Provider: "cloudflare"}, Service: "registrar:domain", Memo: "example.com",
			Amount: budget.USD(1299), Committed: budget.Money{Currency: "USD"}, State: budget.HoldActive,
			CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute),
		},
		"hold_reversed.json": budget.Hold{
			ID: "hold_3f9c0a1b2c3d4e5f60718293_2", Key: "order-8b21",
			Scope: budget.Scope{Project: "proj_42", Provider: "neon"}, Service: "postgres",
			Amount: budget.USD(2000), Committed: budget.USD(1500), State: budget.HoldReversed,
			CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute), EndedAt: t0.Add(2 * time.Minute), Reason: "settlement refused",
		},
		"usage_report.json": budget.UsageDocument{
			ProtocolVersion: "0.1", UsageID: "modal-inv-2026-11-0042", Project: "proj_42", Provider: "modal",
			Service: "gpu", Amount: budget.USD(4217), OccurredAt: t0.Add(-time.Hour),
		},
		"problem_cap_exceeded.json": budget.ProblemFor(&budget.CapError{
			Counter: budget.Counter{Project: "proj_42", Provider: "neon", Window: "month:2026-11"},
			Limit:   budget.USD(10000), Used: 8000, Requested: 3000,
		}),
		"alert.json": budget.Alert{
			Kind: budget.AlertThreshold, Counter: budget.Counter{Project: "proj_42", Provider: "neon", Window: "month:2026-11"},
			Threshold: 80, Limit: budget.USD(10000), Spent: 8100, At: t0,
		},
		"cap_record.json": budget.CapRecord{
			Key: budget.CapKey{Project: "proj_42", Provider: "neon", Period: budget.Month}, Limit: budget.USD(25000),
			Previous: usd(10000), By: budget.Principal{Kind: budget.PrincipalUser, ID: "usr_9"}, Reason: "launch week", At: t0,
		},
		"scope_usage.json": budget.ScopeUsage{
			Scope: budget.Scope{Project: "proj_42", Provider: "neon"}, At: t0,
			Counters: []budget.CounterUsage{
				{Counter: budget.Counter{Project: "proj_42", Provider: "neon", Window: "month:2026-11"}, Limit: usd(10000), Committed: 5000, Held: 1200, Arrears: 300},
				{Counter: budget.Counter{Project: "proj_42", Window: "month:2026-11"}, Committed: 7000, Held: 1200, Arrears: 300},
			},
			Remaining: usd(3500),
		},
	}
}

func TestGoldenDocuments(t *testing.T) {
	for name, v := range goldens() {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s differs from the encoding:\n got: %s\nwant: %s", path, got, want)
			}
			// And the file decodes back to the same value.
			back := reflect.New(reflect.TypeOf(v))
			if err := json.Unmarshal(want, back.Interface()); err != nil {
				t.Fatal(err)
			}
			again, _ := json.MarshalIndent(back.Elem().Interface(), "", "  ")
			if !bytes.Equal(append(again, '\n'), want) {
				t.Fatalf("%s does not round-trip:\n%s", path, again)
			}
		})
	}
}

func TestParseUsageDocumentGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/usage_report.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := budget.ParseUsageDocument(data)
	if err != nil {
		t.Fatal(err)
	}
	want := budget.UsageReport{Key: "modal-inv-2026-11-0042", Scope: budget.Scope{Project: "proj_42", Provider: "modal"},
		Service: "gpu", Amount: budget.USD(4217), At: t0.Add(-time.Hour)}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("ParseUsageDocument = %+v; want %+v", r, want)
	}
	if d := r.Document(); d.UsageID != want.Key || d.ProtocolVersion != "0.1" {
		t.Fatalf("Document = %+v", d)
	}
}

func TestParseUsageDocumentRejects(t *testing.T) {
	valid := `{"protocol_version":"0.1","usage_id":"u1","project":"p","provider":"modal","amount":{"amount":5,"currency":"USD"},"occurred_at":"2026-11-10T12:00:00Z"}`
	if _, err := budget.ParseUsageDocument([]byte(valid)); err != nil {
		t.Fatalf("valid document: %v", err)
	}
	// Unknown members are ignored (minor versions add members).
	if _, err := budget.ParseUsageDocument([]byte(strings.Replace(valid, `"u1"`, `"u1","x_new":[1,2]`, 1))); err != nil {
		t.Fatalf("unknown member: %v", err)
	}
	for name, body := range map[string]string{
		"float amount":    strings.Replace(valid, `"amount":5`, `"amount":5.5`, 1),
		"exponent amount": strings.Replace(valid, `"amount":5`, `"amount":5e2`, 1),
		"string amount":   strings.Replace(valid, `"amount":5`, `"amount":"5"`, 1),
		"zero amount":     strings.Replace(valid, `"amount":5`, `"amount":0`, 1),
		"negative amount": strings.Replace(valid, `"amount":5`, `"amount":-5`, 1),
		"lower currency":  strings.Replace(valid, `"USD"`, `"usd"`, 1),
		"no currency":     strings.Replace(valid, `,"currency":"USD"`, ``, 1),
		"major version":   strings.Replace(valid, `"0.1"`, `"1.0"`, 1),
		"no version":      strings.Replace(valid, `"protocol_version":"0.1",`, ``, 1),
		"no usage_id":     strings.Replace(valid, `"usage_id":"u1",`, ``, 1),
		"space in id":     strings.Replace(valid, `"u1"`, `"u 1"`, 1),
		"bad provider":    strings.Replace(valid, `"modal"`, `"Modal"`, 1),
		"bad project":     strings.Replace(valid, `"project":"p"`, `"project":"p/q"`, 1),
		"no time":         strings.Replace(valid, `,"occurred_at":"2026-11-10T12:00:00Z"`, ``, 1),
		"bad time":        strings.Replace(valid, `2026-11-10T12:00:00Z`, `yesterday`, 1),
		"trailing":        valid + `{}`,
		"not json":        `amount=5`,
		"array":           `[` + valid + `]`,
		"too large":       valid[:len(valid)-1] + `,"pad":"` + strings.Repeat("x", budget.MaxUsageDocumentSize) + `"}`,
		"huge amount":     strings.Replace(valid, `"amount":5`, `"amount":99999999999999999999`, 1),
	} {
		if _, err := budget.ParseUsageDocument([]byte(body)); !errors.Is(err, budget.ErrInvalidRequest) && !errors.Is(err, budget.ErrInvalidAmount) {
			t.Errorf("%s: error %v; want ErrInvalidRequest or ErrInvalidAmount", name, err)
		}
	}
}

func FuzzParseUsageDocument(f *testing.F) {
	if data, err := os.ReadFile("testdata/usage_report.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"protocol_version":"0.1","usage_id":"u1","project":"p","provider":"modal","amount":{"amount":5,"currency":"USD"},"occurred_at":"2026-11-10T12:00:00Z"}`))
	f.Add([]byte(`{"amount":{"amount":1e400}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := budget.ParseUsageDocument(data)
		if err != nil {
			var e *budget.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("error %v is not a 400 *budget.Error", err)
			}
			return
		}
		// Whatever parses is valid, and survives a round trip unchanged.
		if r.Amount.Amount <= 0 || r.Key == "" || r.At.IsZero() {
			t.Fatalf("accepted invalid report %+v", r)
		}
		out, err := json.Marshal(r.Document())
		if err != nil {
			t.Fatal(err)
		}
		r2, err := budget.ParseUsageDocument(out)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v, %v; want %+v", r2, err, r)
		}
	})
}

func TestWriteProblem(t *testing.T) {
	rec := httptest.NewRecorder()
	budget.WriteProblem(rec, &budget.CapError{Counter: budget.Counter{Project: "p", Provider: "neon", Window: "month:2026-11"},
		Limit: budget.USD(10000), Used: 9000, Requested: 2000})
	if rec.Code != 403 || rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, headers %v", rec.Code, rec.Header())
	}
	var p budget.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != "cap_exceeded" || p.Cap == nil || p.Cap.Remaining != 1000 {
		t.Fatalf("problem = %+v", p)
	}
	// Store failures never leak their text.
	rec = httptest.NewRecorder()
	budget.WriteProblem(rec, errors.New("pq: password authentication failed for user admin"))
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "password") || !strings.Contains(rec.Body.String(), "store_unavailable") {
		t.Fatalf("store failure answered %d %s", rec.Code, rec.Body)
	}
}
