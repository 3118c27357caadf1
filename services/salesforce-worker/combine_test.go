package salesforceworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// longWait is a maximum delay no test should see: a handler that waits for it has waited for a
// handler it should not have waited for.
const longWait = time.Minute

// applied is what one handler's apply returned.
type applied struct {
	results []*tandemv1.WriteResult
	err     error
}

// startApply submits user's commands on t in a goroutine; the result arrives on the channel.
func startApply(ctx context.Context, t *ticket, fc *fakeConnector, userID string, cmds ...*tandemv1.WriteCommand) <-chan applied {
	out := make(chan applied, 1)
	go func() {
		res, err := t.apply(ctx, fc, user(userID), cmds, false)
		out <- applied{res, err}
	}()
	return out
}

// receive waits for a handler's result.
func receive(t *testing.T, ch <-chan applied) applied {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("a handler is still waiting for its results")
		return applied{}
	}
}

// calls returns, per ApplyMany so far, how many users' commands it carried.
func (f *fakeConnector) calls() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applyCalls)
}

func testCombiner(linger, maxDelay time.Duration) *combiner {
	return newCombiner(linger, maxDelay, noop.NewTracerProvider(), slog.New(slog.DiscardHandler))
}

// TestCombinerSharesOneCall: the handlers of an org and kind that entered together are carried
// out in one ApplyMany once all have submitted, and each gets its own user's results, in order.
func TestCombinerSharesOneCall(t *testing.T) {
	c := testCombiner(time.Millisecond, longWait)
	fc := &fakeConnector{}
	users := []string{u1, u2, u3}
	tickets := make([]*ticket, len(users))
	for i := range users {
		tickets[i] = c.enter(testOrg, contact)
	}
	other := c.enter(testOrg, event) // another kind waits for nobody, and nobody for it
	results := make([]<-chan applied, len(users))
	for i, u := range users {
		results[i] = startApply(t.Context(), tickets[i], fc, u, create(u+"-1", u+"-k1"), create(u+"-2", u+"-k2"))
	}
	for i, u := range users {
		a := receive(t, results[i])
		if a.err != nil || len(a.results) != 2 {
			t.Fatalf("%s: %v %v", u, a.results, a.err)
		}
		for k, r := range a.results {
			if r.GetCommandId() != fmt.Sprintf("%s-%d", u, k+1) || r.GetRecord().GetOwnerId() != u {
				t.Errorf("%s result %d: %v", u, k, r)
			}
		}
	}
	if got := fc.calls(); !slices.Equal(got, []int{3}) {
		t.Errorf("ApplyMany calls carried %v users, want one call of 3", got)
	}
	other.leave()
	c.wait()
	if !c.idle() {
		t.Errorf("groups left behind: %v", c.groups)
	}
}

