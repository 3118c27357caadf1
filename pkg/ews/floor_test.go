package ews

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The tests in this file hold the connector to the floor of EWS calls: each counts the
// simulator's requests by operation for one piece of work.

// floorEnv is a simulator with mailboxes and a connector to it that reads in full pages.
func floorEnv(t *testing.T, addresses ...string) (*simEnv, *Connector) {
	t.Helper()
	env := newSimEnv(t, ewssim.Config{})
	for _, a := range addresses {
		if err := env.sim.AddMailbox(a); err != nil {
			t.Fatal(err)
		}
	}
	return env, env.connector(t, env.connection(), func(cfg *ConnectorConfig) { cfg.PageSize = 0 })
}

// calls returns the requests the simulator served since the last call, by operation.
func calls(env *simEnv) map[string]int64 {
	c := env.sim.Counts()
	env.sim.ResetCounts()
	return c
}

// wantCalls fails for each operation whose count differs from want's (absent: zero).
func wantCalls(t *testing.T, what string, got map[string]int64, want map[string]int64) {
	t.Helper()
	for _, op := range []string{"GetFolder", "FindFolder", "CreateFolder", "SyncFolderItems", "GetItem", "FindItem", "CreateItem", "UpdateItem", "DeleteItem"} {
		if got[op] != want[op] {
			t.Errorf("%s: %d %s requests, want %d (all: %v)", what, got[op], op, want[op], got)
		}
	}
}

// TestFolderCache checks that a mailbox's folders are located once: jobs (Folders, Changes,
// Apply) use the cache, while Prepare, a connection test, always asks Exchange.
func TestFolderCache(t *testing.T) {
	const address = "alice@contoso.com"
	env, c := floorEnv(t, address)
	mb := mailboxOf(address)
	ctx := t.Context()

	first, err := c.Folders(ctx, mb)
	if err != nil {
		t.Fatal(err)
	}
	if !first.CreatedContactsFolder || first.ServerVersion == "" {
		t.Errorf("first Folders: %+v, want the sync folder created and the server version", first)
	}
	located := calls(env)
	if located["GetFolder"] != 1 || located["CreateFolder"] != 1 {
		t.Errorf("locating the folders: %v", located)
	}

	for range 3 { // three sync jobs
		f, err := c.Folders(ctx, mb)
		if err != nil {
			t.Fatal(err)
		}
		if f.ContactsFolderID != first.ContactsFolderID || f.CreatedContactsFolder || f.ServerVersion != first.ServerVersion {
			t.Errorf("cached Folders: %+v, first %+v", f, first)
		}
		if _, err := readAll(t, c, mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, ""); err != nil {
			t.Fatal(err)
		}
		res, err := c.Apply(ctx, mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, []*tandemv1.WriteCommand{{
			CommandId: "c", Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: "k", TargetId: first.ContactsFolderID + "-gone",
		}})
		if err != nil || len(res) != 1 {
			t.Fatalf("Apply: %v %v", res, err)
		}
	}
	wantCalls(t, "three jobs", calls(env), map[string]int64{"SyncFolderItems": 3, "DeleteItem": 3})

	again, err := c.Prepare(ctx, mb)
	if err != nil {
		t.Fatal(err)
	}
	if again.ContactsFolderID != first.ContactsFolderID || again.CreatedContactsFolder {
		t.Errorf("Prepare: %+v, first %+v", again, first)
	}
	if got := calls(env); got["GetFolder"] != 1 || got["FindFolder"] == 0 {
		t.Errorf("Prepare asked Exchange %v, want GetFolder and FindFolder: a connection test must look", got)
	}
}

// TestFolderRelocated makes the cached sync folder disappear from under the connector (it now
// names a folder of another mailbox, which Exchange answers ErrorFolderNotFound for): the read
// locates the folders again and succeeds in the same call, and the cache holds the folder found.
func TestFolderRelocated(t *testing.T) {
	const alice, bob = "alice@contoso.com", "bob@contoso.com"
	env, c := floorEnv(t, alice, bob)
	ctx := t.Context()
	if _, err := env.sim.PutContact(alice, "contacts", ewssim.Contact{GivenName: "Outside"}); err != nil {
		t.Fatal(err)
	}
	aliceFolders, err := c.Prepare(ctx, mailboxOf(alice))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.sim.PutContact(alice, exchange.SyncFolderName, ewssim.Contact{GivenName: "Inside"}); err != nil {
		t.Fatal(err)
	}
	pages, err := readAll(t, c, mailboxOf(alice), tandemv1.RecordKind_RECORD_KIND_CONTACT, "")
	if err != nil {
		t.Fatal(err)
	}
	cursor := pages[len(pages)-1].Cursor
	if _, err := env.sim.PutContact(alice, exchange.SyncFolderName, ewssim.Contact{GivenName: "Later"}); err != nil {
		t.Fatal(err)
	}
	bobFolders, err := c.Prepare(ctx, mailboxOf(bob))
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	e := c.folders[alice]
	e.folders.ContactsFolderID = bobFolders.ContactsFolderID
	c.folders[alice] = e
	c.mu.Unlock()
	calls(env)

	pages, err = readAll(t, c, mailboxOf(alice), tandemv1.RecordKind_RECORD_KIND_CONTACT, cursor)
	if err != nil {
		t.Fatalf("read with a stale cached folder: %v", err)
	}
	if pages[0].Full || upserts(pages) != 1 {
		t.Errorf("read after relocating: full %v, %d upserts; want the one new contact since the cursor", pages[0].Full, upserts(pages))
	}
	got := calls(env)
	if got["GetFolder"] != 1 || got["SyncFolderItems"] != 2 {
		t.Errorf("requests %v: want SyncFolderItems failing, the folders located once, and the read", nonZero(got))
	}
	if f, err := c.Folders(ctx, mailboxOf(alice)); err != nil || f.ContactsFolderID != aliceFolders.ContactsFolderID {
		t.Errorf("cached folders after relocating: %+v %v, want %s", f, err, aliceFolders.ContactsFolderID)
	}
	if got := nonZero(calls(env)); len(got) != 0 {
		t.Errorf("Folders after relocating asked Exchange: %v", got)
	}
}

