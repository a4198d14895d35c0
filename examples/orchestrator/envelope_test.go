package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/examples/internal/demo"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed:\n got %s\nwant %s", name, got, want)
	}
}

// The --json envelope is the CLI's contract with agents: its shape is
// pinned by golden files.
func TestEnvelopeGolden(t *testing.T) {
	var out bytes.Buffer
	o := &output{json: true, stdout: &out, stderr: &out}
	o.result(map[string]any{"vars": map[string]string{"CLOUD_API_TOKEN": "[REDACTED]"}, "redacted": true}, nil)
	golden(t, "envelope_ok.json", out.Bytes())

	out.Reset()
	code := o.failure(classify(&demo.TermsError{Provider: "cloud", URL: "https://cloud.example/terms", Version: "2026-04"}))
	if code != exitNeedsHuman {
		t.Errorf("exit %d", code)
	}
	golden(t, "envelope_error.json", out.Bytes())

	for _, name := range []string{"envelope_ok.json", "envelope_error.json"} {
		b, _ := os.ReadFile(filepath.Join("testdata", name))
		var env map[string]json.RawMessage
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if _, ok := env["ok"]; !ok || len(env) != 2 {
			t.Errorf("%s: members %v", name, env)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
		exit int
	}{
		{demo.ErrNeedsHuman, "human_required", exitNeedsHuman},
		{demo.ErrNotFound, "not_found", exitNotFound},
		{&demo.ProviderError{Provider: "x", Status: 502}, "provider_error", exitProvider},
		{demo.ErrExists, "already_exists", exitError},
		{fmt.Errorf("add: %w", &demo.NameConflictError{Name: "site", Service: "cloud/compute:small", State: "active"}), "name_conflict", exitError},
		{errors.New("boom"), "error", exitError},
	} {
		var ce *cliError
		if !errors.As(classify(tc.err), &ce) || ce.Code != tc.code || ce.Exit != tc.exit {
			t.Errorf("classify(%v) = %+v", tc.err, ce)
		}
	}
}

// Whatever demo.Money prints for a non-negative amount, --limit reads back.
func TestParseUSDRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cents := rapid.Int64Range(0, 100_000_000_000).Draw(t, "cents")
		s := demo.Money(cents, "USD")
		s = s[:len(s)-len(" USD")]
		got, err := parseUSD(s)
		if err != nil || got != cents {
			t.Fatalf("parseUSD(%q) = %d, %v; want %d", s, got, err, cents)
		}
	})
}

func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"50", "0.25", "$7", "1.234", "", "-1", "9999999999", "1e3", "0.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cents, err := parseUSD(s)
		if err != nil {
			return
		}
		if cents < 0 {
			t.Fatalf("parseUSD(%q) = %d", s, cents)
		}
		// Accepted input means what it says: the canonical form parses the same.
		back := demo.Money(cents, "USD")
		if again, err := parseUSD(back[:len(back)-4]); err != nil || again != cents {
			t.Fatalf("%q → %d → %q → %d, %v", s, cents, back, again, err)
		}
	})
}
