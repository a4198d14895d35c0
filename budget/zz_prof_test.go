package budget_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/agentprov/agentprov/budget"
)

func BenchmarkZZProfLedger(b *testing.B) {
	ctx := context.Background()
	l := benchLedger(b)
	projects := make([]string, 10000)
	for i := range projects {
		projects[i] = "p" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h, err := l.Reserve(ctx, budget.Scope{Project: projects[i%len(projects)], Provider: "acme"}, budget.USD(100), "k"+strconv.Itoa(i), nil)
		if err != nil {
			panic(err)
		}
		if _, err := l.Commit(ctx, h.ID, budget.USD(60)); err != nil {
			panic(err)
		}
	}
}

func BenchmarkZZProfBase(b *testing.B) {
	base := newBaseline()
	projects := make([]string, 10000)
	for i := range projects {
		projects[i] = "p" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k := "k" + strconv.Itoa(i)
		if !base.reserve(projects[i%len(projects)], k, 100) {
			panic("x")
		}
		base.commit(k, 60)
	}
}
