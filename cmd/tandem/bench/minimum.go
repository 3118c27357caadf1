package bench

import (
	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/ews"
)

// Limits of the protocols that bound how few calls a sync can make.
const (
	// syncPage is the most changes one SyncFolderItems call returns (MaxChangesReturned, the
	// schema's limit).
	syncPage = ews.MaxSyncChanges
	// itemBatch is the most items one GetItem, CreateItem or UpdateItem call carries: EWS's own
	// limit is a throttling policy (EWSMaxBatchSize), and Tandem's client keeps well inside it.
	itemBatch = ews.MaxBatch
	// autodiscoverBatch is the most mailboxes one Autodiscover GetUserSettings request may ask
	// about.
	autodiscoverBatch = 100
	// queryPage is the most rows one SOQL query (or queryMore) page returns.
	queryPage = 2000
	// collection is the most records one sObject Collections call writes.
	collection = 200
)

// Workload is what a benchmark run seeds: per rep, unless said otherwise.
type Workload struct {
	// Users is the number of reps: each has a mailbox and is a Salesforce user.
	Users int
	// ExchangeContacts are the contacts in each rep's Salesforce_Sync folder, SalesforceContacts
	// those the rep owns in Salesforce, and BothSides how many people are in both (the first
	// sync links them by email instead of copying them).
	ExchangeContacts, SalesforceContacts, BothSides int
	// SyncFolderMissing is true when the mailboxes have no Salesforce_Sync folder yet (the
	// seeders always create it).
	SyncFolderMissing bool
	// Companies is how many distinct company names the Exchange contacts carry: a contact
	// created in Salesforce gets the Account of that name, which must be looked up.
	Companies int
	// OrgUsers is how many users the Salesforce org's directory lists (the reps and the admin).
	OrgUsers int
}

// seededWorkload is the workload devenv's seeders make for s; the org's users are the reps and
// the simulator's admin.
func seededWorkload(s devenv.Seeding) Workload {
	return Workload{
		Users: s.Users, ExchangeContacts: s.ExchangeContacts(), SalesforceContacts: s.SalesforceContacts(),
		BothSides: s.BothSides(), OrgUsers: s.Users + 1,
	}
}

// Calls are API calls per operation, on each side.
type Calls struct {
	// EWS counts requests per EWS operation (and Autodiscover's GetUserSettings).
	EWS map[string]int64 `json:"ews"`
	// Salesforce counts requests per kind: "token", "query" (every page: query, queryAll and
	// queryMore) and "collections" (sObject Collections writes).
	Salesforce map[string]int64 `json:"salesforce"`
}

// EWSTotal is the number of EWS requests.
func (c Calls) EWSTotal() int64 { return sum(c.EWS) }

// SalesforceTotal is the number of Salesforce requests, tokens included.
func (c Calls) SalesforceTotal() int64 { return sum(c.Salesforce) }

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// ceil is n/d rounded up; 0 for n <= 0.
func ceil(n, d int) int64 {
	if n <= 0 {
		return 0
	}
	return int64((n + d - 1) / d)
}

// MinimumCalls are the fewest calls that bring w's seeded data in sync (initial) and that one
// cycle costs once nothing changes (idle), as the protocols allow, whatever Tandem does:
//
// Exchange, per mailbox, as the mailbox is impersonated (EWS batches never span mailboxes):
//   - Autodiscover: one GetUserSettings per 100 mailboxes (per org);
//   - one GetFolder for the well-known folders (Contacts, Calendar) at once;
//   - one FindFolder for Salesforce_Sync under Contacts, and one CreateFolder when it is missing;
//   - the first read: SyncFolderItems pages of 512 changes (at least one page);
//   - GetItem for the items read, in batches of 100 (SyncFolderItems does not return every
//     property);
//   - CreateItem for the contacts coming from Salesforce, in batches of 100;
//   - UpdateItem for the contacts on both sides, linked by matching: they are tagged with the
//     pair's sync key (and take Salesforce's newer title), in batches of 100;
//   - the echo: the next SyncFolderItems lists Tandem's own creates and updates (pages of 512),
//     which need no GetItem (the change keys the writes returned tell them apart).
//
// Salesforce, per org, not per user (the integration user sets OwnerId):
//   - one OAuth token;
//   - the user directory: one query page per 2,000 users;
//   - the first poll: every contact the reps own, in query pages of 2,000 rows (at least one);
//   - one Account lookup by name for the companies of the contacts coming from Exchange, in
//     pages of 2,000;
//   - sObject Collections creates of 200 records for the contacts coming from Exchange, and
//     updates of 200 that tag the contacts on both sides with their pair's sync key;
//   - the echo: the next poll lists the records Tandem wrote (pages of 2,000 rows), since a
//     query that left the integration user's writes out would miss edits made through it.
//
// An idle cycle reads each mailbox's folder once (one SyncFolderItems with no changes) and
// polls the org once per object (one query page with no rows).
func MinimumCalls(w Workload) (initial, idle Calls) {
	exchangeOnly := max(w.ExchangeContacts-w.BothSides, 0)
	salesforceOnly := max(w.SalesforceContacts-w.BothSides, 0)
	users := w.Users

	perMailbox := map[string]int64{
		"GetFolder":  1,
		"FindFolder": 1,
		"SyncFolderItems": max(1, ceil(w.ExchangeContacts, syncPage)) + // the first read
			ceil(salesforceOnly+w.BothSides, syncPage), // the echo of Tandem's writes
		"GetItem":    ceil(w.ExchangeContacts, itemBatch),
		"CreateItem": ceil(salesforceOnly, itemBatch),
		"UpdateItem": ceil(w.BothSides, itemBatch),
	}
	if w.SyncFolderMissing {
		perMailbox["CreateFolder"] = 1
	}
	initial = Calls{EWS: map[string]int64{"GetUserSettings": ceil(users, autodiscoverBatch)}, Salesforce: map[string]int64{}}
	for op, n := range perMailbox {
		if n > 0 && users > 0 {
			initial.EWS[op] = n * int64(users)
		}
	}

	created := exchangeOnly * users // in Salesforce, from Exchange
	linked := w.BothSides * users
	queries := ceil(w.OrgUsers, queryPage) + // the directory
		max(1, ceil(w.SalesforceContacts*users, queryPage)) + // the first poll
		ceil(created+linked, queryPage) // the echo
	if created > 0 && w.Companies > 0 {
		queries += ceil(w.Companies, queryPage)
	}
	initial.Salesforce["token"] = 1
	initial.Salesforce["query"] = queries
	if n := ceil(created, collection) + ceil(linked, collection); n > 0 {
		initial.Salesforce["collections"] = n
	}

	idle = Calls{EWS: map[string]int64{}, Salesforce: map[string]int64{"query": 1}}
	if users > 0 {
		idle.EWS["SyncFolderItems"] = int64(users)
	}
	return initial, idle
}
