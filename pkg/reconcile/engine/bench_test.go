package engine

import (
	"fmt"
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// BenchmarkEditCycle is the reconciler's cost of a cycle in which a rep edited one linked
// contact (with the echo of the previous edit's write), for reps with more and more contacts:
// planned from what changed, it stays flat; planned from the whole ledger, it grows with the
// rep's contacts.
func BenchmarkEditCycle(b *testing.B) {
	rdb := servertest.Redis(b)
	for _, contacts := range []int{100, 1000, 3000} {
		for _, from := range []string{fromChanges, fromWholeLedger} {
			b.Run(fmt.Sprintf("contacts=%d/from=%s", contacts, from), func(b *testing.B) {
				h := newHarness(b, rdb, bothWays(0))
				h.syncer = New(h.st, h, Options{Clock: h.syncer.opts.Clock}) // without VerifyScope
				var ids []string
				for i := range contacts {
					ids = append(ids, h.ex.create(contactRecord(i, "N", "Ex", "")).GetId())
				}
				h.settle()
				h.settle()
				keys, err := ledger.KeysFor(uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := range b.N {
					if from == fromWholeLedger {
						b.StopTimer()
						if err := rdb.HDel(h.ctx, keys.Cycle, "settled").Err(); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					h.ex.update(ids[i%len(ids)], func(c *tandemv1.Contact) { c.Notes = fmt.Sprint("edit ", i) })
					h.startCycle()
					h.drain()
				}
			})
		}
	}
}
