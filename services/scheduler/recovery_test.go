package scheduler_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
	"github.com/tandem-sync/tandem/services/scheduler"
)

// flakyPublisher fails the publishes on subjects containing failOn, once each, after passing
// the others to the real bus.
type flakyPublisher struct {
	next   scheduler.Publisher
	mu     sync.Mutex
	failOn []string
}

func (f *flakyPublisher) Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error {
	f.mu.Lock()
	i := slices.IndexFunc(f.failOn, func(s string) bool { return strings.Contains(subject, s) })
	if i >= 0 {
		f.failOn = slices.Delete(f.failOn, i, i+1)
	}
	f.mu.Unlock()
	if i >= 0 {
		return errors.New("injected publish failure")
	}
	return f.next.Publish(ctx, subject, msg, msgID)
}

func TestClaimedCycleIsNeverLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		// failOn fails the first tick's publishes on these subjects.
		failOn []string
		// crashedClaimAgo claims the cycle outside the scheduler, as a replica that died
		// right after its claim, this long ago; 0 for none.
		crashedClaimAgo time.Duration
		// wantFirst is whether the first tick publishes the cycle.
		wantFirst bool
	}{
		{name: "an Exchange job fails to publish", failOn: []string{user2}},
		{name: "the Salesforce job fails to publish", failOn: []string{".salesforce"}},
		{name: "the claimant died after its claim", crashedClaimAgo: 2 * store.CyclePublishHold, wantFirst: true},
		{name: "a live claimant is not overtaken", crashedClaimAgo: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConfig())
			ctx := t.Context()
			e.putOrg(t, org(orgA))
			e.putUsers(t, orgA, user(user1, true), user(user2, true))
			e.putConfig(t, orgA, contactsOnly(user1, user2))
			if len(tc.failOn) > 0 {
				scheduler.SetPublisher(e.sched, &flakyPublisher{next: e.p.Bus, failOn: tc.failOn})
			}
			if tc.crashedClaimAgo > 0 {
				then := time.Now().Add(-tc.crashedClaimAgo)
				if _, ok, err := e.st.ClaimCycle(ctx, orgA, then, then.Add(time.Hour)); err != nil || !ok {
					t.Fatalf("ClaimCycle: %v, %v", ok, err)
				}
			}

			err := e.sched.Tick(ctx)
			if (len(tc.failOn) > 0) != (err != nil) {
				t.Fatalf("first tick: %v", err)
			}
			jobs := e.newJobs(t)
			if tc.crashedClaimAgo > 0 && !tc.wantFirst {
				if len(jobs) != 0 {
					t.Fatalf("a cycle its live claimant holds was published by another: %v", jobs)
				}
				return
			}
			if !tc.wantFirst {
				// The next tick publishes what the first could not, for the same cycle.
				e.tick(t)
				jobs = append(jobs, e.newJobs(t)...)
			}
			var sf *tandemv1.SyncJob
			ex := map[string]*tandemv1.SyncJob{}
			for _, j := range jobs {
				if j.job.GetSystem() == tandemv1.System_SYSTEM_SALESFORCE {
					sf = j.job
				} else {
					ex[j.job.GetUserId()] = j.job
				}
			}
			if sf.GetCycle() != 1 || !slices.Equal(sf.GetUserIds(), []string{user1, user2}) && !slices.Equal(sf.GetUserIds(), []string{user2, user1}) {
				t.Fatalf("Salesforce job %v, want cycle 1 for both users", sf)
			}
			if ex[user1].GetCycle() != 1 || ex[user2].GetCycle() != 1 {
				t.Fatalf("Exchange jobs %v, want cycle 1 for both users", ex)
			}
			if c := e.cycle(t, orgA); c != 1 {
				t.Fatalf("cycle %d, want 1: no cycle claimed while one is unpublished", c)
			}
			// Published: the outbox is empty and nothing more goes out until the next cycle is due.
			e.tick(t)
			if jobs := e.newJobs(t); len(jobs) != 0 {
				t.Fatalf("a published cycle was published again: %v", jobs)
			}
		})
	}
}

