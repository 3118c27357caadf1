package ledger_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// admitAll admits a scope of any size.
func admitAll(context.Context, int) error { return nil }

func keyed(id, key string) *tandemv1.MirrorRecord {
	return &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id, SyncKey: key, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{}}}}
}

// seedPairs links E<i> and S<i> under k<i>, for i in 1..n, and empties the dirty set as a plan does.
func seedPairs(t *testing.T, e *env, n int) {
	w := e.load(t, contact).NewWrites()
	for i := 1; i <= n; i++ {
		k, ex, sf := fmt.Sprint("k", i), fmt.Sprint("E", i), fmt.Sprint("S", i)
		w.PutMirror(exchange, keyed(ex, k))
		w.PutMirror(salesforce, keyed(sf, k))
		w.PutMapping(&tandemv1.Mapping{SyncKey: k, ExchangeId: ex, SalesforceId: sf})
	}
	w.ClearDirty()
	e.commit(t, w)
}

func dirtySet(t *testing.T, e *env) []string {
	keys, _ := ledger.KeysFor(uk, contact)
	members, err := e.st.Client().SMembers(t.Context(), keys.Dirty).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(members)
	return members
}

// The dirty set names what changed since the last plan; a plan's commit empties it, a reset drops it.
func TestDirtySetFollowsTheChanges(t *testing.T) {
	e := newEnv(t)
	seedPairs(t, e, 3)
	if d := dirtySet(t, e); len(d) != 0 {
		t.Fatalf("dirty = %v after a plan's commit", d)
	}
	w := e.load(t, contact).NewWrites()
	w.PutMirror(salesforce, keyed("S2", "k2"))
	w.PutMapping(&tandemv1.Mapping{SyncKey: "k3", ExchangeId: "E3", SalesforceId: "S3"})
	w.PutRejected(planner.PendingKey(exchange, "k4"), &tandemv1.RejectedWrite{})
	w.DeletePending(planner.PendingKey(salesforce, "k5"))
	w.PutPending(planner.PendingKey(salesforce, "k6"), pendingWrite("c-k6", "k6", salesforce)) // read whole by every scope
	w.DeleteMirror(exchange, "E9")                                                             // a purged marker changes no plan
	e.commit(t, w)
	want := []string{"key:k3", "key:k4", "key:k5", "salesforce:S2"}
	if d := dirtySet(t, e); !slices.Equal(d, want) {
		t.Fatalf("dirty = %v, want %v", d, want)
	}
	base := e.load(t, contact)
	n := -1
	if _, err := e.led.LoadScope(t.Context(), base, base.NewWrites(), func(_ context.Context, size int) error { n = size; return nil }); err != nil || n != len(want)+1 {
		t.Fatalf("scope size = %d, %v; want %d changes and 1 write in flight", n, err, len(want))
	}
	w = e.load(t, contact).NewWrites()
	w.Reset(4, "e1")
	e.commit(t, w)
	if d := dirtySet(t, e); len(d) != 0 {
		t.Fatalf("dirty = %v after a reset", d)
	}
}

// LoadScope reads the changed records, their pairs and the writes in flight with theirs — and
// gives up when a change reaches beyond linked pairs.
func TestLoadScope(t *testing.T) {
	e := newEnv(t)
	seedPairs(t, e, 5)
	w := e.load(t, contact).NewWrites()
	w.PutPending(planner.PendingKey(salesforce, "k4"), pendingWrite("c-k4", "k4", salesforce))
	w.PutRejected(planner.PendingKey(exchange, "k4"), &tandemv1.RejectedWrite{SourceHash: "h"})
	w.ClearDirty()
	e.commit(t, w)

	// A page applied but not committed: E1 changed, and S2 changed in Redis before it.
	w = e.load(t, contact).NewWrites()
	w.PutMirror(salesforce, keyed("S2", "k2"))
	e.commit(t, w)
	base := e.load(t, contact)
	page := base.NewWrites()
	changed := keyed("E1", "k1")
	changed.Record.Version = "v2"
	page.PutMirror(exchange, changed)
	base.Exchange = map[string]*tandemv1.MirrorRecord{"E1": changed}
	base.Salesforce = map[string]*tandemv1.MirrorRecord{}

	scope, err := e.led.LoadScope(t.Context(), base, page, admitAll)
	if err != nil {
		t.Fatal(err)
	}
	if scope == nil {
		t.Fatal("no scope for changes to linked pairs")
	}
	if got := slices.Sorted(maps.Keys(scope.Mappings)); !slices.Equal(got, []string{"k1", "k2", "k4"}) {
		t.Errorf("scope's pairs = %v, want k1, k2 (changed) and k4 (in flight)", got)
	}
	if got := slices.Sorted(maps.Keys(scope.Exchange)); !slices.Equal(got, []string{"E1", "E2", "E4"}) {
		t.Errorf("scope's Exchange records = %v", got)
	}
	if got := slices.Sorted(maps.Keys(scope.Salesforce)); !slices.Equal(got, []string{"S1", "S2", "S4"}) {
		t.Errorf("scope's Salesforce records = %v", got)
	}
	if scope.Exchange["E1"].GetRecord().GetVersion() != "v2" {
		t.Error("the scope lost the page's uncommitted observation")
	}
	if len(scope.Pending) != 1 || len(scope.Rejected) != 1 {
		t.Errorf("scope holds %d writes in flight and %d refusals, want 1 and 1", len(scope.Pending), len(scope.Rejected))
	}

}

// LoadScope gives up when a change reaches beyond linked pairs.
func TestLoadScopeGivesUp(t *testing.T) {
	for name, change := range map[string]func(*ledger.Writes){
		"a new record":              func(w *ledger.Writes) { w.PutMirror(exchange, keyed("E7", "")) },
		"a record linked otherwise": func(w *ledger.Writes) { w.PutMirror(exchange, keyed("E8", "k1")) },
		"a deletion": func(w *ledger.Writes) {
			w.PutMirror(salesforce, &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "S3"}, Deleted: true})
		},
		"a create in flight": func(w *ledger.Writes) {
			w.PutPending(planner.PendingKey(exchange, "k9"), pendingWrite("c-k9", "k9", exchange))
		},
		"an unlinked pair": func(w *ledger.Writes) { w.DeleteMappings("k2") },
		"a hold":           func(w *ledger.Writes) { w.PutHold(&tandemv1.Hold{Summary: &tandemv1.HeldDeletes{HoldId: "h1"}}) },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			seedPairs(t, e, 3)
			w := e.load(t, contact).NewWrites()
			change(w)
			e.commit(t, w)
			base := e.load(t, contact)
			base.Exchange, base.Salesforce = map[string]*tandemv1.MirrorRecord{}, map[string]*tandemv1.MirrorRecord{}
			scope, err := e.led.LoadScope(t.Context(), base, base.NewWrites(), admitAll)
			if err != nil {
				t.Fatal(err)
			}
			if scope != nil {
				t.Error("planned from a scope")
			}
		})
	}
}
