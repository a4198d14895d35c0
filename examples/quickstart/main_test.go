package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestJourney runs the quickstart and checks the outcomes the journey
// promises: accounts created and linked, amounts charged, the cap
// enforced, everything revoked.
func TestJourney(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	if err := run(ctx, &buf, []string{"-json"}); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	var rep report
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}

	if len(rep.Catalog) != 3 {
		t.Fatalf("catalog: %+v", rep.Catalog)
	}
	if len(rep.Added) != 3 {
		t.Fatalf("added: %+v", rep.Added)
	}
	dom, vm, inf := rep.Added[0], rep.Added[1], rep.Added[2]
	// The registrar account was created for the user; the cloud account
	// existed and was linked through the device flow, once.
	if dom.Connection.LinkAction != "created" || dom.Connection.Device != nil {
		t.Errorf("registrar connection: %+v", dom.Connection)
	}
	if vm.Connection.LinkAction != "linked_existing" || vm.Connection.Device == nil || vm.Connection.Device.UserCode == "" {
		t.Errorf("cloud connection: %+v", vm.Connection)
	}
	if inf.Connection.LinkAction != "linked_existing" || inf.Connection.Device != nil || inf.Connection.AccountID != vm.Connection.AccountID {
		t.Errorf("second cloud service did not reuse the link: %+v", inf.Connection)
	}
	if dom.Connection.AccountID == vm.Connection.AccountID {
		t.Error("two providers share an account id")
	}
	// Amounts charged at the catalog prices.
	if dom.Resource.Charged == nil || dom.Resource.Charged.Amount != 1299 {
		t.Errorf("domain charged %+v", dom.Resource.Charged)
	}
	if vm.Resource.Charged == nil || vm.Resource.Charged.Amount != 700 {
		t.Errorf("plan charged %+v", vm.Resource.Charged)
	}
	if inf.Resource.Charged != nil {
		t.Errorf("metered service charged on activation: %+v", inf.Resource.Charged)
	}
	if rep.Deploy["status"] != "running" {
		t.Errorf("deploy: %+v", rep.Deploy)
	}
	// The cap stops metered calls: 700 + 37×250 = 9950 ≤ 10000 < 9950 + 250.
	m := rep.Metered
	if m == nil || m.StoppedBy != "cap_exceeded" || m.Calls != 37 || m.Paid.Amount != 37*250 {
		t.Fatalf("metered: %+v", m)
	}
	spent := map[string]int64{}
	for _, s := range rep.Spend {
		spent[s.Provider] = s.Committed
		if s.Limit == nil || s.Limit.Amount != 10000 || s.Committed > s.Limit.Amount {
			t.Errorf("spend over or without cap: %+v", s)
		}
	}
	if spent["registrar"] != 1299 || spent["cloud"] != 700+37*250 {
		t.Errorf("spend: %+v", rep.Spend)
	}
	if rep.Charges != 1299+700+37*250 {
		t.Errorf("rail total %d", rep.Charges)
	}
	// Everything revoked: acknowledged, tokens dead, vault empty.
	if len(rep.Revoked) != 3 {
		t.Fatalf("revoked: %+v", rep.Revoked)
	}
	for _, r := range rep.Revoked {
		if !r.Revoked {
			t.Errorf("not revoked: %+v", r)
		}
	}
	for _, st := range rep.OldTokens {
		if st != 401 {
			t.Errorf("old token answered %d", st)
		}
	}
	if rep.VaultLeft != 0 {
		t.Errorf("%d credentials left in the vault", rep.VaultLeft)
	}
}

func TestRunText(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	if err := run(ctx, &buf, nil); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	out := buf.String()
	for _, want := range []string{
		"registrar/registrar:domain  deployable  12.99 USD one-time                yes",
		"cloud/compute:small         plan        7.00 USD/month                    no",
		"at registrar: created, scopes domains:write",
		"at cloud: linked_existing, scopes deploy",
		"paid 12.99 USD with a payment token",
		"token stored in the vault: [REDACTED]",
		"37 calls paid in 2 sessions, 92.50 USD in all",
		"call 38 refused before anything was paid: cap_exceeded",
		"credentials left in the vault: 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "apt_") {
		t.Error("an access token was printed")
	}
}

func TestRunBadFlag(t *testing.T) {
	if err := run(context.Background(), &bytes.Buffer{}, []string{"-nope"}); err == nil {
		t.Fatal("bad flag accepted")
	}
}
