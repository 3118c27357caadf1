package keylock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLockSerialisesAKey: a second holder of a key waits for the first, another key does not,
// a waiter whose context ends gives up, and idle keys are forgotten.
func TestLockSerialisesAKey(t *testing.T) {
	var l Locks[string]
	unlock, err := l.Lock(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.Lock(t.Context(), "b")
	if err != nil {
		t.Fatalf("another key waited: %v", err)
	}
	other()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiter whose context ended: %v, want the deadline", err)
	}

	got := make(chan struct{})
	go func() {
		u, err := l.Lock(t.Context(), "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("the second holder did not wait for the first")
	case <-time.After(20 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the second holder never got the lock")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.locks) != 0 {
		t.Errorf("%d idle keys kept", len(l.locks))
	}
}
