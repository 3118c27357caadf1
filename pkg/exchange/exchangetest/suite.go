package exchangetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	contact = tandemv1.RecordKind_RECORD_KIND_CONTACT
	event   = tandemv1.RecordKind_RECORD_KIND_EVENT
)

// Run runs the conformance suite. newHarness is called once per case.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	cases := []struct {
		name string
		run  func(t *testing.T, h *Harness)
	}{
		{"Prepare/Idempotent", testPrepareIdempotent},
		{"Prepare/Concurrent", testPrepareConcurrent},
		{"Folders/Cached", testFoldersCached},
		{"Changes/FullRead", testFullRead},
		{"Changes/IncrementalContacts", testIncrementalContacts},
		{"Changes/IncrementalEvents", testIncrementalEvents},
		{"Changes/CursorResume", testCursorResume},
		{"Changes/InvalidCursor", testInvalidCursor},
		{"Changes/KnownVersions", testKnownVersions},
		{"Apply/ContactRoundTrip", testContactRoundTrip},
		{"Apply/EventRoundTrip", testEventRoundTrip},
		{"Apply/CreateRetried", testCreateRetried},
		{"Apply/CreateRetriedNewContent", testCreateRetriedNewContent},
		{"Apply/CreateAfterUserDelete", testCreateAfterUserDelete},
		{"Apply/CreateAfterUserMovedOut", testCreateAfterUserMovedOut},
		{"Apply/CreateAfterEarlierIncarnation", testCreateAfterEarlierIncarnation},
		{"Apply/UpdateTagsSyncKey", testUpdateTagsSyncKey},
		{"Apply/StaleVersion", testStaleVersion},
		{"Apply/UpdateDeleted", testUpdateDeleted},
		{"Apply/PartialFailure", testPartialFailure},
		{"Faults/Throttling", testThrottling},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newHarness(t))
		})
	}
}

func prepare(t *testing.T, h *Harness) exchange.Folders {
	t.Helper()
	f, err := h.Connector.Prepare(t.Context(), h.Mailbox)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return f
}

func syncFolders(t *testing.T, h *Harness) int {
	t.Helper()
	n, err := h.Backdoor.SyncFolders(t.Context())
	if err != nil {
		t.Fatalf("count sync folders: %v", err)
	}
	return n
}

func testPrepareIdempotent(t *testing.T, h *Harness) {
	first := prepare(t, h)
	if first.ContactsFolderID == "" || first.CalendarFolderID == "" {
		t.Fatalf("Prepare returned folders %+v", first)
	}
	if !first.CreatedContactsFolder {
		t.Error("first Prepare of an empty mailbox did not report creating the sync folder")
	}
	second := prepare(t, h)
	if second.ContactsFolderID != first.ContactsFolderID || second.CalendarFolderID != first.CalendarFolderID {
		t.Errorf("second Prepare returned %+v, first %+v", second, first)
	}
	if second.CreatedContactsFolder {
		t.Error("second Prepare reported creating the sync folder again")
	}
	if n := syncFolders(t, h); n != 1 {
		t.Errorf("%d sync folders after two Prepares, want 1", n)
	}
}