// TestCombinerFillsWholeCalls: a call sent while a handler has yet to submit holds back what
// would go in a short last sObject Collections call, and the next call carries it with that
// handler's commands: two full calls of 200 instead of 200 + 100 + 100. Every handler gets its
// results, in its commands' order.
func TestCombinerFillsWholeCalls(t *testing.T) {
	c := testCombiner(time.Millisecond, 50*time.Millisecond)
	fc := &fakeConnector{}
	creates := func(u string, n int) []*tandemv1.WriteCommand {
		out := make([]*tandemv1.WriteCommand, n)
		for i := range out {
			out[i] = create(fmt.Sprintf("%s-%d", u, i), fmt.Sprintf("%s-k%d", u, i))
		}
		return out
	}
	batches := map[string][]*tandemv1.WriteCommand{u1: creates(u1, 150), u2: creates(u2, 150), u3: creates(u3, 100)}
	t1, t2, t3 := c.enter(testOrg, contact), c.enter(testOrg, contact), c.enter(testOrg, contact)
	results := map[string]<-chan applied{
		u1: startApply(t.Context(), t1, fc, u1, batches[u1]...),
		u2: startApply(t.Context(), t2, fc, u2, batches[u2]...),
	}
	// The first two are sent at the maximum delay, while the third has yet to submit.
	for deadline := time.Now().Add(30 * time.Second); len(fc.calls()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing sent at the maximum delay")
		}
	}
	results[u3] = startApply(t.Context(), t3, fc, u3, batches[u3]...)
	for u, ch := range results {
		a := receive(t, ch)
		if a.err != nil || len(a.results) != len(batches[u]) {
			t.Fatalf("%s: %d results, %v", u, len(a.results), a.err)
		}
		for k, r := range a.results {
			if r.GetCommandId() != batches[u][k].GetCommandId() {
				t.Fatalf("%s result %d is for %s, want %s", u, k, r.GetCommandId(), batches[u][k].GetCommandId())
			}
		}
	}
	fc.mu.Lock()
	got := slices.Clone(fc.applyCommands)
	fc.mu.Unlock()
	if !slices.Equal(got, []int{200, 200}) {
		t.Errorf("calls carried %v commands, want two full calls of 200", got)
	}
	c.wait()
	if !c.idle() {
		t.Errorf("groups left behind: %v", c.groups)
	}
}

// TestHoldBack: what a call holds back, per operation, and what it never does.
func TestHoldBack(t *testing.T) {
	seq := 0
	cmds := func(op tandemv1.WriteOp, n int) []*tandemv1.WriteCommand {
		out := make([]*tandemv1.WriteCommand, n)
		for i := range out {
			seq++
			out[i] = &tandemv1.WriteCommand{CommandId: fmt.Sprintf("c%d", seq), Op: op, SyncKey: fmt.Sprintf("k%d", seq), TargetId: "003x"}
		}
		return out
	}
	sub := func(held bool, parts ...[]*tandemv1.WriteCommand) *submission {
		return &submission{held: held, done: make(chan struct{}), batch: salesforce.UserCommands{User: user(u1), Commands: slices.Concat(parts...)}}
	}
	create, update := tandemv1.WriteOp_WRITE_OP_CREATE, tandemv1.WriteOp_WRITE_OP_UPDATE
	for _, tc := range []struct {
		name       string
		subs       []*submission
		sent, held int // commands
	}{
		{"whole calls hold nothing", []*submission{sub(false, cmds(create, 200)), sub(false, cmds(update, 400))}, 600, 0},
		{"each operation's short call", []*submission{sub(false, cmds(create, 250), cmds(update, 30)), sub(false, cmds(create, 100))}, 200, 180},
		{"a part held once is not held again", []*submission{sub(true, cmds(create, 50)), sub(false, cmds(create, 30))}, 80, 0},
		{"a part held once goes, others fill the call", []*submission{sub(true, cmds(create, 50)), sub(false, cmds(create, 200))}, 200, 50},
		{"not everything", []*submission{sub(false, cmds(create, 50)), sub(false, cmds(update, 50))}, 100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]bool{}
			for _, s := range tc.subs {
				for _, c := range s.batch.Commands {
					before[c.GetCommandId()] = true
				}
			}
			var heldBefore []*submission
			for _, s := range tc.subs {
				if s.held {
					heldBefore = append(heldBefore, s)
				}
			}
			send, held := holdBack(slices.Clone(tc.subs))
			for _, s := range heldBefore {
				if !slices.Contains(send, s) {
					t.Errorf("a part held back before is held again")
				}
			}
			count := func(subs []*submission) int {
				n := 0
				for _, s := range subs {
					n += len(s.batch.Commands)
					for _, c := range s.batch.Commands {
						if !before[c.GetCommandId()] {
							t.Errorf("command %s appeared", c.GetCommandId())
						}
						delete(before, c.GetCommandId())
					}
				}
				return n
			}
			if s, h := count(send), count(held); s != tc.sent || h != tc.held {
				t.Errorf("sent %d and held %d commands, want %d and %d", s, h, tc.sent, tc.held)
			}
			if len(before) != 0 {
				t.Errorf("%d commands lost", len(before))
			}
			for _, h := range held {
				if !h.held {
					t.Errorf("a part held back is not marked held")
				}
			}
		})
	}
}

