package engine

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// roundTrips is a go-redis hook that records the commands of every round trip to Redis while on.
type roundTrips struct {
	mu    sync.Mutex
	on    bool
	trips [][]redis.Cmder
}

func (r *roundTrips) record(cmds []redis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.trips = append(r.trips, cmds)
	}
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.record([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.record(cmds)
		return next(ctx, cmds)
	}
}

// reading returns the round trips that read (HMGET, HGETALL) a key that match accepts.
func (r *roundTrips) reading(match func(key string) bool) [][]redis.Cmder {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]redis.Cmder
	for _, trip := range r.trips {
		for _, c := range trip {
			name := strings.ToLower(c.Name())
			if (name == "hmget" || name == "hgetall") && len(c.Args()) > 1 && match(c.Args()[1].(string)) {
				out = append(out, trip)
				break
			}
		}
	}
	return out
}

// TestChangeBatchReadsInOneRoundTrip: a page of changes that only adds observations reads the
// org's schedule, the user's cycle bookkeeping and the page's mirror entries in one round trip.
func TestChangeBatchReadsInOneRoundTrip(t *testing.T) {
	rdb := servertest.Redis(t)
	h := newHarness(t, rdb, bothWays(0))
	h.ex.create(contactRecord(1, "Ada", "Lovelace", ""))
	h.settle()
	for n := 2; n < 2+2*pageSize; n++ {
		h.ex.create(contactRecord(n, "New", "Contact", ""))
	}
	h.startCycle()
	first := h.changes[0].msg
	if first.GetSource() != tandemv1.System_SYSTEM_EXCHANGE || first.GetLast() {
		t.Fatalf("the first batch is %s page %d (last %v), want a first Exchange page of several", first.GetSource(), first.GetPage(), first.GetLast())
	}
	rt := &roundTrips{}
	rdb.AddHook(rt)
	rt.on = true
	h.deliverChange(0, false)
	rt.mu.Lock()
	rt.on = false
	rt.mu.Unlock()

	keys, err := ledger.KeysFor(uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		t.Fatal(err)
	}
	schedule := func(k string) bool { return strings.Contains(k, testOrg) && strings.Contains(k, "schedule") }
	cycle := func(k string) bool { return k == keys.Cycle }
	mirror := func(k string) bool { return k == keys.Mirror(tandemv1.System_SYSTEM_EXCHANGE) }
	anyOf := func(k string) bool { return schedule(k) || cycle(k) || mirror(k) }
	trips := rt.reading(anyOf)
	if len(trips) != 1 {
		for i, trip := range trips {
			t.Logf("round trip %d: %v", i, trip)
		}
		t.Fatalf("the batch read its schedule, cycle and page in %d round trips, want 1", len(trips))
	}
	for name, match := range map[string]func(string) bool{"schedule": schedule, "cycle": cycle, "mirror": mirror} {
		if len((&roundTrips{trips: trips}).reading(match)) != 1 {
			t.Errorf("the round trip %v does not read the %s", trips[0], name)
		}
	}
	h.drain()
	h.settle()
	h.assertAgree()
}
