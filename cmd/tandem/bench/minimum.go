package bench

import (
	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/ews"
)

// Limits of the protocols, and of Tandem's clients within them, that bound how few calls a sync
// can make.
const (
	// syncPage is the most changes one SyncFolderItems call returns (MaxChangesReturned, the
	// schema's limit).
	syncPage = ews.MaxSyncChanges
	// getBatch is the most items one GetItem call reads, and writeBatch the most one CreateItem
	// or UpdateItem call writes. EWS's own limit is a throttling policy (EWSMaxBatchSize) and the
	// size of a request and its answer; these are the largest batches Tandem's client sends
	// within them (see the ews package), so that the floor is what the client could do at best.
	getBatch   = ews.MaxGetBatch
	writeBatch = ews.MaxWriteBatch
	// streamingPerConnection is the most subscriptions one GetStreamingEvents connection reads.
	streamingPerConnection = ews.MaxStreamingSubscriptions
	// autodiscoverBatch is the most mailboxes one Autodiscover GetUserSettings request may ask
	// about.
	autodiscoverBatch = 100
	// queryPage is the most rows one SOQL query (or queryMore) page returns.
	queryPage = 2000
	// collection is the most records one sObject Collections call writes.
	collection = 200
)

// Workload is what a benchmark run seeds.
type Workload struct {
	// Reps are the sales reps, each with a mailbox and a Salesforce user.
	Reps []Rep
	// SyncFolderMissing is true when the mailboxes have no Salesforce_Sync folder yet (the
	// seeders always create it).
	SyncFolderMissing bool
	// Companies is how many distinct company names the Exchange contacts carry: a contact
	// created in Salesforce gets the Account of that name, which must be looked up.
	Companies int
	// OrgUsers is how many users the Salesforce org's directory lists (the reps and the admin).
	OrgUsers int
	// Notified is true when the mailboxes are watched with streaming notifications: a mailbox
	// that reported no change needs no read.
	Notified bool
}

// Rep is what one rep starts with.
type Rep struct {
	// ExchangeContacts are the contacts in the rep's Salesforce_Sync folder, SalesforceContacts
	// those the rep owns in Salesforce, and Linked how many of them are the same person on both
	// sides, which the first sync links (by email, or by name and company when neither has an
	// email) instead of copying.
	ExchangeContacts, SalesforceContacts, Linked int
}

// Records is how many contacts each side holds once in sync.
func (w Workload) Records() int {
	n := 0
	for _, r := range w.Reps {
		n += r.ExchangeContacts + r.SalesforceContacts - r.Linked
	}
	return n
}

// uniform is a workload of users reps alike.
func uniform(users int, rep Rep) []Rep {
	out := make([]Rep, users)
	for i := range out {
		out[i] = rep
	}
	return out
}

