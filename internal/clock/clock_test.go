package clock

import (
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC)
	f := NewFake(t0)
	if !f.Now().Equal(t0) {
		t.Fatalf("Now = %v", f.Now())
	}
	if got := f.Advance(time.Second); !got.Equal(t0.Add(time.Second)) || !f.Now().Equal(got) {
		t.Fatalf("Advance = %v, Now = %v", got, f.Now())
	}
	f.Set(t0)
	if !Func(f.Now).Now().Equal(t0) {
		t.Fatal("Func(f.Now) does not read the fake")
	}
	var zero Func
	if d := time.Since(zero.Now()); d < 0 || d > time.Minute {
		t.Fatalf("nil Func is not time.Now: off by %v", d)
	}
}