func testPrepareConcurrent(t *testing.T, h *Harness) {
	const workers = 6
	connectors := []exchange.Connector{h.Connector}
	for range workers - 1 {
		c := h.Connector
		if h.NewConnector != nil {
			c = h.NewConnector()
		}
		connectors = append(connectors, c)
	}
	results := make([]exchange.Folders, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range connectors {
		wg.Go(func() {
			<-start
			results[i], errs[i] = c.Prepare(t.Context(), h.Mailbox)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: Prepare: %v", i, err)
		}
		if results[i].ContactsFolderID != results[0].ContactsFolderID {
			t.Errorf("worker %d got folder %q, worker 0 %q", i, results[i].ContactsFolderID, results[0].ContactsFolderID)
		}
	}
	if n := syncFolders(t, h); n != 1 {
		t.Errorf("%d sync folders after racing Prepares, want 1", n)
	}
	again := prepare(t, h)
	if again.ContactsFolderID != results[0].ContactsFolderID {
		t.Errorf("a later Prepare chose folder %q, the racers %q", again.ContactsFolderID, results[0].ContactsFolderID)
	}
}

// testFoldersCached checks Folders: on a mailbox not located yet it prepares it, and later
// calls, and Prepare, agree with it without reporting the folder created again.
func testFoldersCached(t *testing.T, h *Harness) {
	first, err := h.Connector.Folders(t.Context(), h.Mailbox)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	if first.ContactsFolderID == "" || first.CalendarFolderID == "" || !first.CreatedContactsFolder {
		t.Fatalf("Folders of an empty mailbox returned %+v, want its folders with the sync folder created", first)
	}
	if first.ServerVersion == "" {
		t.Error("Folders reported no server version")
	}
	second, err := h.Connector.Folders(t.Context(), h.Mailbox)
	if err != nil {
		t.Fatalf("second Folders: %v", err)
	}
	if second.ContactsFolderID != first.ContactsFolderID || second.CalendarFolderID != first.CalendarFolderID ||
		second.CreatedContactsFolder || second.ServerVersion == "" {
		t.Errorf("second Folders returned %+v, first %+v", second, first)
	}
	if p := prepare(t, h); p.ContactsFolderID != first.ContactsFolderID || p.CreatedContactsFolder {
		t.Errorf("Prepare after Folders returned %+v, Folders %+v", p, first)
	}
	if n := syncFolders(t, h); n != 1 {
		t.Errorf("%d sync folders, want 1", n)
	}
}

// read collects every page of a read from cursor.
func read(t *testing.T, c exchange.Connector, mb exchange.Mailbox, kind tandemv1.RecordKind, cursor string) []exchange.Page {
	t.Helper()
	var pages []exchange.Page
	err := c.Changes(t.Context(), mb, kind, cursor, func(_ context.Context, p exchange.Page) error {
		pages = append(pages, p)
		return nil
	})
	if err != nil {
		t.Fatalf("Changes(%v, %q): %v", kind, cursor, err)
	}
	if len(pages) == 0 {
		t.Fatalf("Changes(%v, %q) produced no page", kind, cursor)
	}
	for i, p := range pages {
		if p.Last != (i == len(pages)-1) {
			t.Errorf("page %d of %d has Last=%v", i, len(pages), p.Last)
		}
		if p.Cursor == "" {
			t.Errorf("page %d has no cursor", i)
		}
	}
	return pages
}

// changesOf flattens pages into the final state per record id: the last change wins.
func changesOf(pages []exchange.Page) map[string]*tandemv1.Change {
	out := make(map[string]*tandemv1.Change)
	for _, p := range pages {
		for _, ch := range p.Changes {
			out[ch.GetRecord().GetId()] = ch
		}
	}
	return out
}

func lastCursor(pages []exchange.Page) string { return pages[len(pages)-1].Cursor }

func mustCreateContact(t *testing.T, h *Harness, c *tandemv1.Contact) string {
	t.Helper()
	id, err := h.Backdoor.CreateContact(t.Context(), c)
	if err != nil {
		t.Fatalf("backdoor create contact: %v", err)
	}
	return id
}

func mustCreateEvent(t *testing.T, h *Harness, e *tandemv1.Event) string {
	t.Helper()
	id, err := h.Backdoor.CreateEvent(t.Context(), e)
	if err != nil {
		t.Fatalf("backdoor create event: %v", err)
	}
	return id
}

func wantUpsert(t *testing.T, changes map[string]*tandemv1.Change, id string, want *tandemv1.Record) *tandemv1.Record {
	t.Helper()
	ch, ok := changes[id]
	if !ok {
		t.Errorf("no change for %s", id)
		return nil
	}
	if ch.GetType() != tandemv1.ChangeType_CHANGE_TYPE_UPSERT {
		t.Errorf("change for %s is %v, want an upsert", id, ch.GetType())
		return nil
	}
	if ch.GetRecord().GetVersion() == "" {
		t.Errorf("upsert of %s has no version", id)
	}
	if want != nil {
		sameContent(t, "read "+id, want, ch.GetRecord())
	}
	return ch.GetRecord()
}

func wantDelete(t *testing.T, changes map[string]*tandemv1.Change, id string) {
	t.Helper()
	ch, ok := changes[id]
	if !ok || ch.GetType() != tandemv1.ChangeType_CHANGE_TYPE_DELETE {
		t.Errorf("want a delete for %s, got %v", id, ch)
	}
}

func testFullRead(t *testing.T, h *Harness) {
	prepare(t, h)
	contacts := sampleContacts()
	events := sampleEvents()
	ids := map[tandemv1.RecordKind]map[string]*tandemv1.Record{contact: {}, event: {}}
	for _, c := range contacts {
		ids[contact][mustCreateContact(t, h, c)] = contactRecord(c)
	}
	for _, e := range events {
		ids[event][mustCreateEvent(t, h, e)] = eventRecord(e)
	}
	for kind, want := range ids {
		pages := read(t, h.Connector, h.Mailbox, kind, "")
		for i, p := range pages {
			if !p.Full {
				t.Errorf("%v: page %d of a read from scratch is not Full", kind, i)
			}
		}
		got := changesOf(pages)
		if len(got) != len(want) {
			t.Errorf("%v: full read listed %d records, want %d", kind, len(got), len(want))
		}
		for id, rec := range want {
			wantUpsert(t, got, id, rec)
		}
	}
}

func testIncrementalContacts(t *testing.T, h *Harness) {
	prepare(t, h)
	cs := sampleContacts()
	updated := mustCreateContact(t, h, cs[0])
	deleted := mustCreateContact(t, h, cs[1])
	moved := mustCreateContact(t, h, cs[2])
	cursor := lastCursor(read(t, h.Connector, h.Mailbox, contact, ""))

	added := &tandemv1.Contact{GivenName: "Nina", Surname: "Added", EmailAddress1: "nina@example.org"}
	addedID := mustCreateContact(t, h, added)
	changed := cloneContact(cs[0])
	changed.JobTitle, changed.MobilePhone = "Chief Revenue Officer", ""
	if err := h.Backdoor.UpdateContact(t.Context(), updated, changed); err != nil {
		t.Fatal(err)
	}
	if err := h.Backdoor.Delete(t.Context(), contact, deleted); err != nil {
		t.Fatal(err)
	}
	if err := h.Backdoor.MoveOut(t.Context(), contact, moved); err != nil {
		t.Fatal(err)
	}

	pages := read(t, h.Connector, h.Mailbox, contact, cursor)
	for i, p := range pages {
		if p.Full {
			t.Errorf("page %d of an incremental read is Full", i)
		}
	}
	got := changesOf(pages)
	wantUpsert(t, got, addedID, contactRecord(added))
	wantUpsert(t, got, updated, contactRecord(changed))
	wantDelete(t, got, deleted)
	wantDelete(t, got, moved)
	if len(got) != 4 {
		t.Errorf("incremental read reported %d records, want 4: %v", len(got), got)
	}

	again := changesOf(read(t, h.Connector, h.Mailbox, contact, lastCursor(pages)))
	if len(again) != 0 {
		t.Errorf("read after catching up reported %d changes", len(again))
	}
}

func testIncrementalEvents(t *testing.T, h *Harness) {
	prepare(t, h)
	es := sampleEvents()
	updated := mustCreateEvent(t, h, es[0])
	deleted := mustCreateEvent(t, h, es[1])
	cursor := lastCursor(read(t, h.Connector, h.Mailbox, event, ""))

	added := es[2]
	addedID := mustCreateEvent(t, h, added)
	changed := cloneEvent(es[0])
	changed.Subject, changed.Location = changed.Subject+" (moved)", "Room 9"
	changed.Start, changed.End = shift(changed.Start, time.Hour), shift(changed.End, time.Hour)
	if err := h.Backdoor.UpdateEvent(t.Context(), updated, changed); err != nil {
		t.Fatal(err)
	}
	if err := h.Backdoor.Delete(t.Context(), event, deleted); err != nil {
		t.Fatal(err)
	}
	pages := read(t, h.Connector, h.Mailbox, event, cursor)
	got := changesOf(pages)
	wantUpsert(t, got, addedID, eventRecord(added))
	wantUpsert(t, got, updated, eventRecord(changed))
	wantDelete(t, got, deleted)
	if len(got) != 3 {
		t.Errorf("incremental read reported %d records, want 3", len(got))
	}
}

var errStop = errors.New("stop after the first page")

func testCursorResume(t *testing.T, h *Harness) {
	prepare(t, h)
	want := map[string]bool{}
	for i := range 5 {
		want[mustCreateContact(t, h, &tandemv1.Contact{GivenName: fmt.Sprintf("Resume%d", i), Surname: "Test"})] = true
	}
	var first exchange.Page
	err := h.Connector.Changes(t.Context(), h.Mailbox, contact, "", func(_ context.Context, p exchange.Page) error {
		first = p
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Changes returned %v, want the page callback's error", err)
	}
	seen := map[string]bool{}
	for _, ch := range first.Changes {
		seen[ch.GetRecord().GetId()] = true
	}
	if !first.Last {
		for _, ch := range changesOf(read(t, h.Connector, h.Mailbox, contact, first.Cursor)) {
			seen[ch.GetRecord().GetId()] = true
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("resuming from the first page's cursor lost %s", id)
		}
	}
	later := mustCreateContact(t, h, &tandemv1.Contact{GivenName: "Later"})
	all := read(t, h.Connector, h.Mailbox, contact, "")
	got := changesOf(read(t, h.Connector, h.Mailbox, contact, lastCursor(all)))
	if len(got) != 0 {
		t.Errorf("a caught-up cursor reported %d changes", len(got))
	}
	if _, ok := changesOf(all)[later]; !ok {
		t.Errorf("full read misses %s", later)
	}
}

func testInvalidCursor(t *testing.T, h *Harness) {
	prepare(t, h)
	a := mustCreateContact(t, h, &tandemv1.Contact{GivenName: "Ann"})
	b := mustCreateContact(t, h, &tandemv1.Contact{GivenName: "Ben"})
	pages := read(t, h.Connector, h.Mailbox, contact, "bm90LWEtdmFsaWQtY3Vyc29y")
	for i, p := range pages {
		if !p.Full {
			t.Errorf("page %d after an invalid cursor is not Full", i)
		}
	}
	got := changesOf(pages)
	wantUpsert(t, got, a, nil)
	wantUpsert(t, got, b, nil)
}

// testKnownVersions reads with WithKnown: the echo of Tandem's own writes is listed with the
// records their results carried, and an item changed since is read as it now is.
func testKnownVersions(t *testing.T, h *Harness) {
	prepare(t, h)
	cursor := lastCursor(read(t, h.Connector, h.Mailbox, contact, ""))
	res := apply(t, h, contact,
		create("sk-known-1", contactRecord(&tandemv1.Contact{GivenName: "Known", Surname: "One"})),
		create("sk-known-2", contactRecord(&tandemv1.Contact{GivenName: "Known", Surname: "Two"})))
	held := map[string]*tandemv1.Record{}
	for _, r := range res {
		wantOK(t, "create", r)
		held[r.GetRecord().GetId()] = r.GetRecord()
	}
	known := exchange.WithKnown(func(_ context.Context, ids []string) (map[string]*tandemv1.Record, error) {
		out := map[string]*tandemv1.Record{}
		for _, id := range ids {
			if r, ok := held[id]; ok {
				out[id] = proto.Clone(r).(*tandemv1.Record)
			}
		}
		return out, nil
	})
	readKnown := func(from string) ([]exchange.Page, map[string]*tandemv1.Change) {
		var pages []exchange.Page
		err := h.Connector.Changes(t.Context(), h.Mailbox, contact, from, func(_ context.Context, p exchange.Page) error {
			pages = append(pages, p)
			return nil
		}, known)
		if err != nil {
			t.Fatalf("Changes with known versions: %v", err)
		}
		return pages, changesOf(pages)
	}
	pages, got := readKnown(cursor)
	if len(got) != len(held) {
		t.Errorf("the echo of %d writes listed %d records", len(held), len(got))
	}
	for id, rec := range held {
		if r := wantUpsert(t, got, id, nil); r != nil && !proto.Equal(r, rec) {
			t.Errorf("echo of %s: %v, want the record held %v", id, r, rec)
		}
	}
	changed := res[0].GetRecord().GetId()
	edit := &tandemv1.Contact{GivenName: "Known", Surname: "One", JobTitle: "Changed in Outlook"}
	if err := h.Backdoor.UpdateContact(t.Context(), changed, edit); err != nil {
		t.Fatal(err)
	}
	_, got = readKnown(lastCursor(pages))
	if r := wantUpsert(t, got, changed, contactRecord(edit)); r != nil && r.GetVersion() == held[changed].GetVersion() {
		t.Errorf("the edited item kept version %q", r.GetVersion())
	}
}

func apply(t *testing.T, h *Harness, kind tandemv1.RecordKind, cmds ...*tandemv1.WriteCommand) []*tandemv1.WriteResult {
	t.Helper()
	return applyWith(t, h, kind, nil, cmds...)
}

// applyWith is apply with options.
func applyWith(t *testing.T, h *Harness, kind tandemv1.RecordKind, opts []exchange.ApplyOption, cmds ...*tandemv1.WriteCommand) []*tandemv1.WriteResult {
	t.Helper()
	res, err := h.Connector.Apply(t.Context(), h.Mailbox, kind, cmds, opts...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(cmds) {
		t.Fatalf("Apply returned %d results for %d commands", len(res), len(cmds))
	}
	for i, r := range res {
		c := cmds[i] //nolint:gosec // len(res) == len(cmds), checked above
		if r.GetCommandId() != c.GetCommandId() || r.GetOp() != c.GetOp() || r.GetSyncKey() != c.GetSyncKey() {
			t.Errorf("result %d (%s %v %s) does not match its command", i, r.GetCommandId(), r.GetOp(), r.GetSyncKey())
		}
	}
	return res
}

func wantOK(t *testing.T, what string, r *tandemv1.WriteResult) {
	t.Helper()
	if !r.GetOk() {
		t.Fatalf("%s failed: %v", what, r.GetError())
	}
}

func wantError(t *testing.T, what string, r *tandemv1.WriteResult, code syncerr.Code) {
	t.Helper()
	if r.GetOk() || r.GetError().GetCode() != string(code) {
		t.Fatalf("%s: ok=%v error %v, want error %s", what, r.GetOk(), r.GetError(), code)
	}
}

func create(key string, rec *tandemv1.Record) *tandemv1.WriteCommand {
	return createIssued(key, rec, time.Now().Add(-time.Minute))
}

// createIssued is a create the reconciler issued at issued.
func createIssued(key string, rec *tandemv1.Record, issued time.Time) *tandemv1.WriteCommand {
	return &tandemv1.WriteCommand{CommandId: "create-" + key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Record: rec, IssuedAt: timestamppb.New(issued)}
}

// retried marks a create as repeating an earlier one whose result never arrived.
func retried(cmd *tandemv1.WriteCommand) *tandemv1.WriteCommand {
	cmd.Retry = true
	cmd.CommandId += "-retry"
	return cmd
}

func updateCmd(key string, target *tandemv1.Record, rec *tandemv1.Record, fields ...string) *tandemv1.WriteCommand {
	return &tandemv1.WriteCommand{
		CommandId: "update-" + key + "-" + target.GetVersion(), Op: tandemv1.WriteOp_WRITE_OP_UPDATE, SyncKey: key,
		TargetId: target.GetId(), ExpectedVersion: target.GetVersion(), Record: rec, Fields: fields,
	}
}

func deleteCmd(key string, target *tandemv1.Record) *tandemv1.WriteCommand {
	return &tandemv1.WriteCommand{
		CommandId: "delete-" + key, Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: key,
		TargetId: target.GetId(), ExpectedVersion: target.GetVersion(),
	}
}

// listed returns the backdoor's view of id, failing when it is absent.
func listed(t *testing.T, h *Harness, kind tandemv1.RecordKind, id string) *tandemv1.Record {
	t.Helper()
	recs, err := h.Backdoor.List(t.Context(), kind)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.GetId() == id {
			return r
		}
	}
	t.Fatalf("%s is not in the mailbox", id)
	return nil
}

func countListed(t *testing.T, h *Harness, kind tandemv1.RecordKind, key string) int {
	t.Helper()
	recs, err := h.Backdoor.List(t.Context(), kind)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.GetSyncKey() == key {
			n++
		}
	}
	return n
}

// roundTrip creates rec, updates it twice (some fields, then all fields) and deletes it,
// checking results, the mailbox's content and what the connector reads back at each step.
func roundTrip(t *testing.T, h *Harness, kind tandemv1.RecordKind, key string, rec, partial *tandemv1.Record, fields []string, full *tandemv1.Record) {
	t.Helper()
	cursor := lastCursor(read(t, h.Connector, h.Mailbox, kind, ""))

	res := apply(t, h, kind, create(key, rec))[0]
	wantOK(t, "create", res)
	if res.GetAlreadyApplied() {
		t.Error("a first create reported already applied")
	}
	written := res.GetRecord()
	if written.GetId() == "" || written.GetVersion() == "" || written.GetSyncKey() != key {
		t.Fatalf("create result record has id %q version %q sync key %q", written.GetId(), written.GetVersion(), written.GetSyncKey())
	}
	sameContent(t, "create result", rec, written)
	inMailbox := listed(t, h, kind, written.GetId())
	if inMailbox.GetSyncKey() != key {
		t.Errorf("created item carries sync key %q, want %q", inMailbox.GetSyncKey(), key)
	}
	sameContent(t, "created item", rec, inMailbox)
	pages := read(t, h.Connector, h.Mailbox, kind, cursor)
	readBack := wantUpsert(t, changesOf(pages), written.GetId(), rec)
	if readBack != nil && readBack.GetSyncKey() != key {
		t.Errorf("read sync key %q, want %q", readBack.GetSyncKey(), key)
	}
	cursor = lastCursor(pages)

	res = apply(t, h, kind, updateCmd(key, written, partial, fields...))[0]
	wantOK(t, "update of "+fmt.Sprint(fields), res)
	if res.GetRecord().GetId() != written.GetId() || res.GetRecord().GetVersion() == written.GetVersion() {
		t.Errorf("update result id %q version %q; before %q %q", res.GetRecord().GetId(), res.GetRecord().GetVersion(), written.GetId(), written.GetVersion())
	}
	merged := mergeFields(rec, partial, fields)
	// An update's result speaks for the fields it wrote; its other fields are the command's.
	sameContent(t, "partial update result", merged, mergeFields(rec, res.GetRecord(), fields))
	sameContent(t, "partially updated item", merged, listed(t, h, kind, written.GetId()))
	pages = read(t, h.Connector, h.Mailbox, kind, cursor)
	wantUpsert(t, changesOf(pages), written.GetId(), merged)
	cursor = lastCursor(pages)
	written = res.GetRecord()

	res = apply(t, h, kind, updateCmd(key, written, full))[0]
	wantOK(t, "update of every field", res)
	sameContent(t, "full update result", full, res.GetRecord())
	sameContent(t, "fully updated item", full, listed(t, h, kind, written.GetId()))
	written = res.GetRecord()

	res = apply(t, h, kind, deleteCmd(key, written))[0]
	wantOK(t, "delete", res)
	if n := countListed(t, h, kind, key); n != 0 {
		t.Errorf("%d items with the sync key remain after the delete", n)
	}
	wantDelete(t, changesOf(read(t, h.Connector, h.Mailbox, kind, cursor)), written.GetId())
}

func testContactRoundTrip(t *testing.T, h *Harness) {
	prepare(t, h)
	partial := &tandemv1.Contact{
		JobTitle:        "Chief Revenue Officer",
		BusinessAddress: &tandemv1.PostalAddress{Street: "9 New Road", City: "Leeds", PostalCode: "LS1 1AA", Country: "United Kingdom"},
		Birthday:        &tandemv1.Date{Year: 1981, Month: 12, Day: 31},
	}
	full := &tandemv1.Contact{
		GivenName: "Zoe", Surname: "O'Brien", CompanyName: "Acme Group", EmailAddress1: "zoe@acme.example",
		HomePhone: "+44 20 7946 0999", Notes: "Rewritten notes.",
		OtherAddress: &tandemv1.PostalAddress{City: "Lyon", Country: "France"},
	}
	roundTrip(t, h, contact, "sk-contact-rt", contactRecord(FullContact()), contactRecord(partial),
		[]string{"job_title", "mobile_phone", "business_address", "birthday", "notes"}, contactRecord(full))
}

func testEventRoundTrip(t *testing.T, h *Harness) {
	prepare(t, h)
	t.Run("timed", func(t *testing.T) {
		partial := &tandemv1.Event{
			Subject: "Renamed review", Location: "",
			Attendees: []*tandemv1.Attendee{{Email: "dan@contoso.com", Name: "Dan", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED}},
		}
		full := &tandemv1.Event{
			Subject: "Final review", Body: "New agenda", Start: ts("2026-03-11T08:00:00Z"), End: ts("2026-03-11T09:00:00Z"),
			StartTimeZone: "GMT Standard Time", EndTimeZone: "GMT Standard Time", ShowAs: tandemv1.ShowAs_SHOW_AS_FREE,
			Sensitivity: tandemv1.Sensitivity_SENSITIVITY_NORMAL,
		}
		roundTrip(t, h, event, "sk-event-rt", eventRecord(FullEvent()), eventRecord(partial),
			[]string{"subject", "location", "attendees", "categories"}, eventRecord(full))
	})
	t.Run("all-day", func(t *testing.T) {
		partial := &tandemv1.Event{
			IsAllDay: true, StartDate: &tandemv1.Date{Year: 2026, Month: 7, Day: 3}, EndDate: &tandemv1.Date{Year: 2026, Month: 7, Day: 3},
			StartTimeZone: "Eastern Standard Time",
		}
		full := &tandemv1.Event{
			Subject: "Back to timed", Start: ts("2026-07-03T13:00:00Z"), End: ts("2026-07-03T14:00:00Z"),
		}
		roundTrip(t, h, event, "sk-allday-rt", eventRecord(AllDayEvent()), eventRecord(partial),
			[]string{"is_all_day", "start_date", "end_date", "start_time_zone"}, eventRecord(full))
	})
	t.Run("recurring", func(t *testing.T) {
		partial := &tandemv1.Event{Recurrence: &tandemv1.Recurrence{
			Pattern: tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_MONTHLY, Interval: 1,
			DaysOfWeek: []tandemv1.DayOfWeek{tandemv1.DayOfWeek_DAY_OF_WEEK_MONDAY}, Index: tandemv1.WeekIndex_WEEK_INDEX_FIRST,
			StartDate: &tandemv1.Date{Year: 2026, Month: 1, Day: 5}, NumberOfOccurrences: 6,
		}}
		full := &tandemv1.Event{Subject: "No longer recurring", Start: ts("2026-01-05T09:00:00Z"), End: ts("2026-01-05T09:30:00Z")}
		roundTrip(t, h, event, "sk-series-rt", eventRecord(RecurringEvent()), eventRecord(partial),
			[]string{"recurrence"}, eventRecord(full))
	})
}

func testCreateRetried(t *testing.T, h *Harness) {
	prepare(t, h)
	for _, tc := range []struct {
		kind tandemv1.RecordKind
		rec  *tandemv1.Record
	}{
		{contact, contactRecord(&tandemv1.Contact{GivenName: "Once", Surname: "Only", EmailAddress1: "once@example.org"})},
		{event, eventRecord(&tandemv1.Event{Subject: "Once", Start: ts("2026-05-01T10:00:00Z"), End: ts("2026-05-01T11:00:00Z")})},
	} {
		key := "sk-retried-" + tc.kind.String()
		first := apply(t, h, tc.kind, create(key, tc.rec))[0]
		wantOK(t, "first create", first)
		// The same create again, as each way a repeat reaches Apply: planned again as a retry,
		// redelivered by the bus, or known to the caller as started before.
		for _, again := range []struct {
			how  string
			cmd  *tandemv1.WriteCommand
			opts []exchange.ApplyOption
		}{
			{"retried", retried(create(key, tc.rec)), nil},
			{"redelivered", create(key, tc.rec), []exchange.ApplyOption{exchange.Redelivered()}},
			{"started before", create(key, tc.rec), []exchange.ApplyOption{exchange.KeyMayExist("create-" + key)}},
		} {
			res := applyWith(t, h, tc.kind, again.opts, again.cmd)[0]
			wantOK(t, again.how+" create", res)
			if !res.GetAlreadyApplied() || res.GetRecord().GetId() != first.GetRecord().GetId() {
				t.Errorf("%v: %s create returned %q (already applied %v), want the first item %q",
					tc.kind, again.how, res.GetRecord().GetId(), res.GetAlreadyApplied(), first.GetRecord().GetId())
			}
			if n := countListed(t, h, tc.kind, key); n != 1 {
				t.Errorf("%v: %d items with the sync key after a %s create, want 1", tc.kind, n, again.how)
			}
		}
		// The same create twice in one batch is also one item.
		key2 := key + "-batch"
		res := apply(t, h, tc.kind, create(key2, tc.rec), create(key2, tc.rec))
		wantOK(t, "batched create", res[0])
		wantOK(t, "batched duplicate create", res[1])
		if res[0].GetRecord().GetId() != res[1].GetRecord().GetId() {
			t.Errorf("%v: one batch's duplicate creates returned %q and %q", tc.kind, res[0].GetRecord().GetId(), res[1].GetRecord().GetId())
		}
		if n := countListed(t, h, tc.kind, key2); n != 1 {
			t.Errorf("%v: %d items after a batch with a duplicate create, want 1", tc.kind, n)
		}
	}
}

// testCreateRetriedNewContent retries a create whose first attempt took effect unreported,
// with newer content: the retry must leave one item holding the newer content.
func testCreateRetriedNewContent(t *testing.T, h *Harness) {
	prepare(t, h)
	for _, tc := range []struct {
		kind          tandemv1.RecordKind
		first, second *tandemv1.Record
	}{
		{contact, contactRecord(FullContact()), contactRecord(&tandemv1.Contact{
			GivenName: "Zoe", Surname: "O'Brien", JobTitle: "CFO", EmailAddress1: "zoe@acme.example",
			HomeAddress: &tandemv1.PostalAddress{City: "York", Country: "United Kingdom"}, Notes: "Second attempt.",
		})},
		{event, eventRecord(FullEvent()), eventRecord(&tandemv1.Event{
			Subject: "Review, moved", Location: "Room 2", Start: ts("2026-03-12T09:00:00Z"), End: ts("2026-03-12T10:00:00Z"),
			StartTimeZone: "GMT Standard Time", ShowAs: tandemv1.ShowAs_SHOW_AS_FREE,
		})},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			key := "sk-upsert-" + tc.kind.String()
			cursor := lastCursor(read(t, h.Connector, h.Mailbox, tc.kind, ""))
			first := apply(t, h, tc.kind, create(key, tc.first))[0]
			wantOK(t, "first create", first)
			id := first.GetRecord().GetId()

			again := apply(t, h, tc.kind, retried(create(key, tc.second)))[0]
			wantOK(t, "retried create", again)
			if !again.GetAlreadyApplied() {
				t.Error("a create whose item exists did not report already applied")
			}
			got := again.GetRecord()
			if got.GetId() != id || got.GetSyncKey() != key {
				t.Errorf("retried create returned id %q sync key %q, want the first item %q with %q", got.GetId(), got.GetSyncKey(), id, key)
			}
			sameContent(t, "retried create result", tc.second, got)
			if n := countListed(t, h, tc.kind, key); n != 1 {
				t.Errorf("%d items with the sync key after a retried create, want 1", n)
			}
			item := listed(t, h, tc.kind, id)
			sameContent(t, "item after the retried create", tc.second, item)
			if got.GetVersion() != item.GetVersion() {
				t.Errorf("retried create result has version %q, the item %q", got.GetVersion(), item.GetVersion())
			}
			changes := changesOf(read(t, h.Connector, h.Mailbox, tc.kind, cursor))
			wantUpsert(t, changes, id, tc.second)
			if len(changes) != 1 {
				t.Errorf("read after the retried create reported %d records, want 1", len(changes))
			}
		})
	}
}

