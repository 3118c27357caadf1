package devenv

import (
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestMoveIsNotACreate: a contact the user moves out of Salesforce_Sync (into the main Contacts
// folder, or Deleted Items) leaves sync per the delete policy — by default it stays in
// Salesforce, unlinked — and is never re-created in the folder; moved back in, it syncs like a
// new contact and its sync key links it to its Salesforce record again, so nothing is duplicated.
func TestMoveIsNotACreate(t *testing.T) {
	rs := servertest.RedisServer(t)
	env := startOn(t, rs.URL(), 1, 10)
	var email string
	for _, e := range env.Mailboxes {
		email = e
	}
	run(t, env)
	settled(t, env, 90*time.Second)
	pairs, _ := contactStatus(t, env)
	// No waiting for the pairs' sync keys: the first move races with Tandem tagging the item.
	before := contactState(env)

	for _, to := range []string{"contacts", "deleteditems"} {
		items := env.EWS.Items(email, exchange.SyncFolderName)
		it := items[len(items)-1]
		address := it.Contact.Email("EmailAddress1")
		if err := env.EWS.MoveItem(email, it.ItemID, to); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, 60*time.Second, "the move to be reconciled", every(300*time.Millisecond, func() bool {
			n, _ := contactStatus(t, env)
			return n == pairs-1
		}))
		// Several more cycles: the contact must not come back into the folder.
		sum, err := env.Summary(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		poll.Within(t, 60*time.Second, "three more cycles", every(300*time.Millisecond, func() bool {
			s, err := env.Summary(t.Context())
			return err == nil && s.Cycle >= sum.Cycle+3 && s.PendingWrites == 0
		}))
		inFolder := 0
		for _, c := range env.EWS.Items(email, exchange.SyncFolderName) {
			if c.Contact.Email("EmailAddress1") == address {
				inFolder++
			}
		}
		if inFolder != 0 {
			t.Errorf("a contact moved to %s was re-created in %s (%d copies)", to, exchange.SyncFolderName, inFolder)
		}
		if n := len(env.EWS.Items(email, exchange.SyncFolderName)); n != len(items)-1 {
			t.Errorf("after moving one to %s the folder holds %d contacts, want %d", to, n, len(items)-1)
		}

		// Moved back in: linked again by its key, not created in Salesforce a second time.
		var back string
		for _, c := range env.EWS.Items(email, to) {
			if c.Contact != nil && c.Contact.Email("EmailAddress1") == address {
				back = c.ItemID
			}
		}
		if back == "" {
			t.Fatalf("the moved contact is not in %s", to)
		}
		if err := env.EWS.MoveItem(email, back, exchange.SyncFolderName); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, 90*time.Second, "the contact moved back to be linked again", every(300*time.Millisecond, func() bool {
			n, _ := contactStatus(t, env)
			return n == pairs
		}))
		settled(t, env, 90*time.Second)
		compareStates(t, "moved out to "+to+" and back", before, contactState(env))
		if n, _ := contactStatus(t, env); n != pairs {
			t.Errorf("pairs in sync = %d, want %d", n, pairs)
			for uid := range env.Mailboxes {
				snap, _ := ledger.New(env.Platform.Store).Load(t.Context(), store.UserKey{OrgID: env.OrgID, UserID: uid}, tandemv1.RecordKind_RECORD_KIND_CONTACT)
				t.Logf("mappings %d tombstones %v", len(snap.Mappings), snap.Tombstones)
				for id, m := range snap.Exchange {
					t.Logf("ex %s del=%v key=%s", id, m.GetDeleted(), m.GetRecord().GetSyncKey())
				}
				for id, m := range snap.Salesforce {
					t.Logf("sf %s del=%v key=%s", id, m.GetDeleted(), m.GetRecord().GetSyncKey())
				}
				for k, m := range snap.Mappings {
					t.Logf("map %s %s %s", k, m.GetExchangeId(), m.GetSalesforceId())
				}
			}
		}
	}
}

// keyed counts the contacts, in the reps' Salesforce_Sync folders and in Salesforce, that carry a
// Tandem sync key.
func keyed(env *Env) int {
	n := 0
	for _, mailbox := range env.Mailboxes {
		for _, it := range env.EWS.Items(mailbox, exchange.SyncFolderName) {
			if it.Contact != nil && len(it.Contact.ExtendedProperties) > 0 {
				n++
			}
		}
	}
	for _, c := range env.Salesforce.List("Contact") {
		if v, ok := c["Tandem_Sync_Key__c"]; ok && v != nil && v != "" {
			n++
		}
	}
	return n
}
