package budget

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The cache answers exactly what WindowOf computes, for any order of
// instants, including ones before the cached range.
func TestWindowCacheProperty(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		loc = time.UTC
	}
	rapid.Check(t, func(rt *rapid.T) {
		c := &windowCache{loc: loc}
		base := time.Date(2026, 12, 28, 0, 0, 0, 0, loc)
		for i := 0; i < 50; i++ {
			at := base.Add(time.Duration(rapid.Int64Range(-40*24*3600, 40*24*3600).Draw(rt, "s")) * time.Second)
			s := c.at(at)
			if rapid.Bool().Draw(rt, "lookup") {
				s = c.lookup(at)
			}
			for j, p := range periods {
				if want := WindowOf(p, at, loc); s.w[j] != want {
					rt.Fatalf("cache at %v: %s; want %s", at, s.w[j], want)
				}
			}
		}
	})
}