// testCreateAfterEarlierIncarnation creates a pair again under a sync key whose earlier item was
// deleted before the create was issued (a contact that left the filters and came back, or one
// recreated because a modification beat a deletion): that deleted item is no earlier attempt of
// this create, so the create must take place.
func testCreateAfterEarlierIncarnation(t *testing.T, h *Harness) {
	prepare(t, h)
	for _, tc := range []struct {
		kind tandemv1.RecordKind
		rec  *tandemv1.Record
	}{
		{contact, contactRecord(&tandemv1.Contact{GivenName: "Back", Surname: "Again", EmailAddress1: "back@example.org"})},
		{event, eventRecord(&tandemv1.Event{Subject: "Back again", Start: ts("2026-05-05T10:00:00Z"), End: ts("2026-05-05T11:00:00Z")})},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			key := "sk-incarnation-" + tc.kind.String()
			first := apply(t, h, tc.kind, create(key, tc.rec))[0]
			wantOK(t, "first create", first)
			if err := h.Backdoor.Delete(t.Context(), tc.kind, first.GetRecord().GetId()); err != nil {
				t.Fatal(err)
			}
			// Marked retry, so that it looks its key up and finds the deleted earlier item.
			later := retried(createIssued(key, tc.rec, time.Now().Add(10*time.Minute)))
			later.CommandId = "create-again-" + key
			res := apply(t, h, tc.kind, later)[0]
			wantOK(t, "create issued after the earlier item was deleted", res)
			if n := countListed(t, h, tc.kind, key); n != 1 {
				t.Errorf("%d items with the sync key after the new create, want 1", n)
			}
		})
	}
}

