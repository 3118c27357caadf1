// Package poll waits, in tests, for what Tandem's components do in the background and cannot
// announce: a condition is polled until it holds, with a deadline, never slept on.
package poll

import (
	"testing"
	"time"
)

// Timeout is how long Until waits: far longer than anything takes on an idle machine, so that
// only a condition that never holds fails a test on a loaded one.
const Timeout = 20 * time.Second

// interval is how often a condition is checked.
const interval = 5 * time.Millisecond

// Until polls cond until it holds. It fails t, saying what it waited for, when the condition
// does not hold within Timeout or the test ends first.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within is Until with a deadline of the caller's choosing, for a condition that must hold
// sooner than Timeout (a lease that expires, a timer that fires).
func Within(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-tick.C:
		}
	}
}
