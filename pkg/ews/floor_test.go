package ews

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
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
			want: map[string]int64{"CreateItem": 1}},
		{name: "a retried create", earlier: []string{"a"}, cmds: []*tandemv1.WriteCommand{create("a", true), create("b", false)},
			want: map[string]int64{"FindItem": 1, "UpdateItem": 1, "CreateItem": 1}, applied: []int{0}},
		{name: "a redelivered batch", earlier: []string{"a"}, cmds: []*tandemv1.WriteCommand{create("a", false), create("b", false)},
			opts: []exchange.ApplyOption{exchange.Redelivered()},
			want: map[string]int64{"FindItem": 1, "UpdateItem": 1, "CreateItem": 1}, applied: []int{0}},
		{name: "a create started before", earlier: []string{"b"}, cmds: []*tandemv1.WriteCommand{create("a", false), create("b", false)},
			opts: []exchange.ApplyOption{exchange.KeyMayExist("create-b")},
			want: map[string]int64{"FindItem": 1, "UpdateItem": 1, "CreateItem": 1}, applied: []int{1}},
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

// TestWrittenAsRead checks that a write's result, built without reading the item back, holds
// the sync fields exactly as a later read of the item returns them (same field hashes, same
// version), for creates and for updates of some fields: content Exchange stores as sent, and
// content it normalises or defaults. It also checks that writes cost no GetItem.
func TestWrittenAsRead(t *testing.T) {
	const address = "alice@contoso.com"
	odd := &tandemv1.Contact{
		GivenName: "Ann", Surname: "Lee", EmailAddress1: "  ann@lee.example ", MobilePhone: " +1 555 0100\t",
		Notes: "line one\r\nline two\nline three\r  ", Birthday: &tandemv1.Date{Year: 1990, Month: 2, Day: 30},
		BusinessAddress: &tandemv1.PostalAddress{}, OtherAddress: &tandemv1.PostalAddress{City: "Oslo"},
	}
	precise := &tandemv1.Event{Subject: "To the nanosecond", Start: ts("2026-04-01T10:00:00.123456789Z"), End: ts("2026-04-01T10:30:00.5Z")}
	allDayNoZone := &tandemv1.Event{Subject: "No zone", IsAllDay: true, Start: ts("2026-05-01T00:00:00Z")}
	allDayNoEnd := &tandemv1.Event{Subject: "One day", IsAllDay: true, StartDate: &tandemv1.Date{Year: 2026, Month: 6, Day: 3}, StartTimeZone: "W. Europe Standard Time"}
	creates := map[string]*tandemv1.Record{
		"full contact":         contactRecord("", fullContact()),
		"contact to tidy":      contactRecord("", odd),
		"full event":           eventRecord("", fullEvent()),
		"all-day event":        eventRecord("", allDayEvent()),
		"defaults and precise": eventRecord("", precise),
		"all-day without zone": eventRecord("", allDayNoZone),
		"all-day without end":  eventRecord("", allDayNoEnd),
	}
	for name, ev := range recurringEvents() {
		creates["recurring "+name] = eventRecord("", ev)
	}
	// updates changes some fields of a created record, as the planner writes them: the target's
	// content with the fields replaced.
	updates := map[string]struct {
		fields []string
		with   *tandemv1.Record
	}{
		"full contact": {[]string{"email_address1", "notes", "birthday", "business_address", "surname"}, contactRecord("", &tandemv1.Contact{
			EmailAddress1: " new@acme.example", Notes: "new\nnotes ", Birthday: &tandemv1.Date{Year: 1981, Month: 13, Day: 1},
			BusinessAddress: &tandemv1.PostalAddress{Street: "3 New St"}, Surname: "O'Brien",
		})},
		"full event": {[]string{"start", "end", "sensitivity", "show_as", "body"}, eventRecord("", &tandemv1.Event{
			Start: ts("2026-03-11T08:00:00.75Z"), End: ts("2026-03-11T09:00:00Z"), Body: "Moved\r\n",
		})},
		"all-day event": {[]string{"is_all_day", "start", "end", "start_date", "end_date"}, eventRecord("", &tandemv1.Event{
			IsAllDay: false, Start: ts("2026-07-01T13:00:00Z"), End: ts("2026-07-01T14:00:00Z"),
		})},
		"defaults and precise": {[]string{"is_all_day", "start_date", "end_date"}, eventRecord("", &tandemv1.Event{
			IsAllDay: true, StartDate: &tandemv1.Date{Year: 2026, Month: 4, Day: 2},
		})},
	}
	env, c := floorEnv(t, address)
	mb := mailboxOf(address)
	e, _, err := c.mailbox(t.Context(), mb)
	if err != nil {
		t.Fatal(err)
	}
	read := func(t *testing.T, kind tandemv1.RecordKind, id string) *tandemv1.Record {
		t.Helper()
		res, err := c.client.GetItems(t.Context(), e.target, kind, []ItemID{{ID: id}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("GetItem %s: %v %v", id, err, res[0].Err)
		}
		return res[0].Item.Record
	}
	same := func(t *testing.T, what string, result, item *tandemv1.Record) {
		t.Helper()
		if result.GetVersion() != item.GetVersion() || result.GetId() != item.GetId() || result.GetSyncKey() != item.GetSyncKey() {
			t.Errorf("%s: result id %q version %q key %q, item %q %q %q", what, result.GetId(), result.GetVersion(), result.GetSyncKey(),
				item.GetId(), item.GetVersion(), item.GetSyncKey())
		}
		rh, ih := record.FieldHashes(result), record.FieldHashes(item)
		for _, f := range record.SyncFields(record.KindOf(item)) {
			if rh[f] != ih[f] {
				t.Errorf("%s: field %s differs between the result and a read:\nresult %v\nread   %v", what, f, result, item)
			}
		}
	}
	for name, rec := range creates {
		t.Run(name, func(t *testing.T) {
			kind := record.KindOf(rec)
			calls(env)
			res, err := c.Apply(t.Context(), mb, kind, []*tandemv1.WriteCommand{{CommandId: "c", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-" + name, Record: rec}})
			if err != nil || !res[0].GetOk() {
				t.Fatalf("create: %v %v", res, err)
			}
			wantCalls(t, "create", calls(env), map[string]int64{"CreateItem": 1})
			created := res[0].GetRecord()
			item := read(t, kind, created.GetId())
			same(t, "create", created, item)

			up, ok := updates[name]
			if !ok {
				return
			}
			cmd := &tandemv1.WriteCommand{CommandId: "u", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: "sk-" + name,
				TargetId: item.GetId(), ExpectedVersion: item.GetVersion(), Record: record.CopyFields(item, up.with, up.fields), Fields: up.fields}
			calls(env)
			res, err = c.Apply(t.Context(), mb, kind, []*tandemv1.WriteCommand{cmd})
			if err != nil || !res[0].GetOk() {
				t.Fatalf("update: %v %v", res, err)
			}
			wantCalls(t, "update", calls(env), map[string]int64{"UpdateItem": 1})
			// The item as it was, with the written fields from the result. An event's timing
			// fields are written together (timingFields), so all of them are.
			wrote := up.fields
			if slices.ContainsFunc(wrote, func(f string) bool { return timingFields[f] }) {
				for _, f := range record.SyncFields(kind) {
					if timingFields[f] && !slices.Contains(wrote, f) {
						wrote = append(slices.Clip(wrote), f)
					}
				}
			}
			kept := record.CopyFields(item, res[0].GetRecord(), wrote)
			kept.Version = res[0].GetRecord().GetVersion()
			same(t, "update", kept, read(t, kind, item.GetId()))
		})
	}
}

// TestEchoNotFetched checks that a read lists the echo of Tandem's own writes without fetching
// the items, given the records their results recorded, and still fetches an item the user
// changed since (its change key differs), one whose version is not known, and everything when
// the lookup fails.
func TestEchoNotFetched(t *testing.T) {
	const address = "alice@contoso.com"
	contact := tandemv1.RecordKind_RECORD_KIND_CONTACT
	env, c := floorEnv(t, address)
	mb := mailboxOf(address)
	ctx := t.Context()
	pages, err := readAll(t, c, mb, contact, "")
	if err != nil {
		t.Fatal(err)
	}
	cursor := pages[len(pages)-1].Cursor

	var cmds []*tandemv1.WriteCommand
	for _, name := range []string{"Ann", "Ben", "Cat"} {
		cmds = append(cmds, &tandemv1.WriteCommand{CommandId: "c-" + name, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-" + name,
			Record: contactRecord("", &tandemv1.Contact{GivenName: name, Surname: "Written", Notes: "by\r\nTandem"})})
	}
	res, err := c.Apply(ctx, mb, contact, cmds)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]*tandemv1.Record{} // what the reconciler records from the results
	for _, r := range res {
		held[r.GetRecord().GetId()] = r.GetRecord()
	}
	var asked [][]string
	known := func(_ context.Context, ids []string) (map[string]*tandemv1.Record, error) {
		asked = append(asked, ids)
		out := map[string]*tandemv1.Record{}
		for _, id := range ids {
			if r, ok := held[id]; ok {
				out[id] = proto.Clone(r).(*tandemv1.Record)
			}
		}
		return out, nil
	}
	read := func(t *testing.T, from string, k exchange.KnownFunc) map[string]*tandemv1.Change {
		t.Helper()
		var pages []exchange.Page
		err := c.Changes(ctx, mb, contact, from, func(_ context.Context, p exchange.Page) error {
			pages = append(pages, p)
			return nil
		}, exchange.WithKnown(k))
		if err != nil {
			t.Fatal(err)
		}
		cursor = pages[len(pages)-1].Cursor
		out := map[string]*tandemv1.Change{}
		for _, p := range pages {
			for _, ch := range p.Changes {
				out[ch.GetRecord().GetId()] = ch
			}
		}
		return out
	}

	t.Run("the echo", func(t *testing.T) {
		calls(env)
		changes := read(t, cursor, known)
		wantCalls(t, "reading the echo", calls(env), map[string]int64{"SyncFolderItems": 1})
		if len(changes) != 3 || len(asked) != 1 || len(asked[0]) != 3 {
			t.Fatalf("echo: %d changes, lookups %v; want the 3 items listed after one lookup", len(changes), asked)
		}
		for id, ch := range changes {
			if ch.GetType() != tandemv1.ChangeType_CHANGE_TYPE_UPSERT || !proto.Equal(ch.GetRecord(), held[id]) {
				t.Errorf("echo of %s: %v, want an upsert of the result's record %v", id, ch, held[id])
			}
		}
	})

	t.Run("a user's edit is fetched", func(t *testing.T) {
		edited := res[1].GetRecord().GetId()
		if err := env.sim.UpdateItem(address, edited, func(it *ewssim.Item) { it.Contact.JobTitle = "Edited in Outlook" }); err != nil {
			t.Fatal(err)
		}
		calls(env)
		changes := read(t, cursor, known)
		wantCalls(t, "reading the edit", calls(env), map[string]int64{"SyncFolderItems": 1, "GetItem": 1})
		got := changes[edited].GetRecord()
		if len(changes) != 1 || got.GetContact().GetJobTitle() != "Edited in Outlook" || got.GetVersion() == held[edited].GetVersion() {
			t.Errorf("after the user's edit: %v, want the item read again with its new version", changes)
		}
	})

	t.Run("from scratch, only what is not held is fetched", func(t *testing.T) {
		if _, err := env.sim.PutContact(address, exchange.SyncFolderName, ewssim.Contact{GivenName: "Outlook"}); err != nil {
			t.Fatal(err)
		}
		calls(env)
		changes := read(t, "", known)
		wantCalls(t, "reading from scratch", calls(env), map[string]int64{"SyncFolderItems": 1, "GetItem": 1})
		if len(changes) != 4 {
			t.Errorf("a full read listed %d items, want 4", len(changes))
		}
	})

	t.Run("a failed lookup fetches everything", func(t *testing.T) {
		calls(env)
		changes := read(t, "", func(context.Context, []string) (map[string]*tandemv1.Record, error) {
			return nil, errors.New("redis is down")
		})
		wantCalls(t, "reading without the lookup", calls(env), map[string]int64{"SyncFolderItems": 1, "GetItem": 1})
		for id, ch := range changes {
			if ch.GetRecord().GetModifiedAt() == nil {
				t.Errorf("%s was not fetched", id)
			}
		}
	})
}

// TestBatchSizes checks the largest batches: a full SyncFolderItems page of new items is read
// with one GetItem (asked again in halves when the answer is larger than the client takes), and
// a write batch of the reconciler's size is one CreateItem, UpdateItem or DeleteItem.
func TestBatchSizes(t *testing.T) {
	const address = "alice@contoso.com"
	contact := tandemv1.RecordKind_RECORD_KIND_CONTACT
	env, c := floorEnv(t, address)
	mb := mailboxOf(address)
	if _, err := c.Folders(t.Context(), mb); err != nil {
		t.Fatal(err)
	}
	notes := strings.Repeat("Long notes. ", 170) // about 2 KB
	for i := range 300 {
		if _, err := env.sim.PutContact(address, exchange.SyncFolderName, ewssim.Contact{
			GivenName: "Seed", Surname: strconv.Itoa(i), ItemBase: ewssim.ItemBase{Body: notes, BodyType: "Text"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	calls(env)
	pages, err := readAll(t, c, mb, contact, "")
	if err != nil || upserts(pages) != 300 {
		t.Fatalf("read %d upserts, err %v", upserts(pages), err)
	}
	wantCalls(t, "reading 300 new items", calls(env), map[string]int64{"SyncFolderItems": 1, "GetItem": 1})

	small := env.connector(t, env.connection(), func(cfg *ConnectorConfig) {
		cfg.PageSize = 0
		cfg.Client.MaxResponseBytes = 600 << 10 // 300 items do not fit, 150 do
	})
	if _, err := small.Folders(t.Context(), mb); err != nil {
		t.Fatal(err)
	}
	calls(env)
	pages, err = readAll(t, small, mb, contact, "")
	if err != nil || upserts(pages) != 300 {
		t.Fatalf("read with a small answer limit: %d upserts, err %v", upserts(pages), err)
	}
	wantCalls(t, "reading 300 items in halves", calls(env), map[string]int64{"SyncFolderItems": 1, "GetItem": 3})

	var creates []*tandemv1.WriteCommand
	for i := range MaxWriteBatch {
		key := "sk-" + strconv.Itoa(i)
		creates = append(creates, &tandemv1.WriteCommand{CommandId: key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key,
			Record: contactRecord("", &tandemv1.Contact{GivenName: "Batch", Surname: key})})
	}
	calls(env)
	res, err := c.Apply(t.Context(), mb, contact, creates)
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "a write batch of creates", calls(env), map[string]int64{"CreateItem": 1})
	var updates, deletes []*tandemv1.WriteCommand
	for i, r := range res {
		if !r.GetOk() {
			t.Fatalf("create %d: %v", i, r.GetError())
		}
		updates = append(updates, &tandemv1.WriteCommand{CommandId: "u" + r.GetSyncKey(), Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: r.GetSyncKey(),
			TargetId: r.GetRecord().GetId(), ExpectedVersion: r.GetRecord().GetVersion(),
			Record: contactRecord("", &tandemv1.Contact{JobTitle: "Updated"}), Fields: []string{"job_title"}})
		deletes = append(deletes, &tandemv1.WriteCommand{CommandId: "d" + r.GetSyncKey(), Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: r.GetSyncKey(),
			TargetId: r.GetRecord().GetId()})
	}
	if _, err := c.Apply(t.Context(), mb, contact, updates); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(t.Context(), mb, contact, deletes); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "write batches of updates and deletes", calls(env), map[string]int64{"UpdateItem": 1, "DeleteItem": 1})
}

// TestBatchProcessingStopped checks that items Exchange did not process because it stopped a
// batch (ResponseClass Warning, ErrorBatchProcessingStopped) fail alone, to be tried again.
func TestBatchProcessingStopped(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, req capturedRequest, n int) {
		if req.op != "CreateItem" {
			answering(w, req, n)
			return
		}
		stopped := `<m:CreateItemResponseMessage ResponseClass="Warning"><m:MessageText>The batch was stopped.</m:MessageText>` +
			`<m:ResponseCode>ErrorBatchProcessingStopped</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Items/></m:CreateItemResponseMessage>`
		respond(w, 200, opResponse("CreateItem",
			okMessage("CreateItem", `<m:Items><t:Contact><t:ItemId Id="new-1" ChangeKey="ck"/></t:Contact></m:Items>`), stopped))
	})
	cmd := func(key string) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Record: contactRecord("", &tandemv1.Contact{GivenName: key})}
	}
	res, err := fakeConnector(t, srv).Apply(t.Context(), mailboxOf(testMailbox), tandemv1.RecordKind_RECORD_KIND_CONTACT, []*tandemv1.WriteCommand{cmd("a"), cmd("b")})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].GetOk() || res[0].GetRecord().GetId() != "new-1" {
		t.Errorf("processed item: %v", res[0])
	}
	if e := res[1].GetError(); res[1].GetOk() || e.GetCode() != string(syncerr.ExchangeServerBusy) || !e.GetRetryable() {
		t.Errorf("item the batch stopped before: %v, want a retryable %s", res[1], syncerr.ExchangeServerBusy)
	}
}
