package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	exchange   = tandemv1.System_SYSTEM_EXCHANGE
	salesforce = tandemv1.System_SYSTEM_SALESFORCE
	contact    = tandemv1.RecordKind_RECORD_KIND_CONTACT
	event      = tandemv1.RecordKind_RECORD_KIND_EVENT
	leaseRole  = "reconcile"
)

var uk = store.UserKey{OrgID: "00Dorg", UserID: "005user"}

// env is a ledger on a real Redis and the user's lease.
type env struct {
	st    *store.Store
	led   *ledger.Ledger
	lease *store.Lease
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := store.New(servertest.Redis(t), nil)
	lease, err := st.AcquireLease(t.Context(), uk, leaseRole, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, led: ledger.New(st), lease: lease}
}

func (e *env) load(t *testing.T, kind tandemv1.RecordKind) *ledger.Snapshot {
	t.Helper()
	s, err := e.led.Load(t.Context(), uk, kind)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) commit(t *testing.T, w *ledger.Writes) {
	t.Helper()
	if err := e.led.Commit(t.Context(), e.lease, w); err != nil {
		t.Fatal(err)
	}
}

func TestKeysFor(t *testing.T) {
	// The names the store's key layout registers for the ledger (store/keys.go).
	registered := map[string]bool{
		"mirror": true, "mappings": true, "pending": true, "rejected": true, "unseen": true,
		"tombstones": true, "held": true, "cycle": true,
	}
	for _, kind := range []tandemv1.RecordKind{contact, event} {
		t.Run(kind.String(), func(t *testing.T) {
			keys, err := ledger.KeysFor(uk, kind)
			if err != nil {
				t.Fatal(err)
			}
			all := []string{keys.ExchangeMirror, keys.SalesforceMirror, keys.Mappings, keys.Pending, keys.Rejected, keys.Tombstones, keys.Holds, keys.Cycle, keys.Unseen}
			prefix := "tandem:{" + uk.OrgID + ":" + uk.UserID + "}:"
			seen := map[string]bool{}
			for _, k := range all {
				rest, ok := strings.CutPrefix(k, prefix)
				if !ok {
					t.Errorf("key %q does not carry the user's hash tag %s", k, prefix)
					continue
				}
				name, _, _ := strings.Cut(rest, ":")
				if !registered[name] {
					t.Errorf("key %q uses the unregistered name %q", k, name)
				}
				if !strings.HasSuffix(k, ":"+store.KindName(kind)) {
					t.Errorf("key %q does not end with the kind", k)
				}
				if seen[k] {
					t.Errorf("key %q is used twice", k)
				}
				seen[k] = true
			}
			if keys.Mirror(exchange) != keys.ExchangeMirror || keys.Mirror(salesforce) != keys.SalesforceMirror {
				t.Error("Mirror returns the wrong side's key")
			}
		})
	}
	contactKeys, _ := ledger.KeysFor(uk, contact)
	eventKeys, _ := ledger.KeysFor(uk, event)
	if contactKeys.Pending == eventKeys.Pending {
		t.Error("contacts and events share keys")
	}
	if _, err := ledger.KeysFor(store.UserKey{OrgID: "00Dorg", UserID: "rep@acme.example"}, contact); err == nil {
		t.Error("KeysFor accepted an email as a user id")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{store.KindName(contact), "contact"},
		{store.KindName(event), "event"},
		{store.KindName(tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED), "unknown"},
		{store.SideName(exchange), "exchange"},
		{store.SideName(salesforce), "salesforce"},
		{ledger.CycleSide(exchange, 12), "exchange:12"},
		{ledger.CycleSide(salesforce, 0), "salesforce:0"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseCycleSide(t *testing.T) {
	for _, tc := range []struct {
		in    string
		side  tandemv1.System
		cycle uint64
		ok    bool
	}{
		{"exchange:12", exchange, 12, true},
		{"salesforce:0", salesforce, 0, true},
		{"salesforce:18446744073709551615", salesforce, 1<<64 - 1, true},
		{"exchange", 0, 0, false},
		{"exchange:", 0, 0, false},
		{"exchange:x", 0, 0, false},
		{"exchange:-1", 0, 0, false},
		{"graph:3", 0, 0, false},
		{"", 0, 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			side, cycle, ok := ledger.ParseCycleSide(tc.in)
			if side != tc.side || cycle != tc.cycle || ok != tc.ok {
				t.Errorf("ParseCycleSide(%q) = %s, %d, %v; want %s, %d, %v", tc.in, side, cycle, ok, tc.side, tc.cycle, tc.ok)
			}
			if ok {
				if back := ledger.CycleSide(side, cycle); back != tc.in {
					t.Errorf("CycleSide round trip = %q", back)
				}
			}
		})
	}
}

func TestCycleComplete(t *testing.T) {
	cs := ledger.CycleSide(exchange, 5)
	for _, tc := range []struct {
		name  string
		cycle ledger.Cycle
		want  bool
	}{
		{"nothing arrived", ledger.Cycle{}, false},
		{"pages without the last page", ledger.Cycle{Pages: map[string]map[uint32]bool{cs: {0: true, 1: true}}}, false},
		{"every page", ledger.Cycle{
			Pages: map[string]map[uint32]bool{cs: {0: true, 1: true, 2: true}}, Counts: map[string]uint32{cs: 3},
		}, true},
		{"a page missing", ledger.Cycle{
			Pages: map[string]map[uint32]bool{cs: {0: true, 2: true}}, Counts: map[string]uint32{cs: 3},
		}, false},
		{"only the last page", ledger.Cycle{
			Pages: map[string]map[uint32]bool{cs: {2: true}}, Counts: map[string]uint32{cs: 3},
		}, false},
		{"the other side's pages", ledger.Cycle{
			Pages:  map[string]map[uint32]bool{ledger.CycleSide(salesforce, 5): {0: true}},
			Counts: map[string]uint32{ledger.CycleSide(salesforce, 5): 1},
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cycle.Complete(exchange, 5); got != tc.want {
				t.Errorf("Complete = %v, want %v", got, tc.want)
			}
		})
	}
}

func contactRecord(id, version, given string) *tandemv1.Record {
	return &tandemv1.Record{Id: id, Version: version, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: given}}}
}

