package poll

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of ending the test.
type recorder struct {
	testing.TB
	failed atomic.Bool
	msg    string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed.Store(true)
	r.msg = format
	// Fatalf must not return: stop this goroutine the way testing does.
	runtime.Goexit()
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	Until(t, "the third call", func() bool { return calls.Add(1) >= 3 })
	if calls.Load() != 3 {
		t.Errorf("condition checked %d times, want 3", calls.Load())
	}
}

func TestWithinFailsWhenTheConditionNeverHolds(t *testing.T) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		Within(r, 50*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if !r.failed.Load() {
		t.Fatal("Within returned for a condition that never held")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("gave up after %s, before its deadline", waited)
	}
}
