package store

import (
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
)

func TestClaimCycle(t *testing.T) {
	st := newTestStore(t, servertest.Redis(t))
	ctx := t.Context()
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

	c, ok, err := st.ClaimCycle(ctx, "00Dorg", t0, t0.Add(time.Minute))
	if err != nil || !ok || c != 1 {
		t.Fatalf("first claim = %d %v %v", c, ok, err)
	}
	if _, ok, _ := st.ClaimCycle(ctx, "00Dorg", t0.Add(30*time.Second), t0.Add(2*time.Minute)); ok {
		t.Fatal("claimed a cycle that was not due")
	}
	if c, ok, _ := st.ClaimCycle(ctx, "00Dorg", t0.Add(time.Minute), t0.Add(2*time.Minute)); !ok || c != 2 {
		t.Fatalf("due claim = %d %v", c, ok)
	}
	if err := st.DueNow(ctx, "00Dorg"); err != nil {
		t.Fatal(err)
	}
	if c, ok, _ := st.ClaimCycle(ctx, "00Dorg", t0.Add(61*time.Second), t0.Add(3*time.Minute)); !ok || c != 3 {
		t.Fatalf("claim after DueNow = %d %v", c, ok)
	}
	sch, err := st.GetSchedule(ctx, "00Dorg")
	if err != nil || sch.Cycle != 3 || !sch.NextAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("schedule = %+v %v", sch, err)
	}
}

func TestClaimCycleOnceAcrossReplicas(t *testing.T) {
	st := newTestStore(t, servertest.Redis(t))
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimed := 0
	for range 8 {
		wg.Go(func() {
			if _, ok, err := st.ClaimCycle(t.Context(), "00Dorg", now, now.Add(time.Hour)); err == nil && ok {
				mu.Lock()
				claimed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if claimed != 1 {
		t.Fatalf("%d replicas claimed the same cycle", claimed)
	}
}
