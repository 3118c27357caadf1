package bench

import (
	"maps"
	"reflect"
	"testing"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
)

func TestMinimumCalls(t *testing.T) {
	tests := []struct {
		name              string
		w                 Workload
		ews, sf           map[string]int64
		idleEWS, idleSF   int64
		totalEWS, totalSF int64
		records           int
	}{
		{
			name: "one rep, 10 contacts each side, 1 on both",
			w:    Workload{Reps: uniform(1, Rep{ExchangeContacts: 10, SalesforceContacts: 11, Linked: 1}), Companies: 5, OrgUsers: 2},
			ews: map[string]int64{"GetUserSettings": 1, "GetFolder": 1, "FindFolder": 1, "SyncFolderItems": 2,
				"GetItem": 1, "CreateItem": 1, "UpdateItem": 1},
			// directory, first poll, account lookup, echo; 9 creates and 11 key updates (the
			// linked pair and the 10 contacts copied to Exchange).
			sf:       map[string]int64{"token": 1, "query": 4, "collections": 2},
			totalEWS: 8, totalSF: 7, idleEWS: 1, idleSF: 1, records: 20,
		},
		{
			name: "100 x 100",
			w:    Workload{Reps: uniform(100, Rep{ExchangeContacts: 50, SalesforceContacts: 55, Linked: 5}), Companies: 30, OrgUsers: 101},
			ews: map[string]int64{"GetUserSettings": 1, "GetFolder": 100, "FindFolder": 100, "SyncFolderItems": 200,
				"GetItem": 100, "CreateItem": 100, "UpdateItem": 100},
			// 5,500 rows to poll (3 pages), 1 directory, 1 lookup, 10,000 echoed (5 pages);
			// 4,500 creates (23 calls) and 5,500 key updates (28 calls).
			sf:       map[string]int64{"token": 1, "query": 10, "collections": 51},
			totalEWS: 701, totalSF: 62, idleEWS: 100, idleSF: 1, records: 10_000,
		},
		{
			name: "10 x 1,000: the echo of 1,000 writes takes two pages",
			w:    Workload{Reps: uniform(10, Rep{ExchangeContacts: 500, SalesforceContacts: 550, Linked: 50}), Companies: 30, OrgUsers: 11},
			// 500 creates and 500 key updates per mailbox, 200 a call.
			ews: map[string]int64{"GetUserSettings": 1, "GetFolder": 10, "FindFolder": 10, "SyncFolderItems": 30,
				"GetItem": 10, "CreateItem": 30, "UpdateItem": 30},
			sf:       map[string]int64{"token": 1, "query": 10, "collections": 51},
			totalEWS: 121, totalSF: 62, idleEWS: 10, idleSF: 1, records: 10_000,
		},
		{
			name: "100 x 1,000",
			w:    Workload{Reps: uniform(100, Rep{ExchangeContacts: 500, SalesforceContacts: 550, Linked: 50}), Companies: 30, OrgUsers: 101},
			ews: map[string]int64{"GetUserSettings": 1, "GetFolder": 100, "FindFolder": 100, "SyncFolderItems": 300,
				"GetItem": 100, "CreateItem": 300, "UpdateItem": 300},
			// 55,000 rows (28 pages), 1 directory, 1 lookup, 100,000 echoed (50 pages); 45,000
			// creates (225 calls) and 55,000 key updates (275 calls).
			sf:       map[string]int64{"token": 1, "query": 80, "collections": 500},
			totalEWS: 1201, totalSF: 581, idleEWS: 100, idleSF: 1, records: 100_000,
		},
		{
			name: "250 reps: Autodiscover asks about 100 mailboxes at a time",
			w:    Workload{Reps: uniform(250, Rep{ExchangeContacts: 1, SalesforceContacts: 1, Linked: 1}), OrgUsers: 251},
			ews: map[string]int64{"GetUserSettings": 3, "GetFolder": 250, "FindFolder": 250, "SyncFolderItems": 500,
				"GetItem": 250, "UpdateItem": 250},
			sf:       map[string]int64{"token": 1, "query": 3, "collections": 2},
			totalEWS: 1503, totalSF: 6, idleEWS: 250, idleSF: 1, records: 250,
		},
		{
			name: "a person on both sides who cannot be recognised is copied both ways",
			w: Workload{Reps: []Rep{{ExchangeContacts: 100, SalesforceContacts: 101, Linked: 1},
				{ExchangeContacts: 100, SalesforceContacts: 101, Linked: 0}}, OrgUsers: 3},
			// The second rep gets 101 contacts from Salesforce (one CreateItem batch) and tags
			// the 100 copied to Salesforce; Salesforce gets 199 creates in one call, and 202 key
			// updates in two.
			ews: map[string]int64{"GetUserSettings": 1, "GetFolder": 2, "FindFolder": 2, "SyncFolderItems": 4,
				"GetItem": 2, "CreateItem": 2, "UpdateItem": 2},
			sf:       map[string]int64{"token": 1, "query": 3, "collections": 3},
			totalEWS: 15, totalSF: 7, idleEWS: 2, idleSF: 1, records: 401,
		},
		{
			name: "no contacts: the folders are found and read once, the org polled once",
			w:    Workload{Reps: uniform(3, Rep{ExchangeContacts: 0, SalesforceContacts: 0, Linked: 0}), OrgUsers: 4},
			ews:  map[string]int64{"GetUserSettings": 1, "GetFolder": 3, "FindFolder": 3, "SyncFolderItems": 3},
			sf:   map[string]int64{"token": 1, "query": 2},
			// nothing was written, so nothing echoes.
			totalEWS: 10, totalSF: 3, idleEWS: 3, idleSF: 1,
		},
		{
			name: "missing Salesforce_Sync folders are created",
			w:    Workload{Reps: uniform(2, Rep{ExchangeContacts: 0, SalesforceContacts: 700, Linked: 0}), SyncFolderMissing: true, OrgUsers: 3},
			ews: map[string]int64{"GetUserSettings": 1, "GetFolder": 2, "FindFolder": 2, "CreateFolder": 2,
				// an empty first read, then 700 creates echoed in two pages; 4 CreateItem batches.
				"SyncFolderItems": 6, "CreateItem": 8},
			// 1,400 contacts tagged with their keys (7 calls), echoed in one page.
			sf:       map[string]int64{"token": 1, "query": 3, "collections": 7},
			totalEWS: 21, totalSF: 11, idleEWS: 2, idleSF: 1, records: 1400,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			initial, idle := MinimumCalls(tt.w)
			if !maps.Equal(initial.EWS, tt.ews) {
				t.Errorf("initial EWS = %v, want %v", initial.EWS, tt.ews)
			}
			if !maps.Equal(initial.Salesforce, tt.sf) {
				t.Errorf("initial Salesforce = %v, want %v", initial.Salesforce, tt.sf)
			}
			if got := initial.EWSTotal(); got != tt.totalEWS {
				t.Errorf("initial EWS total = %d, want %d", got, tt.totalEWS)
			}
			if got := initial.SalesforceTotal(); got != tt.totalSF {
				t.Errorf("initial Salesforce total = %d, want %d", got, tt.totalSF)
			}
			if got := idle.EWSTotal(); got != tt.idleEWS {
				t.Errorf("idle EWS = %d (%v), want %d", got, idle.EWS, tt.idleEWS)
			}
			if got := idle.SalesforceTotal(); got != tt.idleSF {
				t.Errorf("idle Salesforce = %d (%v), want %d", got, idle.Salesforce, tt.idleSF)
			}
			if got := tt.w.Records(); got != tt.records {
				t.Errorf("records = %d, want %d", got, tt.records)
			}
			// Watched mailboxes that report no change need no read in an idle cycle; nothing
			// else changes.
			notified := tt.w
			notified.Notified = true
			// Watching costs a subscription per mailbox and a connection per 200 of them.
			nInitial, nIdle := MinimumCalls(notified)
			wantEWS := maps.Clone(initial.EWS)
			if n := int64(len(tt.w.Reps)); n > 0 {
				wantEWS["Subscribe"], wantEWS["GetStreamingEvents"] = n, (n+199)/200
			}
			if !maps.Equal(nInitial.EWS, wantEWS) || !maps.Equal(nInitial.Salesforce, initial.Salesforce) {
				t.Errorf("initial calls with notifications %v, want EWS %v and Salesforce's %v", nInitial, wantEWS, initial.Salesforce)
			}
			if nIdle.EWSTotal() != 0 || !maps.Equal(nIdle.Salesforce, idle.Salesforce) {
				t.Errorf("idle calls with notifications %v, want no EWS call and Salesforce's %v", nIdle, idle.Salesforce)
			}
		})
	}
}

