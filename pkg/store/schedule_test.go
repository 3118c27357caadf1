package store

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

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

// spanCtx is ctx under a remote span of the given trace and span ids.
func spanCtx(ctx context.Context, traceByte, spanByte byte, sampled bool) (context.Context, trace.SpanContext) {
	cfg := trace.SpanContextConfig{TraceID: trace.TraceID{traceByte, 1}, SpanID: trace.SpanID{spanByte, 2}, Remote: true}
	if sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(cfg)
	return trace.ContextWithSpanContext(ctx, sc), sc
}

func sameSpans(got, want []trace.SpanContext) bool {
	return slices.EqualFunc(got, want, func(a, b trace.SpanContext) bool { return a.Equal(b) })
}

// TestDueNowLinksTheCycle: the span contexts DueNow is called under come back with the cycle it
// made due, once, and also when that cycle is resumed from the outbox.
func TestDueNowLinksTheCycle(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		st := newTestStore(t, rdb)
		ctx := t.Context()
		const org = "00Dorg"
		t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
		claim := func(at time.Duration) Schedule {
			t.Helper()
			sch, ok, err := st.ClaimNextCycle(ctx, org, t0.Add(at), t0.Add(at+time.Hour))
			if err != nil || !ok {
				t.Fatalf("claim at %s: %v %v", at, ok, err)
			}
			if err := st.CyclePublished(ctx, org, sch.Cycle); err != nil {
				t.Fatal(err)
			}
			return sch
		}

		// Without a span, nothing is kept.
		if err := st.DueNow(ctx, org); err != nil {
			t.Fatal(err)
		}
		if sch := claim(0); sch.Cycle != 1 || len(sch.DueBy) != 0 || !sch.StartedAt.Equal(t0) || !sch.NextAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("cycle due without a span: %+v", sch)
		}

		// Calls under spans: each kept once, the latest call last; a call without a span adds
		// nothing and takes nothing away.
		ctxA, a := spanCtx(ctx, 0xa, 1, true)
		ctxB, b := spanCtx(ctx, 0xb, 2, false)
		for _, c := range []context.Context{ctxA, ctxB, ctxA, ctx} {
			if err := st.DueNow(c, org); err != nil {
				t.Fatal(err)
			}
		}
		if sch := claim(time.Minute); !sameSpans(sch.DueBy, []trace.SpanContext{b, a}) {
			t.Fatalf("due by %v, want %v then %v", sch.DueBy, b, a)
		}
		if got, _ := rdb.HExists(ctx, orgKey(org, orgScheduleName), "unpublished_due_by").Result(); got {
			t.Error("a published cycle's due_by is still in the outbox")
		}

		// Taken by the claim: the cycle after it is due by its interval.
		if sch := claim(2 * time.Hour); len(sch.DueBy) != 0 {
			t.Fatalf("the next cycle is due by %v too", sch.DueBy)
		}

		// A burst keeps the latest maxDueBy.
		var want []trace.SpanContext
		for i := range maxDueBy + 3 {
			c, sc := spanCtx(ctx, byte(i+1), byte(i+1), true)
			want = append(want, sc)
			if err := st.DueNow(c, org); err != nil {
				t.Fatal(err)
			}
		}
		if sch := claim(3 * time.Hour); !sameSpans(sch.DueBy, want[3:]) {
			t.Fatalf("due by %d spans %v, want the latest %d", len(sch.DueBy), sch.DueBy, maxDueBy)
		}

		// A cycle left unpublished is resumed with its links.
		if err := st.DueNow(ctxA, org); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(4 * time.Hour)
		sch, ok, err := st.ClaimNextCycle(ctx, org, at, at.Add(time.Hour))
		if err != nil || !ok || !sameSpans(sch.DueBy, []trace.SpanContext{a}) {
			t.Fatalf("claim: %+v %v %v", sch, ok, err)
		}
		resumed, ok, err := st.ResumeCycle(ctx, org, at.Add(CyclePublishHold))
		if err != nil || !ok || resumed.Cycle != sch.Cycle || !sameSpans(resumed.DueBy, []trace.SpanContext{a}) {
			t.Fatalf("resumed %+v %v %v, want cycle %d due by %v", resumed, ok, err, sch.Cycle, a)
		}
	})
}

func TestParseDueBy(t *testing.T) {
	_, a := spanCtx(t.Context(), 0xa, 1, true)
	got := parseDueBy("garbage 00-0a010000000000000000000000000000-0102000000000000-01 00-00000000000000000000000000000000-0000000000000000-00")
	if !sameSpans(got, []trace.SpanContext{a}) {
		t.Fatalf("parseDueBy = %v, want only %v", got, a)
	}
}
