package ewssim

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentClients has several EWS clients and the mailbox owners work on two mailboxes at
// once. Run with -race, it checks the simulator's locking; afterwards every client's view
// (incremental sync) must match the folder.
func TestConcurrentClients(t *testing.T) {
	e := newEnv(t)
	mailboxes := []string{alice, bob}
	folders := map[string]string{}
	for _, mb := range mailboxes {
		if err := e.sim.Seed(mb, 50, 10, 5); err != nil {
			t.Fatal(err)
		}
		folders[mb], _ = e.sim.FolderID(mb, SyncFolderName)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		mb := mailboxes[w%2]
		wg.Go(func() {
			for i := range 15 {
				r := e.ews(fmt.Sprintf(`<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="%s"/></m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>W%d</t:GivenName><t:Surname>N%d</t:Surname></t:Contact></m:Items></m:CreateItem>`, folders[mb], w, i), reqOpts{actAs: mb})
				if !slices.Equal(r.codes(), []string{"NoError"}) {
					errs <- fmt.Errorf("create: %s", r.body)
					return
				}
				ids, keys := itemIDs(r.response())
				r = e.ews(`<m:UpdateItem ConflictResolution="NeverOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="`+ids[0]+`" ChangeKey="`+keys[0]+`"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="contacts:JobTitle"/><t:Contact><t:JobTitle>T</t:JobTitle></t:Contact></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>`, reqOpts{actAs: mb})
				if c := r.codes(); len(c) != 1 || (c[0] != "NoError" && c[0] != "ErrorIrresolvableConflict" && c[0] != "ErrorItemNotFound") {
					errs <- fmt.Errorf("update: %s", r.body)
					return
				}
			}
		})
	}
	for _, mb := range mailboxes {
		wg.Go(func() {
			for i := range 20 {
				items := e.sim.Items(mb, SyncFolderName)
				if len(items) == 0 {
					continue
				}
				it := items[(i*7)%len(items)]
				var err error
				switch i % 3 {
				case 0:
					err = e.sim.UpdateItem(mb, it.ItemID, func(x *Item) { x.Contact.Department = "Moved" })
				case 1:
					err = e.sim.DeleteItem(mb, it.ItemID)
				default:
					_, err = e.sim.PutContact(mb, SyncFolderName, Contact{GivenName: "Owner", Surname: fmt.Sprint(i)})
				}
				if err != nil && !strings.Contains(err.Error(), "not found") {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			state := ""
			for range 10 {
				r := e.ews(syncRequest(folders[mb], state, 20, ""), reqOpts{actAs: mb})
				if !slices.Equal(r.codes(), []string{"NoError"}) {
					errs <- fmt.Errorf("sync: %s", r.body)
					return
				}
				state = text(r.response(), ".//SyncState")
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			_ = e.sim.Dump()
			_ = e.sim.Counts()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, mb := range mailboxes {
		want := map[string]bool{}
		for _, it := range e.sim.Items(mb, SyncFolderName) {
			want[it.ItemID] = true
		}
		got := map[string]bool{}
		state := ""
		for range 100 {
			r := e.ews(syncRequest(folders[mb], state, 64, ""), reqOpts{actAs: mb})
			resp := r.response()
			for _, c := range resp.FindElements(".//Changes/Create") {
				got[attr(c, ".//ItemId", "Id")] = true
			}
			for _, c := range resp.FindElements(".//Changes/Delete") {
				delete(got, attr(c, "ItemId", "Id"))
			}
			state = text(resp, ".//SyncState")
			if text(resp, ".//IncludesLastItemInRange") == "true" {
				break
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: sync sees %d items, folder has %d", mb, len(got), len(want))
		}
		for id := range want {
			if !got[id] {
				t.Errorf("%s: sync misses %s", mb, id)
			}
		}
	}
}

// TestStart serves on a real port through Start and shuts down cleanly.
func TestStart(t *testing.T) {
	sim := New(Config{ServiceAccounts: []ServiceAccount{{Username: svcUser, Password: svcPassword}}})
	if err := sim.AddMailbox(svcUser); err != nil {
		t.Fatal(err)
	}
	url, stop, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if sim.EWSURL() != url+"/EWS/Exchange.asmx" {
		t.Errorf("EWSURL = %q, base %q", sim.EWSURL(), url)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/EWS/Exchange.asmx", strings.NewReader(soap(reqOpts{actAs: "-"}, getContacts)))
	req.Header.Set("Authorization", basicHeader(svcUser, svcPassword))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, _, err := sim.Start("256.0.0.1:1"); err == nil {
		t.Error("Start on an invalid address succeeded")
	}
}
