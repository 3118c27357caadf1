package exchangeworker

import (
	"context"
	"sync"

	"github.com/tandem-sync/tandem/pkg/exchange"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// fakeConnector is an exchange.Connector whose reads and writes the test scripts. It is safe
// for concurrent use, so the test can change its script while the worker runs.
type fakeConnector struct {
	mu sync.Mutex
	// folders is what Prepare and Folders report; prepareErr makes them fail.
	folders    exchange.Folders
	prepareErr error
	// pages returns the pages of a read of kind from cursor, and the error the read ends with.
	pages func(kind tandemv1.RecordKind, cursor string) ([]exchange.Page, error)
	// beforePage runs before the i-th page of a read is handed to the worker.
	beforePage func(i int)
	// applyErr makes Apply fail as a whole.
	applyErr error

	builds    int
	mailboxes []exchange.Mailbox
	cursors   map[tandemv1.RecordKind][]string
	applied   []*tandemv1.WriteCommand
	// repeats are the ids of the commands Apply was told may repeat an earlier attempt.
	repeats []string
}

func newFakeConnector() *fakeConnector {
	return &fakeConnector{
		folders: exchange.Folders{ContactsFolderID: "contacts", CalendarFolderID: "calendar", ServerVersion: "15.2.1748.10 V2017_07_11"},
		cursors: map[tandemv1.RecordKind][]string{},
	}
}

// factory builds the fake for every org, counting the builds.
func (f *fakeConnector) factory(*tandemv1.Org) (exchange.Connector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.builds++
	return f, nil
}

func (f *fakeConnector) script(change func(f *fakeConnector)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeConnector) Prepare(_ context.Context, mb exchange.Mailbox) (exchange.Folders, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mailboxes = append(f.mailboxes, mb)
	if f.prepareErr != nil {
		return exchange.Folders{}, f.prepareErr
	}
	return f.folders, nil
}

func (f *fakeConnector) Folders(ctx context.Context, mb exchange.Mailbox) (exchange.Folders, error) {
	return f.Prepare(ctx, mb)
}

func (f *fakeConnector) Changes(ctx context.Context, _ exchange.Mailbox, kind tandemv1.RecordKind, cursor string, page func(context.Context, exchange.Page) error, _ ...exchange.ChangesOption) error {
	f.mu.Lock()
	f.cursors[kind] = append(f.cursors[kind], cursor)
	var pages []exchange.Page
	var err error
	if f.pages != nil {
		pages, err = f.pages(kind, cursor)
	}
	before := f.beforePage
	f.mu.Unlock()
	for i, p := range pages {
		if before != nil {
			before(i)
		}
		if perr := page(ctx, p); perr != nil {
			return perr
		}
	}
	return err
}

func (f *fakeConnector) Apply(_ context.Context, _ exchange.Mailbox, kind tandemv1.RecordKind, cmds []*tandemv1.WriteCommand, opts ...exchange.ApplyOption) ([]*tandemv1.WriteResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		return nil, f.applyErr
	}
	f.applied = append(f.applied, cmds...)
	o := exchange.ApplyOptionsOf(opts)
	for _, c := range cmds {
		if o.LooksUp(c) {
			f.repeats = append(f.repeats, c.GetCommandId())
		}
	}
	out := make([]*tandemv1.WriteResult, len(cmds))
	for i, c := range cmds {
		out[i] = &tandemv1.WriteResult{
			CommandId: c.GetCommandId(), SyncKey: c.GetSyncKey(), Op: c.GetOp(), Ok: true,
			Record: &tandemv1.Record{Id: "AAMk-" + c.GetSyncKey(), Version: "ck-1", SyncKey: c.GetSyncKey()},
		}
	}
	return out, nil
}

func (f *fakeConnector) appliedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, c := range f.applied {
		ids = append(ids, c.GetCommandId())
	}
	return ids
}

func (f *fakeConnector) cursorsOf(kind tandemv1.RecordKind) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cursors[kind]...)
}

func (f *fakeConnector) buildCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.builds
}

// upserts returns n upserts of contacts with ids prefix-a, prefix-b, ...
func upserts(prefix string, n int) []*tandemv1.Change {
	out := make([]*tandemv1.Change, n)
	for i := range n {
		id := prefix + "-" + string(rune('a'+i))
		out[i] = &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: &tandemv1.Record{
			Id: id, Version: "ck", Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: id}},
		}}
	}
	return out
}