// nonZero drops zero counts, for readable failures.
func nonZero(m map[string]int64) map[string]int64 {
	out := maps.Clone(m)
	maps.DeleteFunc(out, func(k string, v int64) bool { return v == 0 || strings.HasPrefix(k, "Total") })
	return out
}

// TestCreateLookupOnlyForRepeats checks that only creates that may repeat an earlier attempt
// look their sync keys up, and that those still find the earlier attempt's item.
func TestCreateLookupOnlyForRepeats(t *testing.T) {
	const address = "alice@contoso.com"
	contact := tandemv1.RecordKind_RECORD_KIND_CONTACT
	create := func(key string, retry bool) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: "create-" + key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Retry: retry,
			Record: contactRecord("", &tandemv1.Contact{GivenName: "Ann", Surname: key})}
	}
	tests := []struct {
		name string
		// earlier: the keys an earlier attempt created.
		earlier []string
		cmds    []*tandemv1.WriteCommand
		opts    []exchange.ApplyOption
		want    map[string]int64
		// applied: the commands (by index) that must find the earlier attempt's item.
		applied []int
	}{
		{name: "first attempts", cmds: []*tandemv1.WriteCommand{create("a", false), create("b", false)},
			want: map[string]int64{"CreateItem": 1, "GetItem": 1}},
		{name: "a retried create", earlier: []string{"a"}, cmds: []*tandemv1.WriteCommand{create("a", true), create("b", false)},
			want: map[string]int64{"FindItem": 1, "UpdateItem": 1, "CreateItem": 1, "GetItem": 1}, applied: []int{0}},
		{name: "a redelivered batch", earlier: []string{"a"}, cmds: []*tandemv1.WriteCommand{create("a", false), create("b", false)},
			opts: []exchange.ApplyOption{exchange.Redelivered()},
			want: map[string]int64{"FindItem": 1, "UpdateItem": 1, "CreateItem": 1, "GetItem": 1}, applied: []int{0}},
		{name: "a create started before", earlier: []string{"b"}, cmds: []*tandemv1.WriteCommand{create("a", false), create("b", false)},
			opts: []exchange.ApplyOption{exchange.MayRepeat("create-b")},
			want: map[string]int64{"FindItem": 1, "UpdateItem": 1, "CreateItem": 1, "GetItem": 1}, applied: []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, c := floorEnv(t, address)
			mb := mailboxOf(address)
			if _, err := c.Folders(t.Context(), mb); err != nil {
				t.Fatal(err)
			}
			first := map[string]string{}
			for _, key := range tc.earlier {
				res, err := c.Apply(t.Context(), mb, contact, []*tandemv1.WriteCommand{create(key, false)})
				if err != nil || !res[0].GetOk() {
					t.Fatalf("earlier attempt: %v %v", res, err)
				}
				first[key] = res[0].GetRecord().GetId()
			}
			calls(env)
			res, err := c.Apply(t.Context(), mb, contact, tc.cmds, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			wantCalls(t, tc.name, calls(env), tc.want)
			for i, r := range res {
				key := tc.cmds[i].GetSyncKey()
				if !r.GetOk() {
					t.Fatalf("%s: %v", key, r.GetError())
				}
				if want := slices.Contains(tc.applied, i); r.GetAlreadyApplied() != want || (want && r.GetRecord().GetId() != first[key]) {
					t.Errorf("%s: already applied %v id %q, want %v (earlier item %q)", key, r.GetAlreadyApplied(), r.GetRecord().GetId(), want, first[key])
				}
			}
			if n := len(env.sim.Items(address, exchange.SyncFolderName)); n != 2 {
				t.Errorf("%d contacts in the folder, want 2", n)
			}
		})
	}
}