// reader plays the workers for one user's contacts: it hands the reconciler one-page reads of
// a side, as the workers publish them, or loses them as a broker that lost its store would.
type reader struct {
	e    *env
	uk   store.UserKey
	last map[tandemv1.System]uint64 // the cycle of each side's last read: what the next one continues from
}

// read delivers (or, with lost, publishes and then purges from the changes stream) side's
// read of cycle.
func (r *reader) read(t *testing.T, side tandemv1.System, cycle uint64, full, lost bool) {
	t.Helper()
	b := &tandemv1.ChangeBatch{
		OrgId: r.uk.OrgID, UserId: r.uk.UserID, Source: side, Kind: contactKind, Cycle: cycle,
		Last: true, PageCount: 1, FullSnapshot: full, ReadAt: timestamppb.Now(),
	}
	if !full {
		b.PreviousCycle = r.last[side]
	}
	r.last[side] = cycle
	if lost {
		subject, err := bus.ChangesSubject(r.uk.OrgID, r.uk.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.e.p.Bus.Publish(t.Context(), subject, b, bus.MsgID("lost", store.SideName(side), time.Now().String())); err != nil {
			t.Fatal(err)
		}
		stream, err := r.e.p.JetStream.Stream(t.Context(), bus.StreamChanges)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := r.e.reconciler.HandleChanges(t.Context(), b); err != nil {
		t.Fatalf("HandleChanges: %v", err)
	}
}

func TestLostReadIsReadAgainWithinTwoIntervals(t *testing.T) {
	sidesOf := []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE}
	for _, tc := range []struct {
		name string
		lose tandemv1.System
		// lostCycle is the cycle whose read of lose is lost; 1 is the user's first sync.
		lostCycle uint64
	}{
		{"Salesforce pages of the first sync", tandemv1.System_SYSTEM_SALESFORCE, 1},
		{"Exchange pages of the first sync", tandemv1.System_SYSTEM_EXCHANGE, 1},
		{"Salesforce pages of a later cycle", tandemv1.System_SYSTEM_SALESFORCE, 3},
		{"Exchange pages of a later cycle", tandemv1.System_SYSTEM_EXCHANGE, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConfig())
			ctx := t.Context()
			e.putOrg(t, org(orgA))
			e.putUsers(t, orgA, user(user1, true))
			e.putConfig(t, orgA, contactsOnly(user1))
			uk := store.UserKey{OrgID: orgA, UserID: user1}
			r := &reader{e: e, uk: uk, last: map[tandemv1.System]uint64{}}

			// Each cycle: the scheduler starts it, then both sides' reads arrive, the full
			// ones the jobs ask for and the first (a first read is always full).
			var recovered uint64
			for cycle := uint64(1); cycle <= tc.lostCycle+4; cycle++ {
				e.dueNow(t, orgA)
				e.tick(t)
				sf, ex := split(t, orgA, e.newJobs(t))
				if sf.GetCycle() != cycle {
					t.Fatalf("cycle %d, want %d", sf.GetCycle(), cycle)
				}
				full := map[tandemv1.System]bool{
					tandemv1.System_SYSTEM_EXCHANGE:   ex[user1].GetFullResync(),
					tandemv1.System_SYSTEM_SALESFORCE: slices.Contains(sf.GetFullUserIds(), user1),
				}
				for _, side := range sidesOf {
					if full[side] && (side != tc.lose || cycle != tc.lostCycle+2) {
						t.Fatalf("cycle %d reads %s in full; want only %s, in cycle %d",
							cycle, store.SideName(side), store.SideName(tc.lose), tc.lostCycle+2)
					}
				}
				if cycle == tc.lostCycle+2 && !full[tc.lose] {
					t.Fatalf("cycle %d does not read %s again, two cycles after its read was lost", cycle, store.SideName(tc.lose))
				}
				for _, side := range sidesOf {
					r.read(t, side, cycle, full[side] || cycle == 1, side == tc.lose && cycle == tc.lostCycle)
				}
				e.jobsDone(t)
				_, reconciled, err := ledger.New(e.st).ResetProgress(ctx, uk, contactKind)
				if err != nil {
					t.Fatal(err)
				}
				if reconciled == cycle && recovered == 0 && cycle > tc.lostCycle {
					recovered = cycle
				}
			}
			if recovered != tc.lostCycle+2 {
				t.Fatalf("reconciled again from cycle %d, want %d (two cycles after the loss)", recovered, tc.lostCycle+2)
			}
		})
	}
}

