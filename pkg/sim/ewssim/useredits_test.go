package ewssim

import (
	"errors"
	"testing"
	"time"
)

func TestGoAPIErrors(t *testing.T) {
	e := newEnv(t)
	id := mustPut(t, e, "Base")
	start := time.Date(2026, 3, 16, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"add mailbox twice", func() error { return e.sim.AddMailbox("ALICE@contoso.com") }, ErrMailboxExists},
		{"put into unknown mailbox", func() error { _, err := e.sim.PutContact("nobody@contoso.com", "contacts", Contact{}); return err }, ErrNoMailbox},
		{"put into unknown folder", func() error { _, err := e.sim.PutContact(alice, "Nope", Contact{}); return err }, ErrFolderNotFound},
		{"contact into calendar", func() error { _, err := e.sim.PutContact(alice, "calendar", Contact{}); return err }, ErrInvalidItem},
		{"event ending before it starts", func() error {
			_, err := e.sim.PutEvent(alice, CalendarItem{Start: start, End: start.Add(-time.Hour)})
			return err
		}, ErrInvalidItem},
		{"event with a broken recurrence", func() error {
			_, err := e.sim.PutEvent(alice, CalendarItem{Start: start, End: start.Add(time.Hour), Recurrence: &Recurrence{Pattern: "Weekly", Interval: 1, Range: "NoEnd", StartDate: "2026-03-16"}})
			return err
		}, ErrInvalidItem},
		{"update unknown item", func() error { return e.sim.UpdateItem(alice, "nope", func(*Item) {}) }, ErrItemNotFound},
		{"update changes kind", func() error {
			return e.sim.UpdateItem(alice, id, func(it *Item) { it.Contact, it.CalendarItem = nil, &CalendarItem{} })
		}, ErrInvalidItem},
		{"delete unknown item", func() error { return e.sim.DeleteItem(bob, id) }, ErrItemNotFound},
		{"move to unknown folder", func() error { return e.sim.MoveItem(alice, id, "Nowhere") }, ErrFolderNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if err := e.sim.AddMailbox("not-an-address"); err == nil {
		t.Error("AddMailbox accepted an invalid address")
	}
	if _, err := e.sim.CreateFolder(alice, "contacts", SyncFolderName, ""); err == nil {
		t.Error("CreateFolder created a duplicate")
	}
}

func TestOutlookDeleteGoesThroughDeletedItems(t *testing.T) {
	e := newEnv(t)
	mustPut(t, e, "Keep")
	id := mustPut(t, e, "Bin")
	if err := e.sim.DeleteItem(alice, id); err != nil {
		t.Fatal(err)
	}
	deleted := e.sim.Items(alice, "deleteditems")
	if len(deleted) != 1 || deleted[0].Contact.GivenName != "Bin" {
		t.Fatalf("Deleted Items = %+v", deleted)
	}
	if err := e.sim.DeleteItem(alice, deleted[0].ItemID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sim.Items(alice, "deleteditems")); n != 0 {
		t.Errorf("%d items left in Deleted Items after emptying", n)
	}
	if n := len(e.sim.Items(alice, SyncFolderName)); n != 1 {
		t.Errorf("%d items left in the folder", n)
	}
	if got := e.sim.Items("nobody@contoso.com", "contacts"); got != nil {
		t.Errorf("Items of an unknown mailbox = %v", got)
	}
}

func TestUpdateItemKeepsIdentity(t *testing.T) {
	e := newEnv(t)
	id := mustPut(t, e, "Old")
	before := e.sim.Items(alice, SyncFolderName)[0]
	e.clock.Advance(time.Minute)
	err := e.sim.UpdateItem(alice, id, func(it *Item) {
		it.ItemID, it.ChangeKey, it.FolderID = "forged", "forged", "forged"
		it.Contact.GivenName = "New"
		it.Contact.Birthday = time.Date(1990, 2, 3, 23, 30, 0, 0, time.FixedZone("PST", -8*3600))
	})
	if err != nil {
		t.Fatal(err)
	}
	after := e.sim.Items(alice, SyncFolderName)[0]
	if after.ItemID != id || after.FolderID != before.FolderID || after.ChangeKey == before.ChangeKey || after.ChangeKey == "forged" {
		t.Errorf("identity after update: %+v (before %+v)", after, before)
	}
	if !after.LastModified.After(before.LastModified) || !after.Created.Equal(before.Created) {
		t.Errorf("timestamps: created %v→%v, modified %v→%v", before.Created, after.Created, before.LastModified, after.LastModified)
	}
	if want := time.Date(1990, 2, 3, 11, 59, 0, 0, time.UTC); !after.Contact.Birthday.Equal(want) {
		t.Errorf("Birthday = %v, want %v (the date as written)", after.Contact.Birthday, want)
	}
}
