package payment_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/google/go-cmp/cmp"
)

var update402 = flag.Bool("update-402", false, "rewrite testdata/402_*")

// golden402 compares got with testdata/name, rewriting it under -update-402.
func golden402(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update402 {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-402 to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from what the code produces:\n got %s\nwant %s", name, got, want)
	}
	return want
}

// decodedJSON re-indents a JSON document for a readable golden file.
func decodedJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestGolden402Challenge(t *testing.T) {
	v, err := payment.FormatChallenge(sampleChallenge(t))
	if err != nil {
		t.Fatal(err)
	}
	wire := golden402(t, "402_challenge.txt", []byte(v+"\n"))
	cs, err := payment.ParseChallenges([]string{strings.TrimSpace(string(wire))})
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	raw, _ := paywire.HdrDecodeB64(c.RequestB64)
	var req map[string]any
	_ = json.Unmarshal(raw, &req)
	view := map[string]any{
		"id": c.ID, "realm": c.Realm, "method": c.Method, "intent": c.Intent, "request": req,
		"expires": c.ExpiresParam(), "description": c.Description, "opaque": c.Opaque,
	}
	golden402(t, "402_challenge.json", decodedJSON(t, view))
}

func TestGolden402Credential(t *testing.T) {
	cred, err := payment.NewTokenCredential(sampleChallenge(t), fakeToken)
	if err != nil {
		t.Fatal(err)
	}
	cred.Source = "did:web:agent.example"
	v, err := payment.FormatCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	wire := golden402(t, "402_credential.txt", []byte(v+"\n"))
	got, err := payment.ParseCredential(strings.TrimSpace(string(wire)))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(cred, got); d != "" {
		t.Fatalf("golden credential parses differently (-want +got):\n%s", d)
	}
	raw, _ := paywire.HdrDecodeB64(strings.TrimPrefix(strings.TrimSpace(string(wire)), "Payment "))
	var doc any
	_ = json.Unmarshal(raw, &doc)
	golden402(t, "402_credential.json", decodedJSON(t, doc))
}

func TestGolden402Receipt(t *testing.T) {
	v, err := payment.FormatReceiptHeader(sampleReceiptHeader())
	if err != nil {
		t.Fatal(err)
	}
	wire := golden402(t, "402_receipt.txt", []byte(v+"\n"))
	got, err := payment.ParseReceiptHeader(strings.TrimSpace(string(wire)))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sampleReceiptHeader(), got); d != "" {
		t.Fatalf("golden receipt parses differently (-want +got):\n%s", d)
	}
	raw, _ := paywire.HdrDecodeB64(strings.TrimSpace(string(wire)))
	var doc any
	_ = json.Unmarshal(raw, &doc)
	golden402(t, "402_receipt.json", decodedJSON(t, doc))
}