// jobsDone takes every job off the bus, as workers that carried them out acknowledge them.
func (e *env) jobsDone(t *testing.T) {
	t.Helper()
	stream, err := e.p.JetStream.Stream(t.Context(), bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestRunningPollIsNotStartedAgain: the org's Salesforce poll of cycle 2 runs long (a large
// org's first echo). Later cycles read Exchange but start no second poll, which would read the
// same window again from the same cursor; nor do they take the missing read for lost, or the
// lag for a stall. Once the poll is done and its read still missing, the lag is a stall: the
// next cycle polls again, reading the user in full.
func TestRunningPollIsNotStartedAgain(t *testing.T) {
	cfg := testConfig()
	cfg.StallCycles = 2 // a lag of the running poll's length would be a stall
	e := newEnv(t, cfg)
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsOnly(user1))
	r := &reader{e: e, uk: store.UserKey{OrgID: orgA, UserID: user1}, last: map[tandemv1.System]uint64{}}
	cycle := func() (*tandemv1.SyncJob, map[string]*tandemv1.SyncJob) {
		t.Helper()
		e.dueNow(t, orgA)
		e.tick(t)
		return splitAny(t, orgA, e.newJobs(t))
	}
	for c := uint64(1); c <= 2; c++ {
		e.running = c == 2 // the poll of cycle 2 runs on
		if sf, _ := cycle(); sf.GetCycle() != c {
			t.Fatalf("cycle %d polls as cycle %d", c, sf.GetCycle())
		}
		r.read(t, tandemv1.System_SYSTEM_EXCHANGE, c, c == 1, false)
		if c == 1 {
			r.read(t, tandemv1.System_SYSTEM_SALESFORCE, c, true, false)
		}
	}
	for c := uint64(3); c <= 7; c++ {
		sf, ex := cycle()
		if sf != nil {
			t.Fatalf("cycle %d starts a poll while the poll of cycle 2 runs: %v", c, sf)
		}
		if ex[user1] == nil || ex[user1].GetFullResync() {
			t.Fatalf("cycle %d reads Exchange as %v, want incrementally", c, ex[user1])
		}
		r.read(t, tandemv1.System_SYSTEM_EXCHANGE, c, false, false)
	}
	// The long poll ends; its pages wait on the bus for the reconciler (nothing consumes them
	// here): still no stall.
	subject, err := bus.ChangesSubject(orgA, user1)
	if err != nil {
		t.Fatal(err)
	}
	page := &tandemv1.ChangeBatch{OrgId: orgA, UserId: user1, Source: tandemv1.System_SYSTEM_SALESFORCE, Kind: contactKind,
		Cycle: 2, PreviousCycle: 1, Last: true, PageCount: 1, ReadAt: timestamppb.Now()}
	if err := e.p.Bus.Publish(t.Context(), subject, page, "long-poll-2"); err != nil {
		t.Fatal(err)
	}
	e.running = false
	e.jobsDone(t)
	if sf, _ := cycle(); sf.GetCycle() != 8 || slices.Contains(sf.GetFullUserIds(), user1) {
		t.Fatalf("with the long poll's pages waiting for the reconciler, cycle 8 polls %v, want incrementally", sf)
	}
	r.read(t, tandemv1.System_SYSTEM_EXCHANGE, 8, false, false)
	// Its pages are lost (purged): the lag is now a stall, and the next cycle reads in full.
	stream, err := e.p.JetStream.Stream(t.Context(), bus.StreamChanges)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.jobsDone(t)
	if sf, _ := cycle(); sf.GetCycle() != 9 || !slices.Contains(sf.GetFullUserIds(), user1) {
		t.Fatalf("once the long poll's pages are lost, cycle 9 polls %v, want %s read in full", sf, user1)
	}
}

// A user's first sync waits for its Salesforce side (a first poll reads everyone in full, which
// takes a while in a large org): until it is planned, cycles poll Salesforce but do not read the
// mailbox again, which would only queue reads behind the first; once planned, they read it as
// usual.
func TestFirstSyncReadsTheMailboxOnceUntilPlanned(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsOnly(user1))
	r := &reader{e: e, uk: store.UserKey{OrgID: orgA, UserID: user1}, last: map[tandemv1.System]uint64{}}
	if sf, ex := e.nextCycle(t); ex[user1] == nil || !slices.Contains(sf.GetUserIds(), user1) {
		t.Fatalf("cycle 1 polls %v and reads %v, want %s read on both sides", sf, ex, user1)
	}
	r.read(t, tandemv1.System_SYSTEM_EXCHANGE, 1, true, false) // the first poll is still running
	for c := uint64(2); c <= 3; c++ {
		sf, ex := e.nextCycle(t)
		if ex[user1] != nil {
			t.Fatalf("cycle %d reads the mailbox again before the first sync is planned: %v", c, ex[user1])
		}
		if !slices.Contains(sf.GetUserIds(), user1) {
			t.Fatalf("cycle %d polls %v, want %s in it", c, sf.GetUserIds(), user1)
		}
	}
	r.read(t, tandemv1.System_SYSTEM_SALESFORCE, 1, true, false) // the first sync is planned
	if _, ex := e.nextCycle(t); ex[user1] == nil || ex[user1].GetFullResync() {
		t.Fatalf("cycle 4 reads the mailbox as %v, want incrementally", ex[user1])
	}
}