// idle reports whether no handler is in the combiner: none entered, none waiting, no call under
// way.
func (c *combiner) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.groups) == 0
}

// calling reports whether a call is under way and nothing waits to be sent.
func (c *combiner) calling() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.groups {
		if g.running > 0 && len(g.waiting) == 0 {
			return true
		}
	}
	return false
}

// sfsimUser is rep i of the simulated org.
func sfsimUser(i int) sfsim.User {
	email := fmt.Sprintf("rep%d@acme.example", i)
	return sfsim.User{Username: email, Email: email, FirstName: "Rep", LastName: fmt.Sprint(i), IsActive: true}
}

// TestCombinerDoesNotHoldALoneHandler: a handler alone, or whose companions left without
// submitting, is sent after the linger, not the maximum delay.
func TestCombinerDoesNotHoldALoneHandler(t *testing.T) {
	c := testCombiner(time.Millisecond, longWait)
	fc := &fakeConnector{}
	start := time.Now()
	a := receive(t, startApply(t.Context(), c.enter(testOrg, contact), fc, u1, create("c1", "k1")))
	if a.err != nil || time.Since(start) > longWait/2 {
		t.Fatalf("a lone handler: %v after %s", a.err, time.Since(start))
	}
	t1, t2 := c.enter(testOrg, contact), c.enter(testOrg, contact)
	ch := startApply(t.Context(), t1, fc, u1, create("c2", "k2"))
	t2.leave() // nothing of its batch was in flight
	if a := receive(t, ch); a.err != nil || time.Since(start) > longWait/2 {
		t.Fatalf("a handler whose companion left: %v after %s", a.err, time.Since(start))
	}
	if got := fc.calls(); !slices.Equal(got, []int{1, 1}) {
		t.Errorf("calls %v, want two calls of one user", got)
	}
}

// TestCombinerMaxDelay: a handler that entered and is slow to submit holds the others up by the
// maximum delay only; its own writes go in a later call.
func TestCombinerMaxDelay(t *testing.T) {
	const maxDelay = 50 * time.Millisecond
	c := testCombiner(time.Millisecond, maxDelay)
	fc := &fakeConnector{}
	slow := c.enter(testOrg, contact)
	start := time.Now()
	a := receive(t, startApply(t.Context(), c.enter(testOrg, contact), fc, u1, create("c1", "k1")))
	if waited := time.Since(start); a.err != nil || waited < maxDelay || waited > longWait/2 {
		t.Fatalf("a handler waiting for a slow one: %v after %s, want the maximum delay %s", a.err, waited, maxDelay)
	}
	if a := receive(t, startApply(t.Context(), slow, fc, u2, create("c2", "k2"))); a.err != nil {
		t.Fatal(a.err)
	}
	if got := fc.calls(); !slices.Equal(got, []int{1, 1}) {
		t.Errorf("calls %v, want two calls of one user", got)
	}
}

// TestCombinerSendsAFullGroupAtOnce: once maxCommands commands wait, they are sent without
// waiting for the handlers still to submit.
func TestCombinerSendsAFullGroupAtOnce(t *testing.T) {
	c := testCombiner(time.Millisecond, longWait)
	c.maxCommands = 3
	fc := &fakeConnector{}
	t1, t2, late := c.enter(testOrg, contact), c.enter(testOrg, contact), c.enter(testOrg, contact)
	ch1 := startApply(t.Context(), t1, fc, u1, create("c1", "k1"))
	ch2 := startApply(t.Context(), t2, fc, u2, create("c2", "k2"), create("c3", "k3"))
	for _, ch := range []<-chan applied{ch1, ch2} {
		if a := receive(t, ch); a.err != nil {
			t.Fatal(a.err)
		}
	}
	late.leave()
	if got := fc.calls(); !slices.Equal(got, []int{2}) {
		t.Errorf("calls %v, want one call of 2 users", got)
	}
}

