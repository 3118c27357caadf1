package ewssim

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestSyncPaging syncs a folder bigger than the 512-change page limit.
func TestSyncPaging(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.Seed(alice, 1100, 0, 7); err != nil {
		t.Fatal(err)
	}
	folder := e.syncFolderID(alice)
	var sizes []int
	var lasts []string
	state := ""
	seen := map[string]bool{}
	for range 4 {
		resp := e.mustOK(syncRequest(folder, state, 512, ""))
		m := resp.FindElement(".//SyncFolderItemsResponseMessage")
		creates := m.FindElements("Changes/Create/Contact/ItemId")
		for _, c := range creates {
			id := c.SelectAttrValue("Id", "")
			if seen[id] {
				t.Fatalf("item %s reported twice", id)
			}
			seen[id] = true
		}
		sizes = append(sizes, len(creates))
		lasts = append(lasts, text(m, "IncludesLastItemInRange"))
		state = text(m, "SyncState")
	}
	if want := []int{512, 512, 76, 0}; !slices.Equal(sizes, want) {
		t.Errorf("page sizes = %v, want %v", sizes, want)
	}
	if want := []string{"false", "false", "true", "true"}; !slices.Equal(lasts, want) {
		t.Errorf("IncludesLastItemInRange = %v, want %v", lasts, want)
	}
	if !strings.HasPrefix(state, "H4sI") {
		t.Errorf("sync state %q does not look like Exchange's (gzip, base64)", state)
	}
}

func TestSyncMaxChangesReturned(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	for _, tc := range []struct {
		max   int
		fault bool
	}{{0, true}, {1, false}, {512, false}, {513, true}, {-5, true}} {
		r := e.ews(syncRequest(folder, "", tc.max, ""), reqOpts{})
		if tc.fault != (r.faultCode() == "ErrorSchemaValidation") {
			t.Errorf("MaxChangesReturned %d: status %d fault %q", tc.max, r.status, r.faultCode())
		}
	}
}

// TestSyncCoalescing runs change scenarios between two syncs and checks what the second one
// reports: Exchange coalesces the changes of one sync window per item.
func TestSyncCoalescing(t *testing.T) {
	type ids struct{ existing, other string }
	tests := []struct {
		name string
		// act changes the folder after the first sync; it returns the ids the expectation names.
		act                       func(t *testing.T, e *env, x ids) map[string]string
		creates, updates, deletes []string
		targetCreates             int // creates seen by a sync of the move target from the same moment
		ignoreExistingInAct       bool
	}{
		{
			name: "create then update is one create",
			act: func(t *testing.T, e *env, x ids) map[string]string {
				id := mustPut(t, e, "New")
				mustUpdate(t, e, id, "New 2")
				mustUpdate(t, e, id, "New 3")
				return map[string]string{"new": id}
			},
			creates: []string{"new"},
		},
		{
			name: "create then delete is nothing",
			act: func(t *testing.T, e *env, x ids) map[string]string {
				id := mustPut(t, e, "Gone")
				if err := e.sim.DeleteItem(alice, id); err != nil {
					t.Fatal(err)
				}
				return nil
			},
		},
		{
			name: "updates of a known item are one update",
			act: func(t *testing.T, e *env, x ids) map[string]string {
				mustUpdate(t, e, x.existing, "A")
				mustUpdate(t, e, x.existing, "B")
				return map[string]string{"existing": x.existing}
			},
			updates: []string{"existing"},
		},
		{
			name: "update then delete is a delete",
			act: func(t *testing.T, e *env, x ids) map[string]string {
				mustUpdate(t, e, x.existing, "A")
				if err := e.sim.DeleteItem(alice, x.existing); err != nil {
					t.Fatal(err)
				}
				return map[string]string{"existing": x.existing}
			},
			deletes: []string{"existing"},
		},
		{
			name: "move out is a delete here and a create there",
			act: func(t *testing.T, e *env, x ids) map[string]string {
				if err := e.sim.MoveItem(alice, x.existing, "contacts"); err != nil {
					t.Fatal(err)
				}
				return map[string]string{"existing": x.existing}
			},
			deletes:       []string{"existing"},
			targetCreates: 1,
		},
		{
			name: "changes of ignored items are not reported",
			act: func(t *testing.T, e *env, x ids) map[string]string {
				mustUpdate(t, e, x.existing, "A")
				mustUpdate(t, e, x.other, "B")
				return map[string]string{"other": x.other}
			},
			updates:             []string{"other"},
			ignoreExistingInAct: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			folder := e.syncFolderID(alice)
			x := ids{existing: mustPut(t, e, "Existing"), other: mustPut(t, e, "Other")}
			first := e.syncAll(folder, "", 512)
			if len(first.creates) != 2 {
				t.Fatalf("first sync creates = %d", len(first.creates))
			}
			contactsID, _ := e.sim.FolderID(alice, "contacts")
			target := e.syncAll(contactsID, "", 512)
			names := tc.act(t, e, x)
			var got syncResult
			if tc.ignoreExistingInAct {
				r := e.file("sync-folder-items.xml", map[string]any{"Mailbox": alice, "FolderID": folder, "SyncState": first.state, "Max": 512, "Ignore": []string{x.existing}}, reqOpts{})
				for _, c := range r.response().FindElement(".//Changes").ChildElements() {
					if c.Tag == "Update" {
						got.updates = append(got.updates, attr(c, ".//ItemId", "Id"))
					}
				}
			} else {
				got = e.syncAll(folder, first.state, 512)
			}
			resolve := func(keys []string) []string {
				var out []string
				for _, k := range keys {
					out = append(out, names[k])
				}
				return out
			}
			for _, c := range []struct {
				kind      string
				got, want []string
			}{{"creates", got.creates, resolve(tc.creates)}, {"updates", got.updates, resolve(tc.updates)}, {"deletes", got.deletes, resolve(tc.deletes)}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s = %v, want %v", c.kind, c.got, c.want)
				}
			}
			moved := e.syncAll(contactsID, target.state, 512)
			if len(moved.creates) != tc.targetCreates {
				t.Errorf("creates in the move target = %d, want %d", len(moved.creates), tc.targetCreates)
			}
			if tc.targetCreates > 0 && moved.creates[0] == x.existing {
				t.Error("the moved item kept its id")
			}
		})
	}
}