// jobStillRunning leaves an Exchange job of an earlier cycle for user on the bus, as if a worker
// were carrying it out; the next jobs newJobs returns come after it.
func (e *env) jobStillRunning(t *testing.T, orgID, user string) {
	t.Helper()
	subject, err := bus.ExchangeJobSubject(orgID, store.DefaultWorkerPool, user)
	if err != nil {
		t.Fatal(err)
	}
	job := &tandemv1.SyncJob{OrgId: orgID, UserId: user, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: 1}
	if err := e.p.Bus.Publish(t.Context(), subject, job, "still-running-"+user); err != nil {
		t.Fatal(err)
	}
	e.seen++
}

// A mailbox whose Exchange job of an earlier cycle is still queued, or being carried out, gets
// no other: it would only wait behind the first and read what that one reads. The org's other
// mailboxes are read as usual, and the mailbox is read again once its job is done.
func TestQueuedExchangeJobIsNotQueuedAgain(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true))
	e.putConfig(t, orgA, contactsOnly(user1, user2))
	cycle := func() map[string]*tandemv1.SyncJob {
		t.Helper()
		sf, ex := e.nextCycle(t) // every job is taken off the bus: done
		if !slices.Equal(sf.GetUserIds(), []string{user1, user2}) {
			t.Fatalf("the cycle polls %v, want both users", sf.GetUserIds())
		}
		return ex
	}
	if ex := cycle(); ex[user1] == nil || ex[user2] == nil {
		t.Fatalf("cycle 1 reads %v, want both mailboxes", ex)
	}
	e.jobStillRunning(t, orgA, user1)
	if ex := cycle(); ex[user1] != nil || ex[user2] == nil {
		t.Fatalf("cycle 2 reads %v, want user2's mailbox only", ex)
	}
	if ex := cycle(); ex[user1] == nil || ex[user2] == nil || ex[user1].GetFullResync() {
		t.Fatalf("cycle 3 reads %v, want both mailboxes, incrementally", ex)
	}
}

// blindQueue cannot tell which Exchange jobs are queued, as during a NATS restart.
type blindQueue struct{ scheduler.Queue }