// testCreateAfterUserDelete retries a create whose first attempt took effect and whose item
// the user has deleted since: the item must not come back, and the result must name it.
func testCreateAfterUserDelete(t *testing.T, h *Harness) {
	prepare(t, h)
	for _, tc := range []struct {
		kind tandemv1.RecordKind
		rec  *tandemv1.Record
	}{
		{contact, contactRecord(&tandemv1.Contact{GivenName: "Deleted", Surname: "ByUser", EmailAddress1: "deleted@example.org"})},
		{event, eventRecord(&tandemv1.Event{Subject: "Deleted by the user", Start: ts("2026-05-04T10:00:00Z"), End: ts("2026-05-04T11:00:00Z")})},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			key := "sk-user-deleted-" + tc.kind.String()
			first := apply(t, h, tc.kind, create(key, tc.rec))[0]
			wantOK(t, "first create", first)
			if err := h.Backdoor.Delete(t.Context(), tc.kind, first.GetRecord().GetId()); err != nil {
				t.Fatal(err)
			}
			fresh := "sk-fresh-" + tc.kind.String()
			res := apply(t, h, tc.kind, retried(create(key, tc.rec)), create(fresh, tc.rec))
			wantError(t, "create retried after the user deleted its item", res[0], syncerr.ExchangeItemNotFound)
			wantOK(t, "new create in the same batch", res[1])
			if n := countListed(t, h, tc.kind, key); n != 0 {
				t.Errorf("the deleted item was created again (%d items with its sync key)", n)
			}
			trash := withKey(t, h, tc.kind, key)
			if len(trash) != 1 {
				t.Fatalf("%d items with the sync key in Deleted Items, want 1", len(trash))
			}
			if got := res[0].GetRecord().GetId(); got != trash[0].GetId() {
				t.Errorf("result names item %q, want the deleted item %q", got, trash[0].GetId())
			}
			if n := countListed(t, h, tc.kind, fresh); n != 1 {
				t.Errorf("%d items for the new create, want 1", n)
			}
		})
	}
}

