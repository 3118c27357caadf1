package store

import (
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"testing"
	"time"
)

func TestActivityWindows(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	st := newTestStore(t, servertest.Redis(t), WithClock(func() time.Time { return now }))
	ctx := t.Context()
	for _, a := range []struct {
		n  int64
		at time.Duration
	}{{5, -10 * time.Minute}, {7, -59 * time.Minute}, {11, -3 * time.Hour}, {13, -23 * time.Hour}, {17, -30 * time.Hour}} {
		if err := st.AddActivity(ctx, "00Dorg", "contact", a.n, now.Add(a.at)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Activity(ctx, "00Dorg", "contact")
	if err != nil {
		t.Fatal(err)
	}
	if got.LastHour != 12 || got.LastDay != 36 {
		t.Errorf("activity = %+v, want 12 in the last hour and 36 in the last day", got)
	}
	if !got.Last.Equal(now.Add(-30 * time.Hour)) {
		// AddActivity records the time of the last call, which here was the oldest.
		t.Errorf("last = %v", got.Last)
	}
	// The 30-hour-old minute was forgotten.
	raw, _ := st.Client().HGetAll(ctx, orgKey("00Dorg", orgActivityName, "contact")).Result()
	if len(raw) != 5 {
		t.Errorf("fields after pruning = %d, want 4 minutes + last", len(raw))
	}
	if _, err := st.Activity(ctx, "bad org", "contact"); err == nil {
		t.Error("invalid org id accepted")
	}
}
