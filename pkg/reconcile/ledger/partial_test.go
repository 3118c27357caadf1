package ledger_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The counts Redis computes for a status are those of the whole ledger.
func TestCountsMatchTheLedger(t *testing.T) {
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		w := e.load(t, contact).NewWrites()
		for i := range 40 {
			key := fmt.Sprintf("k%d", rng.IntN(60))
			switch rng.IntN(5) {
			case 0:
				w.PutMapping(&tandemv1.Mapping{SyncKey: key})
			case 1:
				w.DeleteMappings(key)
			case 2:
				w.PutPending(planner.PendingKey(exchange, key), pendingWrite("c-"+key, key, exchange))
			case 3:
				w.PutPending(planner.PendingKey(salesforce, key), pendingWrite("c-"+key, key, salesforce))
			default:
				w.DeletePending(planner.PendingKey([]tandemv1.System{exchange, salesforce}[i%2], key))
			}
		}
		e.commit(t, w)
		snap := e.load(t, contact)
		got, err := e.led.Counts(t.Context(), snap.Keys)
		if err != nil {
			t.Fatal(err)
		}
		want := snap.Counts()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round %d: counts from Redis differ from the ledger's (-ledger +redis):\n%s", round, diff)
		}
		if got.InSync() != want.Mappings-want.BusyMapped || got.Pending() != int64(len(snap.Pending)) {
			t.Fatalf("round %d: in sync %d, pending %d", round, got.InSync(), got.Pending())
		}
	}
}

// The unseen index follows the Exchange mirror: items Tandem wrote that no read listed.
func TestUnseenIndexFollowsTheMirror(t *testing.T) {
	e := newEnv(t)
	written := func(id string) *tandemv1.MirrorRecord {
		return &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id}, WriteCycle: 3}
	}
	w := e.load(t, contact).NewWrites()
	for _, id := range []string{"E1", "E2", "E3", "E4"} {
		w.PutMirror(exchange, written(id))
	}
	w.PutMirror(exchange, &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "E5"}, SeenCycle: 2})
	w.PutMirror(salesforce, written("S1")) // Salesforce has no such index
	e.commit(t, w)

	w = e.load(t, contact).NewWrites()
	w.PutMirror(exchange, &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "E1"}, WriteCycle: 3, SeenCycle: 4}) // listed
	w.PutMirror(exchange, &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "E2"}, Deleted: true})               // gone
	w.DeleteMirror(exchange, "E3")
	e.commit(t, w)

	keys, _ := ledger.KeysFor(uk, contact)
	members, err := e.st.Client().SMembers(t.Context(), keys.Unseen).Result()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(members); !slices.Equal(members, []string{"E4"}) {
		t.Fatalf("unseen = %v, want [E4]", members)
	}
	// A page completing an incremental read of Exchange gets the unseen items with its own.
	snap, err := e.led.LoadPage(t.Context(), uk, contact, exchange, []string{"E5"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Exchange) != 2 || snap.Exchange["E4"] == nil || snap.Exchange["E5"] == nil {
		t.Fatalf("page snapshot holds %v, want E4 and E5", snap.Exchange)
	}
	w = e.load(t, contact).NewWrites()
	w.Reset(9, "e1")
	e.commit(t, w)
	if n, _ := e.st.Client().Exists(t.Context(), keys.Unseen).Result(); n != 0 {
		t.Error("a reset left the unseen index")
	}
}

// Quiet lasts until the ledger's data changes or an admin decides a hold.
func TestQuietMark(t *testing.T) {
	e := newEnv(t)
	w := e.load(t, contact).NewWrites()
	w.PutMapping(&tandemv1.Mapping{SyncKey: "k1"})
	w.SetQuiet("settings-a")
	e.commit(t, w)
	if q := e.load(t, contact).Cycle.Quiet; q != "settings-a" {
		t.Fatalf("quiet = %q after SetQuiet", q)
	}
	w = e.load(t, contact).NewWrites()
	w.SetReady(exchange, 5) // bookkeeping alone keeps it
	e.commit(t, w)
	if w.Disturbed() || e.load(t, contact).Cycle.Quiet == "" {
		t.Fatal("cycle bookkeeping ended the quiet")
	}
	for name, change := range map[string]func(*ledger.Writes){
		"mirror": func(w *ledger.Writes) {
			w.PutMirror(salesforce, &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "S1"}})
		},
		"unlink":    func(w *ledger.Writes) { w.DeleteMappings("k1") },
		"pending":   func(w *ledger.Writes) { w.PutPending("exchange:k2", pendingWrite("c-"+"k2", "k2", exchange)) },
		"tombstone": func(w *ledger.Writes) { w.AddTombstones("exchange:E1") },
	} {
		w := e.load(t, contact).NewWrites()
		w.SetQuiet("settings-a")
		e.commit(t, w)
		w = e.load(t, contact).NewWrites()
		change(w)
		e.commit(t, w)
		if q := e.load(t, contact).Cycle.Quiet; q != "" {
			t.Errorf("%s: still quiet (%q)", name, q)
		}
	}
}