// testCreateAfterUserMovedOut: a create took effect, the user then moved the contact out of
// the synced folder (into the main Contacts folder, to stop syncing it), and the create is
// retried. The contact is not created again in the synced folder: the create fails as gone.
func testCreateAfterUserMovedOut(t *testing.T, h *Harness) {
	prepare(t, h)
	key := "sk-user-moved-out"
	rec := contactRecord(&tandemv1.Contact{GivenName: "Moved", Surname: "ByUser", EmailAddress1: "moved@example.org"})
	first := apply(t, h, contact, create(key, rec))[0]
	wantOK(t, "first create", first)
	if err := h.Backdoor.MoveOut(t.Context(), contact, first.GetRecord().GetId()); err != nil {
		t.Fatal(err)
	}
	res := apply(t, h, contact, retried(create(key, rec)))
	wantError(t, "create retried after the user moved its item out", res[0], syncerr.ExchangeItemNotFound)
	if n := countListed(t, h, contact, key); n != 0 {
		t.Errorf("the moved contact was created again in the synced folder (%d items with its sync key)", n)
	}
	if got := res[0].GetRecord().GetId(); got == "" {
		t.Error("the result names no item")
	}
}

// withKey returns the records in Deleted Items that carry key.
func withKey(t *testing.T, h *Harness, kind tandemv1.RecordKind, key string) []*tandemv1.Record {
	t.Helper()
	recs, err := h.Backdoor.Deleted(t.Context(), kind)
	if err != nil {
		t.Fatal(err)
	}
	var out []*tandemv1.Record
	for _, r := range recs {
		if r.GetSyncKey() == key {
			out = append(out, r)
		}
	}
	return out
}