// seededWorkload is the workload devenv's seeders mean to make for s: every person seeded on
// both sides linked. The org's users are the reps and the simulator's admin. (A person seeded on
// both sides whose Exchange copy has no email and names a company, which the Salesforce copy
// lacks, cannot be recognised: workloadOf counts what the seeded data actually links.)
func seededWorkload(s devenv.Seeding) Workload {
	return Workload{
		Reps:     uniform(s.Users, Rep{ExchangeContacts: s.ExchangeContacts(), SalesforceContacts: s.SalesforceContacts(), Linked: s.BothSides()}),
		OrgUsers: s.Users + 1,
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
// cycle costs once nothing changes (idle), as the protocols allow and Tandem's guarantees need,
// whatever else Tandem does.
//
// The guarantees cost writes of their own: every linked pair carries its sync key on both sides
// (see DESIGN.md), so that a fresh start after lost state relinks instead of duplicating, and
// tells a record whose partner was removed meanwhile from one never synced. A create carries
// the key; the record it copies gets it with an update, as does each record of a pair linked by
// matching. Those updates are counted, in the largest batches: a sync that left them out would
// be cheaper and unsafe.
//
// Exchange, per mailbox, as the mailbox is impersonated (EWS batches never span mailboxes):
//   - Autodiscover: one GetUserSettings per 100 mailboxes (per org);
//   - one GetFolder for the well-known folders (Contacts, Calendar) at once;
//   - one FindFolder for Salesforce_Sync under Contacts, and one CreateFolder when it is missing;
//   - the first read: SyncFolderItems pages of 512 changes (at least one page);
//   - GetItem for the items read, in batches of 512 (SyncFolderItems does not return every
//     property);
//   - CreateItem for the contacts coming from Salesforce, in batches of 200;
//   - UpdateItem that tags the contacts linked by matching (which also take Salesforce's newer
//     title) and those copied to Salesforce with their pair's sync key, in batches of 200;
//   - the echo: the next SyncFolderItems lists Tandem's own creates and updates (pages of 512),
//     which need no GetItem (the change keys the writes returned tell them apart);
//   - when the mailboxes are watched with streaming notifications: one Subscribe per mailbox,
//     and one GetStreamingEvents per 200 subscriptions (Exchange's limit per connection).
//
// Salesforce, per org, not per user (the integration user sets OwnerId):
//   - one OAuth token;
//   - the user directory: one query page per 2,000 users;
//   - the first poll: every contact the reps own, in query pages of 2,000 rows (at least one);
//   - one Account lookup by name for the companies of the contacts coming from Exchange, in
//     pages of 2,000;
//   - sObject Collections creates of 200 records for the contacts coming from Exchange, and
//     updates of 200 that tag the contacts linked by matching and those copied to Exchange with
//     their pair's sync key;
//   - the echo: the next poll lists the records Tandem wrote (pages of 2,000 rows), since a
//     query that left the integration user's writes out would miss edits made through it.
//
// An idle cycle polls the org once per object (one query page with no rows) and, unless the
// mailboxes are watched with notifications (which report no change), reads each mailbox's
// folder once (one SyncFolderItems with no changes). Watched mailboxes are still read once per
// interval, whatever their notifications say: a cost of the interval, not of a cycle.
func MinimumCalls(w Workload) (initial, idle Calls) {
	initial = Calls{EWS: map[string]int64{}, Salesforce: map[string]int64{}}
	idle = Calls{EWS: map[string]int64{}, Salesforce: map[string]int64{"query": 1}}
	add := func(m map[string]int64, op string, n int64) {
		if n > 0 {
			m[op] += n
		}
	}
	add(initial.EWS, "GetUserSettings", ceil(len(w.Reps), autodiscoverBatch))
	if w.Notified {
		add(initial.EWS, "Subscribe", int64(len(w.Reps)))
		add(initial.EWS, "GetStreamingEvents", ceil(len(w.Reps), streamingPerConnection))
	}
	created, tagged, polled := 0, 0, 0 // in Salesforce
	for _, r := range w.Reps {
		toSalesforce := max(r.ExchangeContacts-r.Linked, 0)
		toExchange := max(r.SalesforceContacts-r.Linked, 0)
		add(initial.EWS, "GetFolder", 1)
		add(initial.EWS, "FindFolder", 1)
		if w.SyncFolderMissing {
			add(initial.EWS, "CreateFolder", 1)
		}
		add(initial.EWS, "SyncFolderItems", max(1, ceil(r.ExchangeContacts, syncPage))+ // the first read
			ceil(toExchange+r.Linked+toSalesforce, syncPage)) // the echo of Tandem's writes
		add(initial.EWS, "GetItem", ceil(r.ExchangeContacts, getBatch))
		add(initial.EWS, "CreateItem", ceil(toExchange, writeBatch))
		add(initial.EWS, "UpdateItem", ceil(r.Linked+toSalesforce, writeBatch))
		if !w.Notified {
			add(idle.EWS, "SyncFolderItems", 1)
		}
		created += toSalesforce
		tagged += r.Linked + toExchange
		polled += r.SalesforceContacts
	}
	queries := ceil(w.OrgUsers, queryPage) + // the directory
		max(1, ceil(polled, queryPage)) + // the first poll
		ceil(created+tagged, queryPage) // the echo
	if created > 0 && w.Companies > 0 {
		queries += ceil(w.Companies, queryPage)
	}
	add(initial.Salesforce, "token", 1)
	add(initial.Salesforce, "query", queries)
	add(initial.Salesforce, "collections", ceil(created, collection)+ceil(tagged, collection))
	return initial, idle
}
