package platformtest

import (
	"testing"
	"time"
)

// eventuallyTimeout is how long Eventually waits: far longer than anything takes on an idle
// machine, so that only a condition that never holds fails a test on a loaded one.
const eventuallyTimeout = 20 * time.Second

// Eventually polls cond until it holds, failing the test with what it waited for if it does
// not within a generous deadline. It waits for what services do in the background, which a
// test cannot be told about.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(eventuallyTimeout)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", eventuallyTimeout, what)
		case <-poll.C:
		}
	}
}