func (blindQueue) ExchangeJobsStored(context.Context, string, string) (map[string]uint64, error) {
	return nil, errors.New("injected: nats: timeout")
}

// When the bus cannot say which mailboxes' reads are still queued, every mailbox is read: a
// read too many, never one missing.
func TestUnknownQueueReadsEveryMailbox(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true))
	e.putConfig(t, orgA, contactsOnly(user1, user2))
	scheduler.SetQueue(e.sched, blindQueue{e.p.Bus})
	e.jobStillRunning(t, orgA, user1)
	if _, ex := e.nextCycle(t); ex[user1] == nil || ex[user2] == nil {
		t.Fatalf("the cycle reads %v, want both mailboxes", ex)
	}
}

// TestLateReadIsNotReadAgain has one side's read sit on the bus, unhandled, while later reads
// arrive: its pages are late, not lost, and the scheduler waits for them instead of adding a
// full read to the backlog.
func TestLateReadIsNotReadAgain(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsOnly(user1))
	uk := store.UserKey{OrgID: orgA, UserID: user1}
	r := &reader{e: e, uk: uk, last: map[tandemv1.System]uint64{}}
	subject, err := bus.ChangesSubject(orgA, user1)
	if err != nil {
		t.Fatal(err)
	}
	for cycle := uint64(1); cycle <= 4; cycle++ {
		e.dueNow(t, orgA)
		e.tick(t)
		sf, ex := split(t, orgA, e.newJobs(t))
		if slices.Contains(sf.GetFullUserIds(), user1) || ex[user1].GetFullResync() {
			t.Fatalf("cycle %d reads in full while the Salesforce read of cycle 1 is still queued", cycle)
		}
		r.read(t, tandemv1.System_SYSTEM_EXCHANGE, cycle, cycle == 1, false)
		if cycle == 1 {
			// Queued on the bus; nothing consumes it in this test.
			b := &tandemv1.ChangeBatch{OrgId: orgA, UserId: user1, Source: tandemv1.System_SYSTEM_SALESFORCE, Kind: contactKind,
				Cycle: 1, Last: true, PageCount: 1, FullSnapshot: true, ReadAt: timestamppb.Now()}
			if err := e.p.Bus.Publish(t.Context(), subject, b, "late-salesforce-1"); err != nil {
				t.Fatal(err)
			}
			r.last[tandemv1.System_SYSTEM_SALESFORCE] = 1
			continue
		}
		r.read(t, tandemv1.System_SYSTEM_SALESFORCE, cycle, false, false)
	}
}

// TestRepublishedResetCycleStillReadsInFull: a reset clears the ledger when its cycle is
// claimed; if that cycle's jobs then fail to go out, the cycle published again must still read
// the user in full, although the user is no longer marked.
func TestRepublishedResetCycleStillReadsInFull(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsOnly(user1))
	e.tick(t)
	e.newJobs(t)
	e.reconcile(t, orgA, user1, contactKind, 1)
	if err := e.st.MarkReset(ctx, store.UserKey{OrgID: orgA, UserID: user1}); err != nil {
		t.Fatal(err)
	}
	scheduler.SetPublisher(e.sched, &flakyPublisher{next: e.p.Bus, failOn: []string{".salesforce", ".exchange." + store.DefaultWorkerPool + "." + user1}})
	e.dueNow(t, orgA)
	if err := e.sched.Tick(ctx); err == nil {
		t.Fatal("a tick whose publishes failed reported no error")
	}
	if jobs := e.newJobs(t); len(jobs) != 0 {
		t.Fatalf("jobs %v, want none to have gone out", jobs)
	}
	e.tick(t)
	sf, ex := split(t, orgA, e.newJobs(t))
	if sf.GetCycle() != 2 || !slices.Equal(sf.GetFullUserIds(), []string{user1}) || !ex[user1].GetFullResync() {
		t.Fatalf("republished cycle: Salesforce %v, Exchange %v; want cycle 2 reading %s in full on both sides", sf, ex[user1], user1)
	}
}