func pendingWrite(cmdID, syncKey string, target tandemv1.System) *tandemv1.PendingWrite {
	return &tandemv1.PendingWrite{
		Command: &tandemv1.WriteCommand{CommandId: cmdID, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: syncKey, Record: contactRecord("", "", "Ada")},
		Target:  target, SourceId: "src-" + syncKey, SourceHash: "h1", Cycle: 3,
		IssuedAt:          timestamppb.New(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)),
		SourceFieldHashes: map[string]string{"given_name": "hg"},
	}
}

// TestLoadCommitRoundTrip writes every kind of ledger write, loads the ledger back, then
// undoes them with the matching deletes.
func TestLoadCommitRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	observed := timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	exMirror := &tandemv1.MirrorRecord{Record: contactRecord("AAMk1", "ck1", "Ada"), ObservedAt: observed, SeenCycle: 3}
	sfMirror := &tandemv1.MirrorRecord{Record: contactRecord("003A", "2026-03-01T09:00:00.000Z", "Ada"), ObservedAt: observed, OutOfScope: true}
	sfGone := &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "003B"}, ObservedAt: observed, Deleted: true}
	mapping := &tandemv1.Mapping{
		SyncKey: "sk1", Kind: contact, ExchangeId: "AAMk1", SalesforceId: "003A", ExchangeHash: "eh", SalesforceHash: "sh",
		ExchangeFieldHashes: map[string]string{"given_name": "x"}, SyncedAt: observed, Origin: exchange,
	}
	pending := pendingWrite("cmd1", "sk2", salesforce)
	rejected := &tandemv1.RejectedWrite{SourceHash: "h9", Error: &tandemv1.SyncError{Code: "SALESFORCE_VALIDATION_FAILED"}, RejectedAt: observed}
	hold := &tandemv1.Hold{
		Summary: &tandemv1.HeldDeletes{HoldId: "hold1", Target: salesforce, Kind: contact, Count: 2, Synced: 3, ThresholdPercent: 50, RecordIds: []string{"003A", "003C"}},
		Deletes: []*tandemv1.PendingWrite{pendingWrite("del1", "sk1", salesforce)}, CreatedAt: observed, Cycle: 4,
	}

	snap := e.load(t, contact)
	w := snap.NewWrites()
	w.PutMirror(exchange, exMirror)
	w.PutMirror(salesforce, sfMirror)
	w.PutMirror(salesforce, sfGone)
	w.PutMapping(mapping)
	w.PutPending(planner.PendingKey(salesforce, "sk2"), pending)
	w.PutRejected(planner.PendingKey(exchange, "sk3"), rejected)
	w.AddTombstones(planner.TombstoneKey(salesforce, "003Z"), planner.TombstoneKey(exchange, "AAMkZ"))
	w.PutHold(hold)
	w.SetReconciled(4)
	w.SetUnsent(4)
	w.SetReady(exchange, 4)
	w.SetReady(salesforce, 3)
	w.SetPages(exchange, 5, map[uint32]bool{0: true, 2: true})
	w.SetCount(exchange, 5, 3)
	w.SetFullStart(exchange, 5, 1700000000123)
	w.SetWaiting(salesforce, 6, 5)
	w.SetInitialDone(salesforce)
	w.SetLastSynced(1700000000999)
	if w.Len() == 0 {
		t.Fatal("no operations collected")
	}
	e.commit(t, w)
	if err := e.led.Decide(ctx, uk, contact, "hold1", true); err != nil {
		t.Fatal(err)
	}

	got := e.load(t, contact)
	want := &ledger.Snapshot{
		Keys:       snap.Keys,
		Exchange:   map[string]*tandemv1.MirrorRecord{"AAMk1": exMirror},
		Salesforce: map[string]*tandemv1.MirrorRecord{"003A": sfMirror, "003B": sfGone},
		Mappings:   map[string]*tandemv1.Mapping{"sk1": mapping},
		Pending:    map[string]*tandemv1.PendingWrite{"salesforce:sk2": pending},
		Rejected:   map[string]*tandemv1.RejectedWrite{"exchange:sk3": rejected},
		Tombstones: map[string]bool{"salesforce:003Z": true, "exchange:AAMkZ": true},
		Holds:      map[string]*tandemv1.Hold{"hold1": hold},
		Decisions:  map[string]string{"hold1": "approve"},
		Cycle: ledger.Cycle{
			Reconciled: 4, Unsent: 4, LastSyncedMs: 1700000000999,
			Ready:       map[string]uint64{"exchange": 4, "salesforce": 3},
			Pages:       map[string]map[uint32]bool{"exchange:5": {0: true, 2: true}},
			Counts:      map[string]uint32{"exchange:5": 3},
			FullStart:   map[string]int64{"exchange:5": 1700000000123},
			InitialDone: map[string]bool{"salesforce": true},
			Waiting:     map[string]uint64{"salesforce:6": 5},
		},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("Load after Commit (-want +got):\n%s", diff)
	}
	if got.Mirror(exchange)["AAMk1"] == nil || got.Mirror(salesforce)["003A"] == nil {
		t.Error("Snapshot.Mirror returns the wrong side")
	}
	// The other kind's ledger is untouched.
	other := e.load(t, event)
	if len(other.Exchange)+len(other.Mappings)+len(other.Pending)+len(other.Holds) != 0 || other.Cycle.Reconciled != 0 {
		t.Errorf("the event ledger was written: %+v", other)
	}

	w = got.NewWrites()
	w.DeleteMirror(exchange, "AAMk1")
	w.DeleteMirror(salesforce, "003A", "003B")
	w.DeleteMappings("sk1")
	w.DeletePending("salesforce:sk2")
	w.DeleteRejected("exchange:sk3")
	w.DeleteHold("hold1")
	w.ClearUnsent()
	w.ForgetCycle(exchange, 5)
	w.ClearWaiting(salesforce, 6)
	e.commit(t, w)

	got = e.load(t, contact)
	want = &ledger.Snapshot{
		Keys:       snap.Keys,
		Exchange:   map[string]*tandemv1.MirrorRecord{},
		Salesforce: map[string]*tandemv1.MirrorRecord{},
		Mappings:   map[string]*tandemv1.Mapping{},
		Pending:    map[string]*tandemv1.PendingWrite{},
		Rejected:   map[string]*tandemv1.RejectedWrite{},
		Tombstones: map[string]bool{"salesforce:003Z": true, "exchange:AAMkZ": true},
		Holds:      map[string]*tandemv1.Hold{},
		Decisions:  map[string]string{},
		Cycle: ledger.Cycle{
			Reconciled: 4, LastSyncedMs: 1700000000999,
			Ready:       map[string]uint64{"exchange": 4, "salesforce": 3},
			Pages:       map[string]map[uint32]bool{},
			Counts:      map[string]uint32{},
			FullStart:   map[string]int64{},
			InitialDone: map[string]bool{"salesforce": true},
			Waiting:     map[string]uint64{},
		},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("Load after the deletes (-want +got):\n%s", diff)
	}
}

