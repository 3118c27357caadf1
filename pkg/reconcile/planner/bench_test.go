package planner

import (
	"fmt"
	"testing"
)

// benchPairs is the size of a rep's contacts in the benchmarks: `tandem bench`'s 1,000.
const benchPairs = 1000

// inSyncState is a user whose benchPairs pairs are linked and unchanged since the last sync:
// the plan of a cycle in which something elsewhere changed.
func inSyncState() *State {
	s := state(both())
	for i := range benchPairs {
		ex := person(fmt.Sprintf("ex%04d", i), "Given", fmt.Sprintf("Surname%d", i), fmt.Sprintf("p%d@example.com", i))
		sf := person(fmt.Sprintf("sf%04d", i), "Given", fmt.Sprintf("Surname%d", i), fmt.Sprintf("p%d@example.com", i))
		key := fmt.Sprintf("key%04d", i)
		ex.SyncKey, sf.SyncKey = key, key
		s.Exchange[ex.GetId()] = mirror(ex)[ex.GetId()]
		s.Salesforce[sf.GetId()] = mirror(sf)[sf.GetId()]
		s.Mappings[key] = synced(key, ex, sf)
	}
	return s
}

// firstSyncState is a user's first sync: half the contacts in Exchange, half in Salesforce,
// one in twenty on both sides with the same email, nothing linked.
func firstSyncState() *State {
	s := state(both())
	for i := range benchPairs / 2 {
		ex := person(fmt.Sprintf("ex%04d", i), "Given", fmt.Sprintf("Exchange%d", i), fmt.Sprintf("e%d@example.com", i))
		s.Exchange[ex.GetId()] = mirror(ex)[ex.GetId()]
		sf := person(fmt.Sprintf("sf%04d", i), "Given", fmt.Sprintf("Salesforce%d", i), fmt.Sprintf("s%d@example.com", i))
		if i%20 == 0 {
			sf = person(sf.GetId(), "Given", fmt.Sprintf("Exchange%d", i), fmt.Sprintf("e%d@example.com", i))
		}
		s.Salesforce[sf.GetId()] = mirror(sf)[sf.GetId()]
	}
	return s
}

func BenchmarkComputeInSync(b *testing.B) {
	s := inSyncState()
	b.ReportAllocs()
	for b.Loop() {
		if p := Compute(s); p.Unchanged != benchPairs {
			b.Fatalf("%d pairs unchanged, want %d", p.Unchanged, benchPairs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchPairs, "ns/record")
}

func BenchmarkComputeFirstSync(b *testing.B) {
	s := firstSyncState()
	b.ReportAllocs()
	for b.Loop() {
		if p := Compute(s); len(p.Writes) < benchPairs*9/10 {
			b.Fatalf("%d writes planned for a first sync of %d records", len(p.Writes), benchPairs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchPairs, "ns/record")
}
