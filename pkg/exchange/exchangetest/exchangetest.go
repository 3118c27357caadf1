// Package exchangetest is the conformance suite every exchange.Connector must pass: the EWS
// connector against the Exchange simulator today, a Microsoft Graph connector tomorrow.
//
// An implementation's tests call Run with a function that builds a fresh Harness per case: a
// connector, an empty mailbox it may use, and a Backdoor that changes the mailbox the way its
// owner would in Outlook. The suite then checks the connector's contract as package exchange
// documents it: idempotent folder preparation and folders located once, full and incremental
// reads with resumable cursors, writes that round-trip every field, creates that are never
// duplicated and that update what an earlier attempt wrote, creates that do not bring back
// what the user deleted, updates that tag items with their sync key, optimistic concurrency,
// and (when the harness can inject faults) throttling.
package exchangetest

import (
	"context"
	"time"

	"github.com/tandem-sync/tandem/pkg/exchange"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Harness is one test case's world.
type Harness struct {
	// Connector is the connector under test.
	Connector exchange.Connector
	// NewConnector returns another connector to the same Exchange, as a second worker process
	// would have; nil means the cases that need one reuse Connector.
	NewConnector func() exchange.Connector
	// Mailbox is a mailbox the case may use: empty, without a Salesforce_Sync folder.
	Mailbox exchange.Mailbox
	// Backdoor acts on Mailbox as its owner would.
	Backdoor Backdoor
	// Faults injects failures; nil when the harness cannot, and the fault cases are skipped.
	Faults FaultInjector
}

// Backdoor changes and inspects a mailbox directly, as its owner would in Outlook, in
// canonical terms. Ids are the connector's record ids.
type Backdoor interface {
	// CreateContact creates a contact in the Salesforce_Sync folder (the suite calls Prepare first).
	CreateContact(ctx context.Context, c *tandemv1.Contact) (id string, err error)
	// CreateEvent creates an event in the main calendar.
	CreateEvent(ctx context.Context, e *tandemv1.Event) (id string, err error)
	// UpdateContact replaces the content of a contact.
	UpdateContact(ctx context.Context, id string, c *tandemv1.Contact) error
	// UpdateEvent replaces the content of an event.
	UpdateEvent(ctx context.Context, id string, e *tandemv1.Event) error
	// Delete deletes an item as Outlook does (to Deleted Items).
	Delete(ctx context.Context, kind tandemv1.RecordKind, id string) error
	// MoveOut moves an item out of the synced folder into another folder of the mailbox.
	MoveOut(ctx context.Context, kind tandemv1.RecordKind, id string) error
	// List returns the records in the synced folder of kind, with ids, versions and sync keys.
	List(ctx context.Context, kind tandemv1.RecordKind) ([]*tandemv1.Record, error)
	// Deleted returns the records of kind in the mailbox's Deleted Items folder, with ids and
	// sync keys, as List does.
	Deleted(ctx context.Context, kind tandemv1.RecordKind) ([]*tandemv1.Record, error)
	// SyncFolders counts the Salesforce_Sync folders under the mailbox's Contacts folder.
	SyncFolders(ctx context.Context) (int, error)
}

// FaultInjector makes the mailbox's Exchange fail on purpose.
type FaultInjector interface {
	// Throttle makes the next n requests for the mailbox fail with Exchange's throttling answer,
	// asking the client to back off for backOff.
	Throttle(ctx context.Context, backOff time.Duration, n int) error
}