// testUpdateTagsSyncKey updates an item the user created, which has no sync key, with a
// command that carries one: from then on the item carries it.
func testUpdateTagsSyncKey(t *testing.T, h *Harness) {
	prepare(t, h)
	for _, tc := range []struct {
		kind  tandemv1.RecordKind
		user  *tandemv1.Record // what the user creates
		rec   *tandemv1.Record // the update's content
		field string
	}{
		{contact, contactRecord(&tandemv1.Contact{GivenName: "Untagged", Surname: "Contact"}),
			contactRecord(&tandemv1.Contact{JobTitle: "Buyer"}), "job_title"},
		{event, eventRecord(&tandemv1.Event{Subject: "Untagged", Start: ts("2026-05-05T10:00:00Z"), End: ts("2026-05-05T11:00:00Z")}),
			eventRecord(&tandemv1.Event{Subject: "Tagged by Tandem"}), "subject"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			var id string
			if c := tc.user.GetContact(); c != nil {
				id = mustCreateContact(t, h, c)
			} else {
				id = mustCreateEvent(t, h, tc.user.GetEvent())
			}
			before := listed(t, h, tc.kind, id)
			if before.GetSyncKey() != "" {
				t.Fatalf("an item the user created carries sync key %q", before.GetSyncKey())
			}
			cursor := lastCursor(read(t, h.Connector, h.Mailbox, tc.kind, ""))
			key := "sk-tagged-" + tc.kind.String()
			res := apply(t, h, tc.kind, updateCmd(key, before, tc.rec, tc.field))[0]
			wantOK(t, "update with a sync key", res)
			if got := res.GetRecord().GetSyncKey(); got != key {
				t.Errorf("update result carries sync key %q, want %q", got, key)
			}
			if got := listed(t, h, tc.kind, id).GetSyncKey(); got != key {
				t.Errorf("updated item carries sync key %q, want %q", got, key)
			}
			if rec := wantUpsert(t, changesOf(read(t, h.Connector, h.Mailbox, tc.kind, cursor)), id, nil); rec != nil && rec.GetSyncKey() != key {
				t.Errorf("read after the update: sync key %q, want %q", rec.GetSyncKey(), key)
			}
		})
	}
}