// TestCombinerWaitsForTheCallUnderWay: what is submitted while a call of the org and kind is
// under way waits for it to end and then goes in one call, unless that takes longer than the
// maximum delay.
func TestCombinerWaitsForTheCallUnderWay(t *testing.T) {
	started := func(fc *fakeConnector) func() int {
		return func() int {
			fc.mu.Lock()
			defer fc.mu.Unlock()
			return fc.applyStarted
		}
	}
	t.Run("until it ends", func(t *testing.T) {
		c := testCombiner(time.Millisecond, longWait)
		hold := make(chan struct{})
		fc := &fakeConnector{holdApply: hold}
		ch1 := startApply(t.Context(), c.enter(testOrg, contact), fc, u1, create("c1", "k1"))
		poll.Until(t, "the first call to start", c.calling)
		ch2 := startApply(t.Context(), c.enter(testOrg, contact), fc, u2, create("c2", "k2"))
		ch3 := startApply(t.Context(), c.enter(testOrg, contact), fc, u3, create("c3", "k3"))
		poll.Until(t, "both to submit", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			g := c.groups[groupKey{testOrg, contact}]
			return g != nil && len(g.waiting) == 2
		})
		if n := started(fc)(); n != 1 {
			t.Fatalf("%d calls started while the first was under way, want 1", n)
		}
		close(hold)
		for _, ch := range []<-chan applied{ch1, ch2, ch3} {
			if a := receive(t, ch); a.err != nil {
				t.Fatal(a.err)
			}
		}
		if got := fc.calls(); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("calls %v, want the first and one with both that waited for it", got)
		}
	})
	t.Run("at most the maximum delay", func(t *testing.T) {
		c := testCombiner(time.Millisecond, 50*time.Millisecond)
		hold := make(chan struct{})
		fc := &fakeConnector{holdApply: hold}
		ch1 := startApply(t.Context(), c.enter(testOrg, contact), fc, u1, create("c1", "k1"))
		poll.Until(t, "the first call to start", c.calling)
		ch2 := startApply(t.Context(), c.enter(testOrg, contact), fc, u2, create("c2", "k2"))
		poll.Until(t, "the second call to start alongside the first", func() bool { return started(fc)() == 2 })
		close(hold)
		for _, ch := range []<-chan applied{ch1, ch2} {
			if a := receive(t, ch); a.err != nil {
				t.Fatal(a.err)
			}
		}
	})
}

// TestCombinerWholeCallError: a call that fails as a whole fails every handler in it, each of
// which goes back to the bus or is reported as before.
func TestCombinerWholeCallError(t *testing.T) {
	c := testCombiner(time.Millisecond, longWait)
	fc := &fakeConnector{applyErr: &syncerr.Error{Code: syncerr.SalesforceUnavailable, Delay: time.Minute}}
	t1, t2 := c.enter(testOrg, contact), c.enter(testOrg, contact)
	ch1 := startApply(t.Context(), t1, fc, u1, create("c1", "k1"))
	ch2 := startApply(t.Context(), t2, fc, u2, create("c2", "k2"))
	for _, ch := range []<-chan applied{ch1, ch2} {
		if a := receive(t, ch); syncerr.As(a.err).Code != syncerr.SalesforceUnavailable || a.results != nil {
			t.Errorf("handler: %v %v, want SALESFORCE_UNAVAILABLE", a.results, a.err)
		}
	}
	if got := fc.calls(); !slices.Equal(got, []int{2}) {
		t.Errorf("calls %v, want one call of 2 users", got)
	}
}

