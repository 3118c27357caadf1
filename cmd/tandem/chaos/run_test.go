package chaos

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChaosMinute is `make test`'s run of `tandem chaos`: a minute of edits and faults against
// the real services as processes, a real nats-server and redis-server, then the check of both
// simulators against the model. TANDEM_CHAOS_SEED picks another schedule.
func TestChaosMinute(t *testing.T) {
	seed := uint64(1)
	if s := os.Getenv("TANDEM_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("TANDEM_CHAOS_SEED=%q: %v", s, err)
		}
	}
	res, err := Run(t.Context(), Options{
		Duration: time.Minute, Seed: seed, Users: 3, ContactsPerUser: 20, Settle: 3 * time.Minute,
		Progress: t.Output(),
	})
	if err != nil {
		t.Fatalf("chaos run (seed %d): %v", seed, err)
	}
	if !res.Converged {
		t.Fatalf("seed %d: %d lost, %d duplicated, %d resurrected, %d differing, %d unknown, %d users stalled; logs and final state in %s:\n  %s",
			seed, res.Lost, res.Duplicated, res.Resurrected, res.Differing, res.Unknown, res.StalledUsers, res.Dir, strings.Join(res.Violations, "\n  "))
	}
	if res.Edits == 0 || len(res.Faults) == 0 {
		t.Errorf("a run without edits or faults proves nothing: %d edits, faults %v", res.Edits, res.Faults)
	}
	t.Logf("seed %d passed: %d edits, %d people in sync, faults %v, %.0fs", seed, res.Edits, res.People, res.Faults, res.Seconds)
}
