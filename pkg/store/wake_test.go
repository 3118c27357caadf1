package store

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

func TestWake(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
		now := t0
		st := newTestStore(t, rdb)
		st.now = func() time.Time { return now }
		const org = "00Dorg"

		// An org that never had a cycle is due already; its schedule is left alone.
		if due, err := st.Wake(ctx, org); err != nil || !due.Equal(t0) {
			t.Fatalf("wake of an unscheduled org = %v, %v; want due now", due, err)
		}
		if sch, _ := st.GetSchedule(ctx, org); !sch.NextAt.IsZero() {
			t.Fatalf("wake scheduled an unscheduled org: %+v", sch)
		}

		if _, ok, err := st.ClaimCycle(ctx, org, t0, t0.Add(5*time.Minute)); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		cases := []struct {
			name    string
			at      time.Duration // now, after t0
			gap     time.Duration
			wantDue time.Duration // after t0
		}{
			{"right after the cycle started: the gap after its start", 100 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond},
			{"a burst keeps the due time", 200 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond},
			{"a longer gap never delays what is due", 300 * time.Millisecond, time.Second, 500 * time.Millisecond},
			{"once due, due now", 2 * time.Second, 500 * time.Millisecond, 2 * time.Second},
		}
		for _, tc := range cases {
			now = t0.Add(tc.at)
			due, err := st.WakeAfter(ctx, org, tc.gap)
			if err != nil || !due.Equal(t0.Add(tc.wantDue)) {
				t.Fatalf("%s: due %v, %v; want %v", tc.name, due.Sub(t0), err, tc.wantDue)
			}
			if sch, _ := st.GetSchedule(ctx, org); !sch.NextAt.Equal(t0.Add(500 * time.Millisecond)) {
				t.Fatalf("%s: next_at %v", tc.name, sch.NextAt.Sub(t0))
			}
		}

		// A cycle started long ago: due now.
		now = t0.Add(time.Hour)
		if _, ok, err := st.ClaimCycle(ctx, org, t0.Add(10*time.Minute), t0.Add(15*time.Minute)); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if due, err := st.Wake(ctx, org); err != nil || !due.Equal(now) {
			t.Fatalf("wake long after the last cycle = %v, %v; want now", due.Sub(t0), err)
		}
		if _, err := st.WakeAfter(ctx, org, -time.Second); err == nil {
			t.Fatal("negative gap accepted")
		}
		if _, err := st.Wake(ctx, "bad:org"); err == nil {
			t.Fatal("malformed org id accepted")
		}
	})
}

func TestWakeSignals(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		st := newTestStore(t, rdb)
		sigs, err := st.WakeSignals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Garbage on the channel is skipped.
		if err := rdb.Publish(ctx, WakeChannel, "no-due-time").Err(); err != nil {
			t.Fatal(err)
		}
		due, err := st.Wake(ctx, "00Dorg")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case sig := <-sigs:
			if sig.OrgID != "00Dorg" || !sig.Due.Equal(due.Truncate(time.Millisecond)) {
				t.Fatalf("signal %+v, want org 00Dorg due %v", sig, due)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no wake signal")
		}
	})
}

func TestWakeSignalsEndWithContext(t *testing.T) {
	st := newTestStore(t, redisServer.start(t))
	ctx, cancel := context.WithCancel(t.Context())
	sigs, err := st.WakeSignals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-sigs:
		if ok {
			t.Fatal("a signal after the end")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the channel stayed open after its context ended")
	}
}

// TestWakeLinksTheCycle: the span a wake is made under (a mailbox notification's, a CDC
// event's) comes back with the cycle the wake made due, as DueNow's does.
func TestWakeLinksTheCycle(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
		st := newTestStore(t, rdb)
		st.now = func() time.Time { return t0 }
		const org = "00Dorg"
		if _, ok, err := st.ClaimCycle(ctx, org, t0, t0.Add(5*time.Minute)); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if err := st.CyclePublished(ctx, org, 1); err != nil {
			t.Fatal(err)
		}
		ctxA, a := spanCtx(ctx, 0xa, 1, true)
		ctxB, b := spanCtx(ctx, 0xb, 2, true)
		for _, c := range []context.Context{ctxA, ctx, ctxB} {
			if _, err := st.Wake(c, org); err != nil {
				t.Fatal(err)
			}
		}
		sch, ok, err := st.ClaimNextCycle(ctx, org, t0.Add(time.Second), t0.Add(time.Hour))
		if err != nil || !ok {
			t.Fatalf("claim the woken cycle: %v %v", ok, err)
		}
		if !sameSpans(sch.DueBy, []trace.SpanContext{a, b}) {
			t.Fatalf("due by %v, want %v then %v", sch.DueBy, a, b)
		}
	})
}