// TestCombinerCancelledHandler: a handler whose context ends withdraws its writes if they have
// not been sent, and otherwise stops waiting without cancelling the call, which goes on for the
// others; a call every handler stopped waiting for is cancelled.
func TestCombinerCancelledHandler(t *testing.T) {
	t.Run("before the call", func(t *testing.T) {
		c := testCombiner(time.Millisecond, longWait)
		fc := &fakeConnector{}
		t1, t2 := c.enter(testOrg, contact), c.enter(testOrg, contact)
		ctx, cancel := context.WithCancel(t.Context())
		ch1 := startApply(ctx, t1, fc, u1, create("c1", "k1"))
		cancel()
		if a := receive(t, ch1); !errors.Is(a.err, context.Canceled) {
			t.Fatalf("the cancelled handler: %v %v", a.results, a.err)
		}
		if a := receive(t, startApply(t.Context(), t2, fc, u2, create("c2", "k2"))); a.err != nil || len(a.results) != 1 {
			t.Fatalf("the other handler: %v %v", a.results, a.err)
		}
		if _, _, got, _ := fc.state(); !slices.Equal(got, []string{"c2"}) {
			t.Errorf("applied %v, want only the handler's still waiting", got)
		}
	})
	t.Run("during the call", func(t *testing.T) {
		c := testCombiner(time.Millisecond, longWait)
		hold := make(chan struct{})
		fc := &fakeConnector{holdApply: hold}
		t1, t2 := c.enter(testOrg, contact), c.enter(testOrg, contact)
		ctx, cancel := context.WithCancel(t.Context())
		ch1 := startApply(ctx, t1, fc, u1, create("c1", "k1"))
		ch2 := startApply(t.Context(), t2, fc, u2, create("c2", "k2"))
		poll.Until(t, "the call to start", c.calling)
		cancel()
		if a := receive(t, ch1); !errors.Is(a.err, context.Canceled) {
			t.Fatalf("the cancelled handler: %v %v", a.results, a.err)
		}
		close(hold)
		if a := receive(t, ch2); a.err != nil || len(a.results) != 1 || !a.results[0].GetOk() {
			t.Fatalf("the other handler: %v %v", a.results, a.err)
		}
		if _, _, got, _ := fc.state(); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"c1", "c2"}) {
			t.Errorf("applied %v, want both: the call was not cancelled with one handler", got)
		}
	})
	t.Run("every handler gone", func(t *testing.T) {
		c := testCombiner(time.Millisecond, longWait)
		fc := &fakeConnector{holdApply: make(chan struct{})} // never released
		ctx, cancel := context.WithCancel(t.Context())
		t1, t2 := c.enter(testOrg, contact), c.enter(testOrg, contact)
		ch1 := startApply(ctx, t1, fc, u1, create("c1", "k1"))
		ch2 := startApply(ctx, t2, fc, u2, create("c2", "k2"))
		poll.Until(t, "the call to start", c.calling)
		cancel()
		receive(t, ch1)
		receive(t, ch2)
		c.wait() // returns: the call's context ended with its last handler
		if _, _, got, _ := fc.state(); len(got) != 0 {
			t.Errorf("applied %v after every handler gave up", got)
		}
	})
}

// TestCombinerRepWritesAreNotHeld: when each rep writes with their own token (write_as REP)
// nothing can be shared, and a handler is carried out at once, alone.
func TestCombinerRepWritesAreNotHeld(t *testing.T) {
	c := testCombiner(longWait, longWait)
	fc := &fakeConnector{perRep: true}
	t1, t2 := c.enter(testOrg, contact), c.enter(testOrg, contact)
	if a := receive(t, startApply(t.Context(), t1, fc, u1, create("c1", "k1"))); a.err != nil {
		t.Fatal(a.err)
	}
	if a := receive(t, startApply(t.Context(), t2, fc, u2, create("c2", "k2"))); a.err != nil {
		t.Fatal(a.err)
	}
	if got := fc.calls(); !slices.Equal(got, []int{1, 1}) {
		t.Errorf("calls %v, want one per rep", got)
	}
}

