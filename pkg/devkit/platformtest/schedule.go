package platformtest

import (
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/store"
)

// ClaimCycles starts the org's cycles until its schedule stands at cycle or beyond, as the
// scheduler's ticks would. The reconciler takes in only batches of cycles the schedule has
// started, so a test that hands it batches of cycle N claims up to N first.
func ClaimCycles(t testing.TB, st *store.Store, orgID string, cycle uint64) {
	t.Helper()
	for {
		current, _, err := st.ScheduledCycle(t.Context(), orgID)
		if err != nil {
			t.Fatal(err)
		}
		if current >= cycle {
			return
		}
		now := time.Now()
		if _, ok, err := st.ClaimCycle(t.Context(), orgID, now, now); err != nil || !ok {
			t.Fatalf("claim cycle %d of org %s: %v, %v", current+1, orgID, ok, err)
		}
	}
}
