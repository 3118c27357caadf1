package ledger_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ledgerPairs is the size of the ledgers the benchmarks use: a rep with 1,000 linked contacts.
const ledgerPairs = 1000

// benchLedger is a ledger on a real redis-server holding ledgerPairs linked pairs.
func benchLedger(b *testing.B) (*ledger.Ledger, *store.Lease) {
	b.Helper()
	st := store.New(servertest.Redis(b), nil)
	lease, err := st.AcquireLease(b.Context(), uk, leaseRole, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	led := ledger.New(st)
	snap, err := led.Load(b.Context(), uk, contact)
	if err != nil {
		b.Fatal(err)
	}
	w := snap.NewWrites()
	observed := timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	for i := range ledgerPairs {
		key := fmt.Sprintf("sk-%04d", i)
		ex, sf := fmt.Sprintf("AAMk%04d", i), fmt.Sprintf("003%015d", i)
		w.PutMirror(exchange, &tandemv1.MirrorRecord{Record: contactRecord(ex, "ck1", "Ada"), ObservedAt: observed, SeenCycle: 3})
		w.PutMirror(salesforce, &tandemv1.MirrorRecord{Record: contactRecord(sf, "2026-03-01T09:00:00.000Z", "Ada"), ObservedAt: observed, SeenCycle: 3})
		w.PutMapping(&tandemv1.Mapping{
			SyncKey: key, Kind: contact, ExchangeId: ex, SalesforceId: sf, ExchangeVersion: "ck1", SalesforceVersion: "2026-03-01T09:00:00.000Z",
			ExchangeHash: "eh", SalesforceHash: "sh", SyncedAt: observed, Origin: exchange,
			ExchangeFieldHashes:   map[string]string{"given_name": "a1", "surname": "b2", "email": "c3", "company": "d4", "job_title": "e5"},
			SalesforceFieldHashes: map[string]string{"given_name": "a1", "surname": "b2", "email": "c3", "company": "d4", "job_title": "e5"},
		})
	}
	if err := led.Commit(b.Context(), lease, w); err != nil {
		b.Fatal(err)
	}
	return led, lease
}

// BenchmarkLoadWholeLedger measures loading a user's whole ledger, as planning a cycle in which
// something changed does.
func BenchmarkLoadWholeLedger(b *testing.B) {
	led, _ := benchLedger(b)
	b.ReportAllocs()
	for b.Loop() {
		snap, err := led.Load(b.Context(), uk, contact)
		if err != nil || len(snap.Mappings) != ledgerPairs {
			b.Fatalf("load: %d mappings, %v", len(snap.Mappings), err)
		}
	}
}

// BenchmarkCommitPage measures storing one page of observations (200 records changed on one
// side) under the user's lease, as a change batch's handler does.
func BenchmarkCommitPage(b *testing.B) {
	led, lease := benchLedger(b)
	snap, err := led.Load(b.Context(), uk, contact)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		observed := timestamppb.New(time.Date(2026, 3, 1, 10, 0, i%60, 0, time.UTC))
		w := snap.NewWrites()
		for j := range 200 {
			id := fmt.Sprintf("AAMk%04d", (i*200+j)%ledgerPairs)
			w.PutMirror(exchange, &tandemv1.MirrorRecord{Record: contactRecord(id, fmt.Sprintf("ck%d", i), "Grace"), ObservedAt: observed, SeenCycle: uint64(4 + i)})
		}
		if err := led.Commit(b.Context(), lease, w); err != nil {
			b.Fatal(err)
		}
	}
}