func testStaleVersion(t *testing.T, h *Harness) {
	prepare(t, h)
	res := apply(t, h, contact, create("sk-stale", contactRecord(&tandemv1.Contact{GivenName: "Stale", JobTitle: "Engineer"})))[0]
	wantOK(t, "create", res)
	changed := &tandemv1.Contact{GivenName: "Stale", JobTitle: "Manager (changed in Outlook)"}
	if err := h.Backdoor.UpdateContact(t.Context(), res.GetRecord().GetId(), changed); err != nil {
		t.Fatal(err)
	}
	upd := apply(t, h, contact, updateCmd("sk-stale", res.GetRecord(), contactRecord(&tandemv1.Contact{JobTitle: "Director"}), "job_title"))[0]
	wantError(t, "update with a stale version", upd, syncerr.ExchangeConflict)
	if !upd.GetError().GetRetryable() {
		t.Error("a conflict must be retryable")
	}
	sameContent(t, "item after a refused update", contactRecord(changed), listed(t, h, contact, res.GetRecord().GetId()))
}

func testUpdateDeleted(t *testing.T, h *Harness) {
	prepare(t, h)
	res := apply(t, h, event, create("sk-gone", eventRecord(&tandemv1.Event{Subject: "Gone", Start: ts("2026-05-02T10:00:00Z"), End: ts("2026-05-02T11:00:00Z")})))[0]
	wantOK(t, "create", res)
	if err := h.Backdoor.Delete(t.Context(), event, res.GetRecord().GetId()); err != nil {
		t.Fatal(err)
	}
	upd := apply(t, h, event, updateCmd("sk-gone", res.GetRecord(), eventRecord(&tandemv1.Event{Subject: "Back?"}), "subject"))[0]
	wantError(t, "update of a deleted item", upd, syncerr.ExchangeItemNotFound)
	del := apply(t, h, event, deleteCmd("sk-gone", res.GetRecord()))[0]
	wantOK(t, "delete of a deleted item", del)
	if !del.GetAlreadyApplied() {
		t.Error("delete of a deleted item should report already applied")
	}
}