// TestApplyHandlersShareCalls: write batches of several reps handled at the same time by the
// worker go to Salesforce together: 3 reps' 70 creates in 2 upsert calls as the integration
// user, each contact owned by its rep and each result published to its rep's batch; under
// write_as REP the same batches cost a token and a call per rep.
func TestApplyHandlersShareCalls(t *testing.T) {
	for _, writeAs := range []tandemv1.SalesforceWriteIdentity{
		tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_UNSPECIFIED,
		tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP,
	} {
		t.Run(writeAs.String(), func(t *testing.T) {
			se := newSFSimEnv(t, false)
			// A linger long enough that every handler started below has entered before any is
			// sent, whatever the scheduling.
			se.w.combiner = testCombiner(500*time.Millisecond, 5*time.Second)
			se.org.Salesforce.WriteAs = writeAs
			se.putOrg(se.org)
			rep3, err := se.sim.AddUser(sfsimUser(3))
			if err != nil {
				t.Fatal(err)
			}
			reps := []string{se.rep1, se.rep2, rep3}
			var users []*tandemv1.SyncUser
			for i, id := range reps {
				users = append(users, &tandemv1.SyncUser{UserId: id, Username: fmt.Sprintf("rep%d@acme.example", i+1), Email: fmt.Sprintf("rep%d@acme.example", i+1), Active: true})
			}
			se.putUsers(users...)
			batches := make([]*tandemv1.WriteBatch, len(reps))
			for i, rep := range reps {
				cmds := make([]*tandemv1.WriteCommand, 70)
				for k := range cmds {
					key := fmt.Sprintf("sk-%d-%02d", i, k)
					cmds[k] = &tandemv1.WriteCommand{CommandId: "cmd-" + key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key,
						Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "Rep", Surname: key}}}}
				}
				se.putInFlight(rep, contact, tandemv1.System_SYSTEM_SALESFORCE, cmds...)
				batches[i] = &tandemv1.WriteBatch{BatchId: fmt.Sprintf("batch-%d", i), OrgId: testOrg, UserId: rep,
					Target: tandemv1.System_SYSTEM_SALESFORCE, Kind: contact, Cycle: 1, Commands: cmds}
			}
			se.sim.ResetCounts()
			var wg sync.WaitGroup
			for _, b := range batches {
				wg.Go(func() {
					if err := se.w.handleApply(t.Context(), platformtest.ApplyMessage(t, b, 1)); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			counts := se.sim.Counts()
			wantUpserts, wantTokens := int64(2), int64(1)
			if writeAs == tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP {
				wantUpserts, wantTokens = 3, 3
			}
			if counts["collections.upsert"] != wantUpserts || counts["token"] != wantTokens {
				t.Errorf("%d upsert calls and %d tokens, want %d and %d: %v", counts["collections.upsert"], counts["token"], wantUpserts, wantTokens, counts)
			}
			results, _ := se.results()
			if len(results) != len(reps) {
				t.Fatalf("%d result batches, want one per rep", len(results))
			}
			for _, rb := range results {
				i := slices.Index(reps, rb.GetUserId())
				if i < 0 || rb.GetBatchId() != batches[i].GetBatchId() || len(rb.GetResults()) != 70 {
					t.Fatalf("result batch %s for %s with %d results", rb.GetBatchId(), rb.GetUserId(), len(rb.GetResults()))
				}
				for k, r := range rb.GetResults() {
					stored, _ := se.sim.Get("Contact", r.GetRecord().GetId())
					if !r.GetOk() || r.GetCommandId() != batches[i].GetCommands()[k].GetCommandId() || stored["OwnerId"] != reps[i] ||
						stored["Tandem_Sync_Key__c"] != batches[i].GetCommands()[k].GetSyncKey() {
						t.Fatalf("rep %d result %d: %v stored as %v", i, k, r, stored)
					}
				}
			}
		})
	}
}
