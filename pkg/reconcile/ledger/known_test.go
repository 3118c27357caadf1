package ledger_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestKnown(t *testing.T) {
	const (
		ex  = tandemv1.System_SYSTEM_EXCHANGE
		sf  = tandemv1.System_SYSTEM_SALESFORCE
		con = tandemv1.RecordKind_RECORD_KIND_CONTACT
		evt = tandemv1.RecordKind_RECORD_KIND_EVENT
	)
	user := store.UserKey{OrgID: "00Dknown", UserID: "005known"}
	st := store.New(servertest.Redis(t), nil)
	ctx := t.Context()
	lease, err := st.AcquireLease(ctx, user, "reconcile", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(st)
	snap, err := led.Load(ctx, user, con)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(id, version string) *tandemv1.Record {
		return &tandemv1.Record{Id: id, Version: version, SyncKey: "sk-" + id, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: id}}}
	}
	written := &tandemv1.MirrorRecord{Record: rec("AAMk1", "ck1"), WriteCycle: 4}
	deleted := &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: "AAMk2"}, Deleted: true}
	w := snap.NewWrites()
	w.PutMirror(ex, written)
	w.PutMirror(ex, deleted)
	w.PutMirror(sf, &tandemv1.MirrorRecord{Record: rec("003sf", "2026-03-01T10:00:00Z")})
	if err := led.Commit(ctx, lease, w); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		kind tandemv1.RecordKind
		side tandemv1.System
		ids  []string
		want map[string]*tandemv1.MirrorRecord
	}{
		{"no ids", con, ex, nil, map[string]*tandemv1.MirrorRecord{}},
		{"entries as stored, deleted ones included; unknown ids absent", con, ex, []string{"AAMk1", "AAMk2", "AAMk3"},
			map[string]*tandemv1.MirrorRecord{"AAMk1": written, "AAMk2": deleted}},
		{"the side is part of the key", con, ex, []string{"003sf"}, map[string]*tandemv1.MirrorRecord{}},
		{"the kind is part of the key", evt, ex, []string{"AAMk1"}, map[string]*tandemv1.MirrorRecord{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ledger.NewOutbox(st).Known(ctx, user, tc.kind, tc.side, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Known (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLinks(t *testing.T) {
	const con = tandemv1.RecordKind_RECORD_KIND_CONTACT
	user := store.UserKey{OrgID: "00Dlinks", UserID: "005links"}
	st := store.New(servertest.Redis(t), nil)
	ctx := t.Context()
	lease, err := st.AcquireLease(ctx, user, "reconcile", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(st)
	snap, err := led.Load(ctx, user, con)
	if err != nil {
		t.Fatal(err)
	}
	linked := &tandemv1.Mapping{SyncKey: "sk-1", Kind: con, ExchangeId: "AAMk1", SalesforceId: "003a"}
	w := snap.NewWrites()
	w.PutMapping(linked)
	if err := led.Commit(ctx, lease, w); err != nil {
		t.Fatal(err)
	}
	got, err := ledger.NewOutbox(st).Links(ctx, user, con, []string{"sk-1", "sk-2"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]*tandemv1.Mapping{"sk-1": linked}, got, protocmp.Transform()); diff != "" {
		t.Errorf("Links (-want +got):\n%s", diff)
	}
	if got, err := ledger.NewOutbox(st).Links(ctx, user, tandemv1.RecordKind_RECORD_KIND_EVENT, []string{"sk-1"}); err != nil || len(got) != 0 {
		t.Errorf("Links of another kind: %v %v", got, err)
	}
}