func testPartialFailure(t *testing.T, h *Harness) {
	prepare(t, h)
	bad := &tandemv1.Event{Subject: "Ends before it starts", Start: ts("2026-05-03T11:00:00Z"), End: ts("2026-05-03T10:00:00Z")}
	good := &tandemv1.Event{Subject: "Fine", Start: ts("2026-05-03T10:00:00Z"), End: ts("2026-05-03T11:00:00Z")}
	res := apply(t, h, event, create("sk-bad", eventRecord(bad)), create("sk-good", eventRecord(good)))
	if res[0].GetOk() || res[0].GetError().GetCode() == "" {
		t.Errorf("invalid event: ok=%v error %v, want a classified error", res[0].GetOk(), res[0].GetError())
	}
	wantOK(t, "valid event in the same batch", res[1])
	if n := countListed(t, h, event, "sk-bad"); n != 0 {
		t.Errorf("the invalid event was created %d times", n)
	}
}

func testThrottling(t *testing.T, h *Harness) {
	if h.Faults == nil {
		t.Skip("the harness cannot inject faults")
	}
	prepare(t, h)
	mustCreateContact(t, h, &tandemv1.Contact{GivenName: "Throttled"})
	if err := h.Faults.Throttle(t.Context(), 20*time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	if got := changesOf(read(t, h.Connector, h.Mailbox, contact, "")); len(got) != 1 {
		t.Errorf("read after a short back-off listed %d records, want 1", len(got))
	}
	const long = 10 * time.Minute
	if err := h.Faults.Throttle(t.Context(), long, 1); err != nil {
		t.Fatal(err)
	}
	err := h.Connector.Changes(t.Context(), h.Mailbox, contact, "", func(context.Context, exchange.Page) error { return nil })
	var se *syncerr.Error
	if !errors.As(err, &se) || se.Code != syncerr.ExchangeServerBusy || se.RetryAfter() < long {
		t.Fatalf("read while throttled for %v: %v, want %s with a delay of at least %v", long, err, syncerr.ExchangeServerBusy, long)
	}
	if len(changesOf(read(t, h.Connector, h.Mailbox, contact, ""))) != 1 {
		t.Error("read after throttling ended failed")
	}
}

// sameContent fails when got's content differs from want's in what Exchange holds.
func sameContent(t *testing.T, what string, want, got *tandemv1.Record) {
	t.Helper()
	w, g := Comparable(want), Comparable(got)
	alignDefaults(w, g)
	if diff := cmp.Diff(w, g, protocmp.Transform()); diff != "" {
		t.Errorf("%s: content differs (-want +got):\n%s", what, diff)
	}
}

func mergeFields(base, partial *tandemv1.Record, fields []string) *tandemv1.Record {
	if c := base.GetContact(); c != nil {
		return contactRecord(mergeContact(c, partial.GetContact(), fields))
	}
	return eventRecord(mergeEventFields(base.GetEvent(), partial.GetEvent(), fields))
}
