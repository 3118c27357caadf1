package salesforceworker

import (
	"context"
	"slices"
	"sync"

	"github.com/tandem-sync/tandem/pkg/salesforce"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// emit is one call of a poll's EmitFunc.
type emit struct {
	user    string
	changes []*tandemv1.Change
	full    bool
}

// fakeConnector is a Connector whose directory, polls and writes the test scripts. It is safe
// for concurrent use, so the test can change its script while the worker runs.
type fakeConnector struct {
	mu sync.Mutex
	// users is the directory; usersErr makes reading it fail.
	users    []*tandemv1.SyncUser
	usersErr error
	// poll answers a poll: what it emits, the cursor it returns and the error it ends with.
	poll func(req salesforce.PollRequest) ([]emit, string, error)
	// beforeEmit runs before each emit of a poll.
	beforeEmit func()
	// applyErr makes Apply fail as a whole; applyErrOnce fails only the next Apply.
	applyErr, applyErrOnce error
	usage                  salesforce.Usage

	builds     int
	usersCalls int
	polls      []salesforce.PollRequest
	applied    []*tandemv1.WriteCommand
	actingAs   []string
	// applyOpts counts the options of each Apply; the worker passes one, Redelivered, when the
	// batch was delivered before.
	applyOpts []int
}

func (f *fakeConnector) factory(*tandemv1.Org) (Connector, error) {
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

func (f *fakeConnector) Users(context.Context) ([]*tandemv1.SyncUser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usersCalls++
	if f.usersErr != nil {
		return nil, f.usersErr
	}
	return f.users, nil
}

func (f *fakeConnector) Poll(ctx context.Context, req salesforce.PollRequest, emitFn salesforce.EmitFunc) (string, error) {
	f.mu.Lock()
	f.polls = append(f.polls, req)
	var emits []emit
	var next string
	var err error
	if f.poll != nil {
		emits, next, err = f.poll(req)
	}
	before := f.beforeEmit
	f.mu.Unlock()
	for _, e := range emits {
		if before != nil {
			before()
		}
		if eerr := emitFn(ctx, e.user, e.changes, e.full); eerr != nil {
			return "", eerr
		}
	}
	return next, err
}

func (f *fakeConnector) Apply(_ context.Context, actingUser *tandemv1.SyncUser, _ tandemv1.RecordKind, cmds []*tandemv1.WriteCommand, opts ...salesforce.ApplyOption) ([]*tandemv1.WriteResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyOpts = append(f.applyOpts, len(opts))
	if err := f.applyErrOnce; err != nil {
		f.applyErrOnce = nil
		return nil, err
	}
	if f.applyErr != nil {
		return nil, f.applyErr
	}
	f.actingAs = append(f.actingAs, actingUser.GetUserId())
	f.applied = append(f.applied, cmds...)
	out := make([]*tandemv1.WriteResult, len(cmds))
	for i, c := range cmds {
		out[i] = &tandemv1.WriteResult{
			CommandId: c.GetCommandId(), SyncKey: c.GetSyncKey(), Op: c.GetOp(), Ok: true,
			Record: &tandemv1.Record{Id: "003" + c.GetSyncKey(), Version: "2026-03-02T09:00:00.000Z", SyncKey: c.GetSyncKey()},
		}
	}
	return out, nil
}

func (f *fakeConnector) Usage() salesforce.Usage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.usage
}

// state returns a copy of what the fake recorded.
func (f *fakeConnector) state() (usersCalls int, polls []salesforce.PollRequest, applied []string, applyOpts []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.applied {
		applied = append(applied, c.GetCommandId())
	}
	return f.usersCalls, slices.Clone(f.polls), applied, slices.Clone(f.applyOpts)
}

// audienceIDs returns the sorted user ids of a poll's audience.
func audienceIDs(req salesforce.PollRequest) []string {
	var ids []string
	for _, a := range req.Audience {
		ids = append(ids, a.User.GetUserId())
	}
	slices.Sort(ids)
	return ids
}

// upserts returns n upserts of contacts with ids prefix-a, prefix-b, ...
func upserts(prefix string, n int) []*tandemv1.Change {
	out := make([]*tandemv1.Change, n)
	for i := range n {
		id := prefix + "-" + string(rune('a'+i))
		out[i] = &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: &tandemv1.Record{
			Id: id, Version: "2026-03-02T09:00:00.000Z", Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: id}},
		}}
	}
	return out
}