func TestEmptyPagesRoundTrip(t *testing.T) {
	e := newEnv(t)
	w := e.load(t, contact).NewWrites()
	w.SetPages(salesforce, 2, map[uint32]bool{})
	e.commit(t, w)
	got := e.load(t, contact).Cycle.Pages[ledger.CycleSide(salesforce, 2)]
	if len(got) != 0 {
		t.Errorf("pages = %v, want none", got)
	}
}

func TestLargeWritesAreChunked(t *testing.T) {
	e := newEnv(t)
	const n = 1234
	ids := make([]string, n)
	tombstones := make([]string, n)
	w := e.load(t, contact).NewWrites()
	for i := range n {
		ids[i] = fmt.Sprintf("AAMk%04d", i)
		tombstones[i] = planner.TombstoneKey(exchange, ids[i])
		w.PutMirror(exchange, &tandemv1.MirrorRecord{Record: contactRecord(ids[i], "ck", "x")})
	}
	w.AddTombstones(tombstones...)
	e.commit(t, w)
	snap := e.load(t, contact)
	if len(snap.Exchange) != n || len(snap.Tombstones) != n {
		t.Fatalf("loaded %d mirrors and %d tombstones, want %d each", len(snap.Exchange), len(snap.Tombstones), n)
	}
	w = snap.NewWrites()
	w.DeleteMirror(exchange, ids...)
	if w.Len() < 2 {
		t.Errorf("deleting %d fields took %d operation(s); they must be split", n, w.Len())
	}
	e.commit(t, w)
	if left := len(e.load(t, contact).Exchange); left != 0 {
		t.Errorf("%d mirrors left after deleting them all", left)
	}
}

