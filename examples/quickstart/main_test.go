package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRunText(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf bytes.Buffer
	if err := run(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"registrar  yes     registrar/registrar:domain  deployable  12.99 USD one-time",
		"cloud      no      cloud/compute:small         plan        7.00 USD/month",
		"cloud/api:inference         deployable  0.50 USD per 1000 request (metered)",
		"Search category=compute, some price <= 10.00 USD: cloud/compute:small, cloud/api:inference",
		`Lookup registrar/registrar:domain: deployable, 12.99 USD one-time, description "Register a domain name for one year."`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := run(context.Background(), &buf, []string{"-json"}); err != nil {
		t.Fatal(err)
	}
	var got output
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(got.Providers) != 2 || got.Providers[0].ID != "cloud" || got.Providers[1].ID != "registrar" || !got.Providers[1].Signed || got.Providers[0].Signed {
		t.Fatalf("providers: %+v", got.Providers)
	}
	if got.Lookup == nil || got.Lookup.Ref != "registrar/registrar:domain" || got.Lookup.Prices[0].Amount != 1299 {
		t.Fatalf("lookup: %+v", got.Lookup)
	}
	if got.Search == nil || len(got.Search.Matches) != 2 {
		t.Fatalf("search: %+v", got.Search)
	}
}

func TestRunBadFlag(t *testing.T) {
	if err := run(context.Background(), &bytes.Buffer{}, []string{"-nope"}); err == nil {
		t.Fatal("bad flag accepted")
	}
}
