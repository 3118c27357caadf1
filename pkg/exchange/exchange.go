// Package exchange is the seam between Tandem and a user's Exchange mailbox. The
// exchange-worker talks to Exchange only through Connector; EWS implements it today
// (package ews) and Microsoft Graph will implement it later. Every implementation must pass
// the conformance suite in package exchangetest.
//
// A connector speaks in canonical records (tandemv1.Record) and write commands; everything
// protocol-specific — folders, sync states, change keys, extended properties, throttling —
// stays behind it.
package exchange

import (
	"context"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// SyncFolderName is the contacts folder, under the user's Contacts folder, whose contacts sync.
const SyncFolderName = "Salesforce_Sync"

// Mailbox identifies the mailbox to act on and who it belongs to.
type Mailbox struct {
	// OrgID is the Salesforce org the user belongs to.
	OrgID string
	// UserID is the Salesforce User Id.
	UserID string
	// Address is the mailbox's primary SMTP address.
	Address string
}

// Folders is what Prepare found in (or created in) a mailbox.
type Folders struct {
	// ContactsFolderID is the Salesforce_Sync folder under Contacts.
	ContactsFolderID string
	// CalendarFolderID is the user's main calendar.
	CalendarFolderID string
	// CreatedContactsFolder is true when this call created the Salesforce_Sync folder.
	CreatedContactsFolder bool
	// ServerVersion is the mailbox server's version as it reports it (e.g. "15.2.1748.10 V2017_07_11").
	ServerVersion string
}

// Page is one page of changes read from a mailbox folder.
type Page struct {
	// Changes are the page's changes in the order Exchange reported them. Upserts carry the
	// full canonical record, its id and version, and the sync key read from the item.
	Changes []*tandemv1.Change
	// Cursor resumes reading after this page (for EWS, the SyncState). Opaque; store it only
	// once the page's changes are durably published.
	Cursor string
	// Last is true when the read has caught up with the folder.
	Last bool
	// Full is true when the read started from scratch, so the pages up to the last one list
	// every item in the folder: anything they do not list is gone.
	Full bool
}

// Connector reads and writes a user's contacts and events in Exchange.
//
// Implementations must be safe for concurrent use by many goroutines acting on many mailboxes,
// honour ctx everywhere, cap concurrency per mailbox, and classify failures as *syncerr.Error
// (codes EXCHANGE_*), with Delay set when Exchange asked to back off.
type Connector interface {
	// Prepare checks the mailbox can be reached and impersonated, finds the user's calendar,
	// and finds or creates the Salesforce_Sync folder under Contacts. It is idempotent: two
	// workers racing end with one folder. It always asks Exchange (a connection test relies on
	// that) and refreshes what Folders returns.
	Prepare(ctx context.Context, mb Mailbox) (Folders, error)

	// Folders returns the mailbox's folders as the connector last found them, preparing the
	// mailbox (as Prepare does) only when it has not located them yet or forgot them. A
	// connector forgets a mailbox's folders when a request for it fails in a way that says they
	// may have moved: the folder or the mailbox not found, the mailbox's server gone. Folders
	// do not expire otherwise: a sync folder's id stays valid as long as the folder exists, and
	// a read or write that finds it gone makes the next call locate it again. Sync jobs use
	// Folders, so a mailbox costs its folder lookups once, not once per job.
	Folders(ctx context.Context, mb Mailbox) (Folders, error)

	// Changes reads what changed in the folder that holds records of kind since cursor (empty:
	// from scratch), calling page for each page in order and stopping at the first error page
	// returns. When Exchange no longer accepts cursor, it starts again from scratch and marks
	// the pages Full, so the caller can resync without losing its links.
	//
	// With WithKnown, an item reported created or updated whose version is the version of a
	// record the caller already holds is not fetched again: a version names one state of an
	// item, so the record held for it is the item's content. Such an item is still listed, with
	// the record held (the caller relies on every item a read reports being on its page). This
	// is how the echo of Tandem's own writes costs no fetch: a write's result records the version
	// it left, and the read that reports the write finds that version.
	Changes(ctx context.Context, mb Mailbox, kind tandemv1.RecordKind, cursor string, page func(context.Context, Page) error, opts ...ChangesOption) error

	// Apply carries out commands for one mailbox and record kind and returns one result per
	// command, in command order. Creates tag the item with the command's sync key.
	//
	// A create looks its sync key up first when an item may carry that key already: when the
	// create may repeat an earlier attempt, because it is marked retry (WriteCommand.retry:
	// planned again because the first attempt's result never arrived, or because Tandem's state
	// was lost since it may have been made) or Apply is told so (Redelivered, for a whole batch
	// the bus handed over before; KeyMayExist, for a command the caller started before), and
	// when it re-creates the item of a pair that had one in Exchange (KeyMayExist: the caller
	// holds the pair's link), which the user may have deleted with the key on it. A create whose
	// sync key is already in the folder (an earlier attempt took effect) updates that item to
	// the command's content instead of creating a second one (already_applied). A create whose
	// key is found only on a deleted item created after the command was issued (an earlier
	// attempt, deleted by the user since) is not made again: it fails as EXCHANGE_ITEM_NOT_FOUND
	// naming that item, so the deletion is carried over.
	//
	// Any other create, a first attempt of a command for a pair that never had an item in
	// Exchange, is created at once, without a lookup: no item can carry its key (the key is new
	// to Exchange, and an item the user created never carries one), so the lookup would find
	// nothing, at the price of one request per batch. That holds only if the caller tells Apply
	// about every create that is not such a first attempt. Creates with the same sync key in
	// one batch are one create, whatever they are marked.
	//
	// Updates use the command's expected version for optimistic concurrency and tag the item
	// with the command's sync key. A write's result carries the item's id, the version the write
	// left and its content as a later read of that version returns it, for a create all of it,
	// for an update the fields it wrote (its other fields are the command's), so that the caller
	// can take the result for its view of the item without reading it back. Meeting invitations
	// and cancellations are never sent. A failure of one command is reported in its result;
	// Apply returns an error only when the batch as a whole could not be attempted (auth,
	// throttling, transport), and the caller retries it.
	Apply(ctx context.Context, mb Mailbox, kind tandemv1.RecordKind, cmds []*tandemv1.WriteCommand, opts ...ApplyOption) ([]*tandemv1.WriteResult, error)
}

// Expecter is implemented by connectors that can look many mailboxes up at once: told which
// mailboxes they will serve, they resolve them in batches (EWS Autodiscover answers about up
// to a hundred users a request) instead of one request each.
type Expecter interface {
	// Expect names the addresses of mailboxes the connector will be asked to serve.
	Expect(addresses []string)
}

// ApplyOption tells Apply what the caller knows about a batch's history.
type ApplyOption func(*ApplyOptions)

// ApplyOptions is what ApplyOption values set; connectors read them with ApplyOptionsOf.
type ApplyOptions struct {
	// Redelivered says the batch was delivered before: a worker may have carried out any of
	// its commands and stopped before acknowledging it.
	Redelivered bool
	// KeyMayExist holds the ids of creates whose sync key an item may carry already.
	KeyMayExist map[string]bool
}

// LooksUp reports whether cmd, a create, looks its sync key up first (see Connector.Apply).
func (o ApplyOptions) LooksUp(cmd *tandemv1.WriteCommand) bool {
	return cmd.GetRetry() || o.Redelivered || o.KeyMayExist[cmd.GetCommandId()]
}

// Redelivered says the whole batch may have been carried out before (the bus redelivered it).
func Redelivered() ApplyOption { return func(o *ApplyOptions) { o.Redelivered = true } }

// KeyMayExist says an item may carry the sync key of the creates with these ids already: the
// command was started before, or it re-creates the item of a pair that had one.
func KeyMayExist(commandIDs ...string) ApplyOption {
	return func(o *ApplyOptions) {
		if o.KeyMayExist == nil {
			o.KeyMayExist = make(map[string]bool, len(commandIDs))
		}
		for _, id := range commandIDs {
			o.KeyMayExist[id] = true
		}
	}
}

// ApplyOptionsOf collects opts.
func ApplyOptionsOf(opts []ApplyOption) ApplyOptions {
	var o ApplyOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// KnownFunc returns the records the caller holds for the items with ids, each as it was at its
// Version; ids it holds nothing for (or only a deletion) are absent.
type KnownFunc func(ctx context.Context, ids []string) (map[string]*tandemv1.Record, error)

// ChangesOption adjusts one Changes call.
type ChangesOption func(*ChangesOptions)

// ChangesOptions is what ChangesOption values set; connectors read them with ChangesOptionsOf.
type ChangesOptions struct {
	// Known, when set, looks up records the caller already holds (see Connector.Changes).
	Known KnownFunc
}

// WithKnown lets Changes skip fetching items whose version the caller already holds.
func WithKnown(f KnownFunc) ChangesOption { return func(o *ChangesOptions) { o.Known = f } }

// ChangesOptionsOf collects opts.
func ChangesOptionsOf(opts []ChangesOption) ChangesOptions {
	var o ChangesOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
