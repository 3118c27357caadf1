package bench

import (
	"runtime"
	"testing"
)

func TestOwnerOfNamesWhoseCodeAllocated(t *testing.T) {
	for fn, want := range map[string]heapOwner{
		"github.com/tandem-sync/tandem/pkg/sim/ewssim.(*Server).ServeHTTP":              ownerSimulators,
		"github.com/tandem-sync/tandem/pkg/sim/sfsim.(*Server).Insert":                  ownerSimulators,
		"github.com/nats-io/nats-server/v2/server.(*stream).processInboundJetStreamMsg": ownerNATS,
		"github.com/tandem-sync/tandem/cmd/tandem/bench.(*run).converge":                ownerHarness,
		"github.com/tandem-sync/tandem/cmd/tandem/devenv.(*Env).disagreements":          ownerHarness,
		"github.com/tandem-sync/tandem/pkg/reconcile/engine.(*Syncer).HandleChanges":    ownerServices,
		"github.com/nats-io/nats.go/jetstream.(*pullConsumer).Consume":                  ownerServices,
		"google.golang.org/protobuf/proto.UnmarshalOptions.unmarshal":                   ownerServices,
		"github.com/tandem-sync/tandem/pkg/simple.Thing":                                ownerServices,
	} {
		if got := ownerOf(fn); got != want {
			t.Errorf("ownerOf(%q) = %d, want %d", fn, got, want)
		}
	}
}

func TestAttributeHeapCountsTheHarnessApart(t *testing.T) {
	const size = 64 << 20
	runtime.GC()
	runtime.GC()
	before := attributeHeap()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	// The profile publishes an allocation once a collection after it has completed, and its
	// sweep: two collections make sure.
	runtime.GC()
	runtime.GC()
	after := attributeHeap()
	if grew := after.Harness - min(after.Harness, before.Harness); grew < size*9/10 {
		t.Errorf("the bench's own %d MiB counted as %d MiB of the harness's heap (services %d → %d MiB)",
			size>>20, grew>>20, before.Services>>20, after.Services>>20)
	}
	if after.Services > before.Services+size/2 {
		t.Errorf("the bench's own allocation counted as the services': %d → %d MiB", before.Services>>20, after.Services>>20)
	}
	runtime.KeepAlive(buf) // alive until the profile was read
}
