package userlock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/userlock"
)

var uk = store.UserKey{OrgID: "00Dorg", UserID: "005user"}

// Work on one user never overlaps, whether it comes from one process or from several.
func TestDoSerialisesAcrossProcesses(t *testing.T) {
	st := store.New(servertest.Redis(t), nil)
	processes := []*userlock.Locks{userlock.New(st, "apply-exchange", time.Second), userlock.New(st, "apply-exchange", time.Second)}
	var running, overlaps, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			err := processes[i%2].Do(t.Context(), uk, 10*time.Second, nil, func(context.Context, *store.Lease) error {
				if running.Add(1) > 1 {
					overlaps.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
				running.Add(-1)
				done.Add(1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 || done.Load() != 8 {
		t.Fatalf("%d of 8 ran, %d overlapped", done.Load(), overlaps.Load())
	}
}

// A crashed holder's lease is taken over once it expires; a live holder that keeps it longer
// than the wait makes Do give up.
func TestDoWaitsForTheHolder(t *testing.T) {
	st := store.New(servertest.Redis(t), nil)
	if _, err := st.AcquireLease(t.Context(), uk, "apply-salesforce", 300*time.Millisecond); err != nil {
		t.Fatal(err) // never released: a crashed holder
	}
	l := userlock.New(st, "apply-salesforce", time.Second)
	waits := 0
	ran := false
	err := l.Do(t.Context(), uk, 5*time.Second, func(*store.LeaseHeldError) { waits++ }, func(context.Context, *store.Lease) error {
		ran = true
		return nil
	})
	if err != nil || !ran || waits == 0 {
		t.Fatalf("after a crashed holder: err %v, ran %v, waited %d times", err, ran, waits)
	}

	held, err := st.AcquireLease(t.Context(), uk, "apply-salesforce", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Release(context.Background()) }()
	err = l.Do(t.Context(), uk, 300*time.Millisecond, nil, func(context.Context, *store.Lease) error {
		t.Error("ran while another process held the lease")
		return nil
	})
	var gaveUp *userlock.GaveUp
	if !errors.As(err, &gaveUp) || !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("err = %v, want GaveUp wrapping ErrLeaseHeld", err)
	}
}
