package clock_test

import (
	"fmt"
	"time"

	"github.com/agentprov/agentprov/internal/clock"
)

// A Fake clock moves only when told to, so that expiry logic is tested
// without sleeping.
func ExampleFake() {
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	expires := c.Now().Add(time.Minute)
	c.Advance(59 * time.Second)
	fmt.Println(c.Now().Before(expires))
	c.Advance(time.Second)
	fmt.Println(c.Now().Before(expires))
	// Output:
	// true
	// false
}
