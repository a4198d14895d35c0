package discovery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const benchProviders = 100

type benchEnv struct {
	f      *farm
	trust  []TrustedProvider
	client *http.Client
	urls   []string // metadata and catalog URL of every provider
	raw    *http.ServeMux
	rawURL string
}

// newBenchEnv serves 100 signed providers from one loopback server, plus a
// plain mux serving the same bytes for the baseline.
func newBenchEnv(b *testing.B) *benchEnv {
	key := testKey("bench")
	env := &benchEnv{f: newFarm(b), raw: http.NewServeMux()}
	env.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	b.Cleanup(env.client.CloseIdleConnections)
	rawSrv := newFarm(b)
	rawSrv.set("raw", env.raw)
	for i := range benchProviders {
		id := fmt.Sprintf("p%03d", i)
		cat := testCatalog(id, append(computeServices(), domainService(int64(1000+i)))...)
		h := env.f.provider(b, id, cat, key)
		env.trust = append(env.trust, TrustedProvider{ID: id, BaseURL: env.f.base(id), Keys: publicSet(id+"-k1", key)})
		for _, p := range []string{MetadataPath, "/catalog"} {
			body := do(h, "GET", "/"+id+p).Body.Bytes()
			path := "/raw/" + id + p
			env.raw.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			})
			env.urls = append(env.urls, rawSrv.srv.URL+path)
		}
	}
	return env
}

// baseline GETs the same bytes with the same concurrency, doing nothing else.
func (env *benchEnv) baseline(b *testing.B) time.Duration {
	start := time.Now()
	sem := make(chan struct{}, DefaultConcurrency)
	var wg sync.WaitGroup
	for _, u := range env.urls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := env.client.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func report(b *testing.B, agg, base time.Duration) {
	n := float64(b.N * benchProviders)
	b.ReportMetric(float64(agg.Nanoseconds())/n, "ns/provider")
	b.ReportMetric(float64(base.Nanoseconds())/n, "baseline-ns/provider")
	b.ReportMetric(float64(agg)/float64(base), "x-baseline")
}

// BenchmarkAggregateCold fetches, verifies and validates 100 signed
// providers from scratch each iteration; the baseline is plain GETs of the
// same metadata and catalog bytes in the same run.
func BenchmarkAggregateCold(b *testing.B) {
	env := newBenchEnv(b)
	var aggT, baseT time.Duration
	for b.Loop() {
		baseT += env.baseline(b)
		start := time.Now()
		agg, err := NewAggregator(env.trust, &AggregatorOptions{HTTPClient: env.client})
		if err != nil {
			b.Fatal(err)
		}
		rep := agg.Refresh(context.Background())
		aggT += time.Since(start)
		if rep.Results[0].Err != nil {
			b.Fatal(rep.Results[0].Err)
		}
	}
	report(b, aggT, baseT)
}

// BenchmarkAggregateRevalidated refreshes 100 providers whose documents are
// unchanged: every request is answered 304.
func BenchmarkAggregateRevalidated(b *testing.B) {
	env := newBenchEnv(b)
	agg, err := NewAggregator(env.trust, &AggregatorOptions{HTTPClient: env.client})
	if err != nil {
		b.Fatal(err)
	}
	agg.Refresh(context.Background())
	var aggT, baseT time.Duration
	for b.Loop() {
		baseT += env.baseline(b)
		start := time.Now()
		rep := agg.Refresh(context.Background())
		aggT += time.Since(start)
		if rep.Results[0].Status != StatusUnchanged {
			b.Fatal(rep.Results[0])
		}
	}
	report(b, aggT, baseT)
}

// BenchmarkSignCatalog compares signing a catalog version (done once per
// SetCatalog) to only marshalling it.
func BenchmarkSignCatalog(b *testing.B) {
	cat := testCatalog("p", append(computeServices(), domainService(1))...)
	key := jose.SigningKey{Algorithm: jose.EdDSA, Key: testKey("p")}
	var signT, marshalT time.Duration
	for b.Loop() {
		start := time.Now()
		_ = catalogJSON(b, cat)
		marshalT += time.Since(start)
		start = time.Now()
		if _, err := SignCatalog(cat, key, "k"); err != nil {
			b.Fatal(err)
		}
		signT += time.Since(start)
	}
	b.ReportMetric(float64(signT.Nanoseconds())/float64(b.N), "sign-ns/op")
	b.ReportMetric(float64(signT)/float64(marshalT), "x-marshal")
}