// TestWorkloadOfSeeding checks the workload's split against what the seeders are documented
// to seed: about half of a rep's contacts in Exchange, the rest in Salesforce, and one in
// twenty (at least one) of the Exchange ones also in Salesforce.
func TestWorkloadOfSeeding(t *testing.T) {
	tests := []struct {
		users, contacts int
		want            Workload
	}{
		{3, 20, Workload{Reps: uniform(3, Rep{ExchangeContacts: 10, SalesforceContacts: 11, Linked: 1}), OrgUsers: 4}},
		{100, 100, Workload{Reps: uniform(100, Rep{ExchangeContacts: 50, SalesforceContacts: 55, Linked: 5}), OrgUsers: 101}},
		{10, 1000, Workload{Reps: uniform(10, Rep{ExchangeContacts: 500, SalesforceContacts: 550, Linked: 50}), OrgUsers: 11}},
		{2, 1, Workload{Reps: uniform(2, Rep{ExchangeContacts: 0, SalesforceContacts: 1, Linked: 0}), OrgUsers: 3}},
	}
	for _, tt := range tests {
		got := seededWorkload(devenv.Seeding{Users: tt.users, ContactsPerUser: tt.contacts})
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%d x %d: %+v, want %+v", tt.users, tt.contacts, got, tt.want)
		}
	}
}