func TestCommitNeedsTheCurrentLease(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	w := e.load(t, contact).NewWrites()
	w.SetReconciled(1)
	e.commit(t, w)
	if err := e.lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	taken, err := e.st.AcquireLease(ctx, uk, leaseRole, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	w = e.load(t, contact).NewWrites()
	w.SetReconciled(2)
	if err := e.led.Commit(ctx, e.lease, w); !errors.Is(err, store.ErrStaleLease) {
		t.Fatalf("commit under a lost lease: %v, want ErrStaleLease", err)
	}
	if got := e.load(t, contact).Cycle.Reconciled; got != 1 {
		t.Fatalf("reconciled = %d after a refused commit, want 1", got)
	}
	if err := e.led.Commit(ctx, taken, w); err != nil {
		t.Fatal(err)
	}
	// An empty commit writes nothing and needs nothing.
	if err := e.led.Commit(ctx, e.lease, e.load(t, contact).NewWrites()); err != nil {
		t.Errorf("empty commit: %v", err)
	}
}

func TestCommitReportsEncodingErrors(t *testing.T) {
	e := newEnv(t)
	w := e.load(t, contact).NewWrites()
	// Invalid UTF-8 in a proto3 string cannot be marshalled.
	w.PutMapping(&tandemv1.Mapping{SyncKey: "sk", ExchangeId: "\xff"})
	if _, err := w.Ops(); err == nil {
		t.Fatal("Ops reported no encoding error")
	}
	if err := e.led.Commit(t.Context(), e.lease, w); err == nil {
		t.Fatal("Commit wrote a ledger with an encoding error")
	}
}

func TestReset(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	w := e.load(t, contact).NewWrites()
	w.PutMirror(exchange, &tandemv1.MirrorRecord{Record: contactRecord("AAMk1", "ck", "Ada")})
	w.PutMirror(salesforce, &tandemv1.MirrorRecord{Record: contactRecord("003A", "v", "Ada")})
	w.PutMapping(&tandemv1.Mapping{SyncKey: "sk1", ExchangeId: "AAMk1", SalesforceId: "003A"})
	w.PutPending("exchange:sk2", pendingWrite("cmd2", "sk2", exchange))
	w.PutRejected("salesforce:sk3", &tandemv1.RejectedWrite{SourceHash: "h"})
	w.AddTombstones("exchange:gone")
	w.PutHold(&tandemv1.Hold{Summary: &tandemv1.HeldDeletes{HoldId: "h1"}})
	w.SetReconciled(6)
	w.SetReady(exchange, 6)
	w.SetInitialDone(exchange)
	e.commit(t, w)
	if err := e.led.Decide(ctx, uk, contact, "h1", false); err != nil {
		t.Fatal(err)
	}

	from, reconciled, err := e.led.ResetProgress(ctx, uk, contact)
	if err != nil || from != 0 || reconciled != 6 {
		t.Fatalf("ResetProgress before a reset = %d, %d, %v; want 0, 6", from, reconciled, err)
	}

	w = e.load(t, contact).NewWrites()
	w.Reset(8, "e1")
	e.commit(t, w)
	got := e.load(t, contact)
	if n := len(got.Exchange) + len(got.Salesforce) + len(got.Mappings) + len(got.Pending) + len(got.Rejected) + len(got.Tombstones) + len(got.Holds) + len(got.Decisions); n != 0 {
		t.Errorf("%d entries survived the reset: %+v", n, got)
	}
	wantCycle := ledger.Cycle{
		ResetFrom: 8, Epoch: "e1", Ready: map[string]uint64{}, Pages: map[string]map[uint32]bool{}, Counts: map[string]uint32{},
		FullStart: map[string]int64{}, InitialDone: map[string]bool{}, Waiting: map[string]uint64{},
	}
	if diff := cmp.Diff(wantCycle, got.Cycle); diff != "" {
		t.Errorf("cycle after the reset (-want +got):\n%s", diff)
	}
	// A command sent before the reset is no longer in flight.
	live, err := ledger.NewOutbox(e.st).InFlight(ctx, uk, &tandemv1.WriteBatch{Target: exchange, Kind: contact, Commands: []*tandemv1.WriteCommand{{CommandId: "cmd2", SyncKey: "sk2"}}})
	if err != nil || len(live) != 0 {
		t.Errorf("InFlight after a reset = %v, %v; want nothing", live, err)
	}

	from, reconciled, err = e.led.ResetProgress(ctx, uk, contact)
	if err != nil || from != 8 || reconciled != 0 {
		t.Fatalf("ResetProgress after the reset = %d, %d, %v; want 8, 0", from, reconciled, err)
	}
	w = e.load(t, contact).NewWrites()
	w.SetReconciled(8)
	e.commit(t, w)
	from, reconciled, err = e.led.ResetProgress(ctx, uk, contact)
	if err != nil || from != 8 || reconciled != 8 {
		t.Fatalf("ResetProgress once reconciled = %d, %d, %v; want 8, 8", from, reconciled, err)
	}
}

func TestInFlight(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	w := e.load(t, contact).NewWrites()
	w.PutPending(planner.PendingKey(exchange, "sk1"), pendingWrite("cmd1", "sk1", exchange))
	w.PutPending(planner.PendingKey(exchange, "sk2"), pendingWrite("cmd2-new", "sk2", exchange))
	w.PutPending(planner.PendingKey(salesforce, "sk3"), pendingWrite("cmd3", "sk3", salesforce))
	e.commit(t, w)

	cmd := func(id, key string) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: id, SyncKey: key}
	}
	for _, tc := range []struct {
		name  string
		batch *tandemv1.WriteBatch
		want  map[string]bool
	}{
		{"no commands", &tandemv1.WriteBatch{Target: exchange, Kind: contact}, map[string]bool{}},
		{
			"only the exact command id counts",
			&tandemv1.WriteBatch{Target: exchange, Kind: contact, Commands: []*tandemv1.WriteCommand{
				cmd("cmd1", "sk1"),     // in flight
				cmd("cmd2-old", "sk2"), // superseded by a newer command for the same pair
				cmd("cmd4", "sk4"),     // answered: nothing pending
			}},
			map[string]bool{"cmd1": true},
		},
		{
			"the target side is part of the key",
			&tandemv1.WriteBatch{Target: exchange, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd("cmd3", "sk3")}},
			map[string]bool{},
		},
		{
			"a write to the other side",
			&tandemv1.WriteBatch{Target: salesforce, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd("cmd3", "sk3")}},
			map[string]bool{"cmd3": true},
		},
		{
			"the kind is part of the key",
			&tandemv1.WriteBatch{Target: exchange, Kind: event, Commands: []*tandemv1.WriteCommand{cmd("cmd1", "sk1")}},
			map[string]bool{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ledger.NewOutbox(e.st).InFlight(ctx, uk, tc.batch)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("InFlight (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	err := e.led.Decide(ctx, uk, contact, "nope", true)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Decide on an unknown hold: %v, want store.ErrNotFound", err)
	}
	if d := e.load(t, contact).Decisions; len(d) != 0 {
		t.Fatalf("a decision on an unknown hold was stored: %v", d)
	}

	w := e.load(t, contact).NewWrites()
	w.PutHold(&tandemv1.Hold{Summary: &tandemv1.HeldDeletes{HoldId: "h1"}, Cycle: 2})
	w.PutHold(&tandemv1.Hold{Summary: &tandemv1.HeldDeletes{HoldId: "h2"}, Cycle: 2})
	e.commit(t, w)
	if err := e.led.Decide(ctx, uk, contact, "h1", true); err != nil {
		t.Fatal(err)
	}
	if err := e.led.Decide(ctx, uk, contact, "h2", false); err != nil {
		t.Fatal(err)
	}
	// A hold of another kind is another hold.
	if err := e.led.Decide(ctx, uk, event, "h1", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Decide on the other kind: %v, want store.ErrNotFound", err)
	}
	snap := e.load(t, contact)
	if diff := cmp.Diff(map[string]string{"h1": "approve", "h2": "reject"}, snap.Decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	if len(snap.Holds) != 2 {
		t.Errorf("holds = %v; decisions must not be read as holds", snap.Holds)
	}
	// An admin may change their mind before the next cycle.
	if err := e.led.Decide(ctx, uk, contact, "h2", true); err != nil {
		t.Fatal(err)
	}
	if got := e.load(t, contact).Decisions["h2"]; got != "approve" {
		t.Errorf("decision after changing it = %q", got)
	}
	w = e.load(t, contact).NewWrites()
	w.DeleteHold("h1")
	e.commit(t, w)
	snap = e.load(t, contact)
	if _, ok := snap.Holds["h1"]; ok {
		t.Error("hold h1 survived DeleteHold")
	}
	if _, ok := snap.Decisions["h1"]; ok {
		t.Error("the decision on h1 survived DeleteHold")
	}
}

// A page's snapshot holds only the page's records of one side and the cycle bookkeeping.
func TestLoadPageReadsOnlyThePage(t *testing.T) {
	st := store.New(servertest.Redis(t), nil)
	led := ledger.New(st)
	ctx := t.Context()
	uk := store.UserKey{OrgID: "00Dorg", UserID: "005user"}
	err := st.WithLease(ctx, uk, "reconcile", time.Minute, func(ctx context.Context, lease *store.Lease) error {
		snap, err := led.Load(ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
		if err != nil {
			return err
		}
		w := snap.NewWrites()
		for _, id := range []string{"E1", "E2", "E3"} {
			w.PutMirror(tandemv1.System_SYSTEM_EXCHANGE, &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id}})
		}
		w.PutMapping(&tandemv1.Mapping{SyncKey: "k1"})
		w.SetPages(tandemv1.System_SYSTEM_EXCHANGE, 4, map[uint32]bool{0: true})
		w.SetCount(tandemv1.System_SYSTEM_EXCHANGE, 4, 3)
		return led.Commit(ctx, lease, w)
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := led.LoadPage(ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.System_SYSTEM_EXCHANGE, []string{"E2", "E9"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Partial || len(snap.Exchange) != 1 || snap.Exchange["E2"] == nil || len(snap.Mappings) != 0 {
		t.Fatalf("page snapshot = partial %v, exchange %v, mappings %v", snap.Partial, snap.Exchange, snap.Mappings)
	}
	c := snap.Cycle
	if c.CompletedBy(tandemv1.System_SYSTEM_EXCHANGE, 4, 1, false, 0) {
		t.Error("page 1 of 3 completes a cycle that still lacks page 2")
	}
	c.Pages["exchange:4"][2] = true
	if !c.CompletedBy(tandemv1.System_SYSTEM_EXCHANGE, 4, 1, false, 0) {
		t.Error("the missing page does not complete the cycle")
	}
	if !c.CompletedBy(tandemv1.System_SYSTEM_SALESFORCE, 4, 0, true, 1) {
		t.Error("a single last page does not complete its cycle")
	}
}
