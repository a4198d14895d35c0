//go:build unix

package budget_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time used by the whole process so far, GC included. A
// benchmark on a loaded machine compares CPU time rather than wall time,
// which waits for other processes.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
