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
	// done, when set, makes this step a call of the request's Done with these users instead.
	done []string
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
	// applyErr makes every user's writes fail as a whole; applyErrOnce fails only the next user's.
	applyErr, applyErrOnce error
	// holdApply, when set, holds every ApplyMany until it is closed or the call's context ends.
	holdApply chan struct{}
	// perRep makes the connector act as each rep (write_as REP): writes are not shared.
	perRep bool
	usage  salesforce.Usage

	builds     int
	usersCalls int
	polls      []salesforce.PollRequest
	applied    []*tandemv1.WriteCommand
	actingAs   []string
	// applyOpts is, per user's commands applied, 1 when they were marked Redelivered (the batch
	// was delivered before), else 0.
	applyOpts []int
	// applyCalls is, per ApplyMany done, how many users' commands it carried; applyStarted
	// counts the ApplyMany calls started.
	applyCalls   []int
	applyStarted int
	// applyCommands is, per ApplyMany done, how many commands it carried.
	applyCommands []int
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
		if e.done != nil {
			if derr := req.Done(ctx, e.done); derr != nil {
				return "", derr
			}
			continue
		}
		if eerr := emitFn(ctx, e.user, e.changes, e.full); eerr != nil {
			return "", eerr
		}
	}
	return next, err
}

func (f *fakeConnector) ApplyMany(ctx context.Context, _ tandemv1.RecordKind, batches []salesforce.UserCommands) []salesforce.UserResults {
	f.mu.Lock()
	hold := f.holdApply
	f.applyStarted++
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]salesforce.UserResults, len(batches))
	f.applyCalls = append(f.applyCalls, len(batches))
	n := 0
	for _, b := range batches {
		n += len(b.Commands)
	}
	f.applyCommands = append(f.applyCommands, n)
	for i, b := range batches {
		redelivered := 0
		if b.Redelivered {
			redelivered = 1
		}
		f.applyOpts = append(f.applyOpts, redelivered)
		if err := f.applyErrOnce; err != nil {
			f.applyErrOnce = nil
			out[i].Err = err
			continue
		}
		if f.applyErr != nil {
			out[i].Err = f.applyErr
			continue
		}
		if err := ctx.Err(); err != nil {
			out[i].Err = err
			continue
		}
		f.actingAs = append(f.actingAs, b.User.GetUserId())
		f.applied = append(f.applied, b.Commands...)
		res := make([]*tandemv1.WriteResult, len(b.Commands))
		for k, c := range b.Commands {
			res[k] = &tandemv1.WriteResult{
				CommandId: c.GetCommandId(), SyncKey: c.GetSyncKey(), Op: c.GetOp(), Ok: true,
				Record: &tandemv1.Record{Id: "003" + c.GetSyncKey(), Version: "2026-03-02T09:00:00.000Z", SyncKey: c.GetSyncKey(), OwnerId: b.User.GetUserId()},
			}
		}
		out[i].Results = res
	}
	return out
}

func (f *fakeConnector) SharesWrites() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.perRep
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