func mustPut(t *testing.T, e *env, name string) string {
	t.Helper()
	e.syncFolderID(alice)
	id, err := e.sim.PutContact(alice, SyncFolderName, Contact{GivenName: name, Surname: "Test"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustUpdate(t *testing.T, e *env, id, name string) {
	t.Helper()
	if err := e.sim.UpdateItem(alice, id, func(it *Item) { it.Contact.GivenName = name }); err != nil {
		t.Fatal(err)
	}
}

// TestSyncReadFlagChange covers the one change kind contacts and calendar items cannot produce.
func TestSyncReadFlagChange(t *testing.T) {
	e := newEnv(t)
	id, err := e.sim.PutMessage(alice, "inbox", Message{ItemBase: ItemBase{Subject: "Hello"}})
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := e.sim.FolderID(alice, "inbox")
	first := e.syncAll(inbox, "", 10)
	if err := e.sim.UpdateItem(alice, id, func(it *Item) { it.Message.IsRead = true }); err != nil {
		t.Fatal(err)
	}
	second := e.syncAll(inbox, first.state, 10)
	if !slices.Equal(second.readFlags, []string{id}) || len(second.updates) != 0 {
		t.Errorf("after marking read: %+v", second)
	}
	// Through EWS too: an UpdateItem of message:IsRead only.
	r := e.ews(`<m:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly"><m:ItemChanges><t:ItemChange><t:ItemId Id="`+id+`"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="message:IsRead"/><t:Message><t:IsRead>false</t:IsRead></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>`, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatalf("codes = %v: %s", got, r.body)
	}
	resp := e.mustOK(syncRequest(inbox, second.state, 10, ""))
	if got := text(resp, ".//ReadFlagChange/IsRead"); got != "false" {
		t.Errorf("ReadFlagChange IsRead = %q: %s", got, resp.FindElement(".//Changes").Tag)
	}
	// A read-flag change plus a real change is an update.
	if err := e.sim.UpdateItem(alice, id, func(it *Item) { it.Message.IsRead = true; it.Message.Subject = "Re: Hello" }); err != nil {
		t.Fatal(err)
	}
	third := e.syncAll(inbox, text(resp, ".//SyncState"), 10)
	if len(third.updates) != 1 || len(third.readFlags) != 0 {
		t.Errorf("after edit and read: %+v", third)
	}
}

func TestSyncInvalidState(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	mustPut(t, e, "A")
	good := e.syncAll(folder, "", 512).state
	calendar, _ := e.sim.FolderID(alice, "calendar")
	calState := e.syncAll(calendar, "", 512).state
	bobFolder, _ := e.sim.FolderID(bob, "contacts")

	raw, _ := base64.StdEncoding.DecodeString(good)
	raw[len(raw)/2] ^= 0x40
	tampered := base64.StdEncoding.EncodeToString(raw)
	other := New(Config{}) // another server: another signing key
	foreign := encodeSyncState(other.stateKey, syncState{mailbox: mailboxGUID(alice), folder: 1, pos: 0})

	tests := []struct {
		name, folder, state string
		opts                reqOpts
	}{
		{"garbage", folder, "not a sync state", reqOpts{}},
		{"base64 but not gzip", folder, base64.StdEncoding.EncodeToString([]byte("hello world")), reqOpts{}},
		{"tampered", folder, tampered, reqOpts{}},
		{"state of another folder", folder, calState, reqOpts{}},
		{"state of another mailbox", bobFolder, good, reqOpts{actAs: bob}},
		{"state of another server", folder, foreign, reqOpts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ews(syncRequest(tc.folder, tc.state, 10, ""), tc.opts)
			if got := r.codes(); !slices.Equal(got, []string{"ErrorInvalidSyncStateData"}) {
				t.Fatalf("codes = %v: %s", got, r.body)
			}
		})
	}
	// The good state still works.
	if got := e.syncAll(folder, good, 512); len(got.creates)+len(got.updates)+len(got.deletes) != 0 {
		t.Errorf("resuming from the good state: %+v", got)
	}
}

// TestSyncShape checks what SyncFolderItems returns for the shape Tandem's client asks for.
func TestSyncShape(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	id, _ := createContact(t, e, folder, "sk-42")
	r := e.file("sync-folder-items.xml", map[string]any{"Mailbox": alice, "FolderID": folder, "Max": 100}, reqOpts{})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	c := r.response().FindElement(".//Changes/Create/Contact")
	if c == nil {
		t.Fatalf("no created contact: %s", r.body)
	}
	if got := attr(c, "ItemId", "Id"); got != id {
		t.Errorf("ItemId = %q, want %q", got, id)
	}
	if v, _ := extValue(c, "PropertyName", "TandemSyncKey"); v != "sk-42" {
		t.Errorf("sync key = %q", v)
	}
	if text(c, "Subject") == "" || text(c, "LastModifiedTime") == "" {
		t.Errorf("requested properties missing: %s", r.body)
	}
	// AllProperties in SyncFolderItems leaves out what only GetItem returns.
	resp := e.mustOK(strings.Replace(syncRequest(folder, "", 10, ""), "IdOnly", "AllProperties", 1))
	c = resp.FindElement(".//Changes/Create/Contact")
	if c.SelectElement("Body") != nil || c.SelectElement("GivenName") == nil {
		t.Errorf("AllProperties in SyncFolderItems: Body present %v, GivenName present %v", c.SelectElement("Body") != nil, c.SelectElement("GivenName") != nil)
	}
}

// TestSyncFromScratchMatchesFolder checks, after a mix of changes, that a full sync lists
// exactly the folder's items and an incremental sync converges to the same set.
func TestSyncFromScratchMatchesFolder(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.Seed(alice, 300, 0, 3); err != nil {
		t.Fatal(err)
	}
	folder := e.syncFolderID(alice)
	known := map[string]bool{}
	apply := func(r syncResult) {
		for _, id := range r.creates {
			known[id] = true
		}
		for _, id := range r.deletes {
			delete(known, id)
		}
	}
	r := e.syncAll(folder, "", 37)
	apply(r)
	items := e.sim.Items(alice, SyncFolderName)
	for i, it := range items {
		switch i % 5 {
		case 0:
			mustUpdate(t, e, it.ItemID, "Changed")
		case 1:
			if err := e.sim.DeleteItem(alice, it.ItemID); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := e.sim.MoveItem(alice, it.ItemID, "contacts"); err != nil {
				t.Fatal(err)
			}
		}
		if i%7 == 0 {
			mustPut(t, e, "Fresh")
		}
	}
	apply(e.syncAll(folder, r.state, 37))
	full := map[string]bool{}
	for _, id := range e.syncAll(folder, "", 512).creates {
		full[id] = true
	}
	want := map[string]bool{}
	for _, it := range e.sim.Items(alice, SyncFolderName) {
		want[it.ItemID] = true
	}
	for name, got := range map[string]map[string]bool{"incremental": known, "full": full} {
		if len(got) != len(want) {
			t.Errorf("%s sync knows %d items, folder has %d", name, len(got), len(want))
		}
		for id := range want {
			if !got[id] {
				t.Errorf("%s sync misses %s", name, id)
			}
		}
	}
}
