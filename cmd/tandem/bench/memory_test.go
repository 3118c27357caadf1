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

func TestSiteOfIsTheNearestTandemFunction(t *testing.T) {
	for _, tc := range []struct {
		functions []string
		want      string
	}{
		{[]string{"runtime.mallocgc", "google.golang.org/protobuf/internal/impl.consumeBytes", "google.golang.org/protobuf/proto.UnmarshalOptions.unmarshal",
			"github.com/tandem-sync/tandem/pkg/reconcile/ledger.decodeAll[...]", "github.com/tandem-sync/tandem/pkg/reconcile/ledger.(*Ledger).Load"},
			"pkg/reconcile/ledger.decodeAll[...]"},
		{[]string{"runtime.makeslice", "bufio.NewReaderSize", "net/http.(*conn).serve"}, "bufio.NewReaderSize"},
		{[]string{"runtime.malg"}, "runtime"},
	} {
		if got := siteOf(tc.functions); got != tc.want {
			t.Errorf("siteOf(%v) = %q, want %q", tc.functions, got, tc.want)
		}
	}
	top := topSites(heapShares{Sites: map[string]uint64{"a": 1 << 20, "b": 3 << 20, "c": 2 << 20}}, 2)
	if len(top) != 2 || top[0].Site != "b" || top[1].Site != "c" || top[0].MiB != 3 {
		t.Errorf("topSites = %v, want b (3 MiB) then c", top)
	}
}
