package exchangeworker

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// notifyEnv is the notifier of a worker with the real EWS connector against the simulator
// (newEWSEnv: rep1 has a mailbox, rep2 one the service account may not impersonate, rep3
// none), on real NATS and Redis, all three users syncing contacts and events.
type notifyEnv struct {
	*env
	sim *ewssim.Server
	// tp is the tracer provider replicas started from now on use; nil for the platform's.
	tp trace.TracerProvider
	// notifyReplica is the first replica's notifier.
	*notifyReplica
}

// notifyReplica is one exchange-worker replica's notifier, running.
type notifyReplica struct {
	n      *notifier
	cancel context.CancelFunc
	done   chan error
}

// newNotifyEnv is the environment with one replica's notifier running.
func newNotifyEnv(t *testing.T) *notifyEnv {
	t.Helper()
	ne := newNotifyOrg(t)
	ne.notifyReplica = ne.replica(t, nil)
	return ne
}

// newNotifyOrg is the environment with no notifier running yet.
func newNotifyOrg(t *testing.T) *notifyEnv {
	t.Helper()
	e, sim := newEWSEnv(t)
	ne := &notifyEnv{env: e, sim: sim}
	ne.configure(t, rep1, rep2, rep3)
	return ne
}

// replica starts another replica's notifier, on the same Redis and simulator, configured for
// tests and then by adjust; it is stopped when the test ends.
func (ne *notifyEnv) replica(t *testing.T, adjust func(*NotifyConfig)) *notifyReplica {
	t.Helper()
	return ne.replicaOf(t, store.DefaultWorkerPool, adjust)
}

// replicaOf starts a replica of the workers of pool, as replica does.
func (ne *notifyEnv) replicaOf(t *testing.T, pool string, adjust func(*NotifyConfig)) *notifyReplica {
	t.Helper()
	cfg := NotifyConfig{Enabled: true, Refresh: 50 * time.Millisecond, MinGap: 10 * time.Millisecond}
	if adjust != nil {
		adjust(&cfg)
	}
	tp := ne.tp
	if tp == nil {
		tp = ne.p.Telemetry.TracerProvider
	}
	r := &notifyReplica{n: newNotifier(cfg, pool, ne.st, ne.w.conns, ne.p.Logger, tp)}
	r.n.watchConfig = func(c *ews.WatchConfig) {
		c.Backoff = retry.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.n.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// tried waits for the replica to go over the orgs passes more times: to have tried, since the
// call, for the watch lease of every org it does not hold.
func (r *notifyReplica) tried(t *testing.T, passes int64) {
	t.Helper()
	from := r.n.passes.Load()
	poll.Until(t, "the replica to go over the orgs again", func() bool { return r.n.passes.Load() >= from+passes })
}

// configure makes users the org's syncing users.
func (ne *notifyEnv) configure(t *testing.T, users ...string) {
	t.Helper()
	cfgs, err := ne.st.ListConfigurations(t.Context(), testOrg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tandemv1.SyncConfiguration{
		Name: "reps", Active: true, UserIds: users,
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
		Events:   &tandemv1.EventSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
	}
	if len(cfgs) > 0 {
		cfg.Id = cfgs[0].GetId()
	}
	if _, err := ne.st.PutConfiguration(t.Context(), testOrg, cfg); err != nil {
		t.Fatal(err)
	}
}

// stop stops the replica as a shutdown does, and waits for it.
func (r *notifyReplica) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("the notifier returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the notifier did not stop")
	}
}

// quiet starts the org's cycle as the scheduler would, with the next one an hour away: the
// poll interval alone would not sync it again for an hour.
func (ne *notifyEnv) quiet(t *testing.T) {
	t.Helper()
	now := time.Now()
	if _, ok, err := ne.st.ClaimCycle(t.Context(), testOrg, now, now.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("claim a cycle: %v %v", ok, err)
	}
}

// woken waits, at most within, for the org's next cycle to be due.
func (ne *notifyEnv) woken(t *testing.T, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	poll.Within(t, within, what, func() bool {
		sch, err := ne.st.GetSchedule(t.Context(), testOrg)
		if err != nil {
			t.Fatal(err)
		}
		return !sch.NextAt.After(time.Now())
	})
	return time.Since(start)
}

func (ne *notifyEnv) subscribed(t *testing.T) []string {
	t.Helper()
	poll.Until(t, "rep1's subscription on an open connection", func() bool {
		return len(ne.sim.Subscriptions(rep1Mailbox)) == 1 && ne.sim.Streams() == 1
	})
	return ne.sim.Subscriptions(rep1Mailbox)
}

// notifyGoroutines counts the goroutines running the notifier's or a watcher's code.
func notifyGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "exchangeworker.(*notifier)") || strings.Contains(g, "ews.(*Watcher)") ||
			strings.Contains(g, "ews.(*Client).GetStreamingEvents") {
			n++
		}
	}
	return n
}

func TestNotifyComponent(t *testing.T) {
	cfg := testConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, cfg, func(p *platform.Platform) ConnectorFactory { return EWSConnectors(p, true) })
	if got := len(e.w.Components()); got != 2 {
		t.Errorf("%d components with notifications off, want 2", got)
	}
	e.w.cfg.Notify.Enabled = true
	if got := len(e.w.Components()); got != 3 {
		t.Errorf("%d components with notifications on, want 3", got)
	}
	for _, bad := range []NotifyConfig{{ConnectionTimeout: time.Hour}, {MinGap: -time.Second}, {LeaseTTL: -time.Second}, {LeaseTTL: time.Millisecond}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestNotifierWakesTheOrg: a user's edit in Exchange makes the org's next cycle due within a
// second, although the poll interval would sync it an hour later.
func TestNotifierWakesTheOrg(t *testing.T) {
	base := notifyGoroutines()
	ne := newNotifyEnv(t)
	ne.quiet(t)
	ne.subscribed(t)

	t.Run("contact edited", func(t *testing.T) {
		items := ne.sim.Items(rep1Mailbox, ewssim.SyncFolderName)
		if err := ne.sim.UpdateItem(rep1Mailbox, items[0].ItemID, func(it *ewssim.Item) { it.Contact.JobTitle = "CEO" }); err != nil {
			t.Fatal(err)
		}
		took := ne.woken(t, time.Second, "the org woken by a contact edit")
		t.Logf("woken %s after the edit", took)
	})

	t.Run("event added", func(t *testing.T) {
		ne.quiet(t)
		if _, err := ne.sim.PutEvent(rep1Mailbox, ewssim.CalendarItem{ItemBase: ewssim.ItemBase{Subject: "Quarterly review"}}); err != nil {
			t.Fatal(err)
		}
		ne.woken(t, time.Second, "the org woken by a new event")
	})

	t.Run("user no longer syncing", func(t *testing.T) {
		ne.configure(t, rep2, rep3)
		poll.Until(t, "rep1's subscription ended", func() bool { return len(ne.sim.Subscriptions("")) == 0 && ne.sim.Streams() == 0 })
		ne.configure(t, rep1, rep2, rep3)
		ne.subscribed(t)
	})

	t.Run("stop", func(t *testing.T) {
		ne.stop(t)
		if got := ne.sim.Subscriptions(""); len(got) != 0 {
			t.Errorf("subscriptions left after the notifier stopped: %v", got)
		}
		poll.Until(t, "the notifier's goroutines ended", func() bool { return notifyGoroutines() <= base })
	})
}

// TestNotifierWakeLinksTheCycle: the wake a mailbox change causes is made under a span, which
// the cycle it makes due links to, so that a trace leads from the change to the cycle.
func TestNotifierWakeLinksTheCycle(t *testing.T) {
	ne := newNotifyOrg(t)
	rec := tracetest.NewSpanRecorder()
	ne.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ne.notifyReplica = ne.replica(t, nil)
	ne.quiet(t)
	ne.subscribed(t)
	items := ne.sim.Items(rep1Mailbox, ewssim.SyncFolderName)
	if err := ne.sim.UpdateItem(rep1Mailbox, items[0].ItemID, func(it *ewssim.Item) { it.Contact.JobTitle = "CTO" }); err != nil {
		t.Fatal(err)
	}
	ne.woken(t, 5*time.Second, "the org woken by a contact edit")
	var wakes []trace.SpanContext
	poll.Until(t, "the wake's span ended", func() bool {
		wakes = wakes[:0]
		for _, sp := range rec.Ended() {
			if sp.Name() == "exchange-worker.wake" {
				wakes = append(wakes, sp.SpanContext())
			}
		}
		return len(wakes) > 0
	})
	now := time.Now()
	sch, ok, err := ne.st.ClaimNextCycle(t.Context(), testOrg, now, now.Add(time.Hour))
	if err != nil || !ok {
		t.Fatalf("claim the woken cycle: %v %v", ok, err)
	}
	for _, sc := range sch.DueBy {
		if sc.TraceID() == wakes[0].TraceID() && sc.SpanID() == wakes[0].SpanID() {
			return
		}
	}
	t.Fatalf("the woken cycle is due by %v, not by the wake's span %v", sch.DueBy, wakes[0])
}

// TestNotifierResubscribes: subscriptions the simulator drops (a restarted mailbox server) are
// made again, the org is woken for the changes that may have gone unnotified, and later edits
// wake it as before.
func TestNotifierResubscribes(t *testing.T) {
	ne := newNotifyEnv(t)
	old := ne.subscribed(t)
	ne.quiet(t)

	if n := ne.sim.DropSubscriptions(""); n != 1 {
		t.Fatalf("dropped %d subscriptions, want rep1's", n)
	}
	poll.Until(t, "rep1 subscribed again", func() bool {
		got := ne.sim.Subscriptions(rep1Mailbox)
		return len(got) == 1 && got[0] != old[0] && ne.sim.Streams() == 1
	})
	ne.woken(t, time.Second, "the org woken after its lost subscription was made again")

	ne.quiet(t)
	if _, err := ne.sim.PutContact(rep1Mailbox, ewssim.SyncFolderName, ewssim.Contact{GivenName: "Ada", Surname: "Lovelace"}); err != nil {
		t.Fatal(err)
	}
	ne.woken(t, time.Second, "the org woken by an edit after the new subscription")
}

// edit changes a contact in rep1's Salesforce_Sync folder, as its user would.
func (ne *notifyEnv) edit(t *testing.T, title string) {
	t.Helper()
	items := ne.sim.Items(rep1Mailbox, ewssim.SyncFolderName)
	if err := ne.sim.UpdateItem(rep1Mailbox, items[0].ItemID, func(it *ewssim.Item) { it.Contact.JobTitle = title }); err != nil {
		t.Fatal(err)
	}
}

// newSubscription waits for rep1 to be subscribed, on one open connection, by another
// subscription than old.
func (ne *notifyEnv) newSubscription(t *testing.T, within time.Duration, what, old string) {
	t.Helper()
	poll.Within(t, within, what, func() bool {
		got := ne.sim.Subscriptions(rep1Mailbox)
		return len(got) == 1 && got[0] != old && ne.sim.Streams() == 1
	})
}

// TestNotifierOneReplicaWatchesAnOrg: two replicas started together make one subscription per
// mailbox, not two: the one holding the org's watch lease watches; the other keeps trying.
func TestNotifierOneReplicaWatchesAnOrg(t *testing.T) {
	ne := newNotifyOrg(t)
	a, b := ne.replica(t, nil), ne.replica(t, nil)
	ne.subscribed(t)
	a.tried(t, 3)
	b.tried(t, 3)
	if made := ne.sim.SubscriptionsMade(""); made != 1 {
		t.Fatalf("%d subscriptions made for the org's mailboxes by two replicas, want 1 (rep1's)", made)
	}
	if n := ne.sim.Streams(); n != 1 {
		t.Fatalf("%d notification connections open, want 1", n)
	}
	ne.quiet(t)
	ne.edit(t, "CEO")
	ne.woken(t, time.Second, "the org woken by a contact edit")
}

// TestNotifierHandsTheOrgOverOnStop: a replica that stops releases the org's watch lease, and
// the other takes the org over at once — the lease lasts far longer than the test waits — and
// wakes it on the next change.
func TestNotifierHandsTheOrgOverOnStop(t *testing.T) {
	ne := newNotifyOrg(t)
	longLease := func(c *NotifyConfig) { c.LeaseTTL = time.Hour }
	holder := ne.replica(t, longLease)
	old := ne.subscribed(t)
	standby := ne.replica(t, longLease)
	standby.tried(t, 3)
	if made := ne.sim.SubscriptionsMade(rep1Mailbox); made != 1 {
		t.Fatalf("%d subscriptions made for rep1 before the handover, want 1", made)
	}

	holder.stop(t)
	ne.newSubscription(t, 10*time.Second, "the standby to subscribe rep1", old[0])
	if made := ne.sim.SubscriptionsMade(rep1Mailbox); made != 2 {
		t.Fatalf("%d subscriptions made for rep1, want 2 (the holder's, then the standby's)", made)
	}
	ne.quiet(t)
	ne.edit(t, "CFO")
	ne.woken(t, time.Second, "the org woken through the replica that took over")
}

// TestNotifierTakesOverFromADeadHolder: a replica killed while it holds the org's watch lease
// never releases it (here the test holds it and goes away); another replica subscribes once the
// lease expires — not before, and without waiting for its own refresh or its own lease's
// renewal cadence, both far longer.
func TestNotifierTakesOverFromADeadHolder(t *testing.T) {
	ne := newNotifyOrg(t)
	const ttl = 2 * time.Second
	if _, err := ne.st.AcquireWatchLease(t.Context(), testOrg, watchRole, ttl); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	standby := ne.replica(t, func(c *NotifyConfig) { c.Refresh, c.LeaseTTL = time.Hour, time.Hour })
	standby.tried(t, 1)
	if time.Since(died) < ttl {
		if made := ne.sim.SubscriptionsMade(""); made != 0 {
			t.Fatalf("%d subscriptions made while the dead holder's lease lasted", made)
		}
	}
	ne.newSubscription(t, ttl+3*time.Second, "the standby to take over within the lease's TTL", "")
	if took := time.Since(died); took < ttl {
		t.Fatalf("subscribed %s after the holder died, before its %s lease expired", took, ttl)
	} else {
		t.Logf("taken over %s after the holder died (lease TTL %s)", took, ttl)
	}
	ne.quiet(t)
	ne.edit(t, "CTO")
	ne.woken(t, time.Second, "the org woken through the replica that took over")
}

// TestNotifierStopsWatchingWhenItLosesTheLease: a holder whose lease another replica took (as
// after it paused past the TTL) ends its subscriptions as soon as its renewal fails, and takes
// the org back once the lease is free again.
func TestNotifierStopsWatchingWhenItLosesTheLease(t *testing.T) {
	ne := newNotifyOrg(t)
	ne.replica(t, func(c *NotifyConfig) { c.LeaseTTL = time.Second })
	old := ne.subscribed(t)

	ctx := t.Context()
	if err := ne.st.Client().Del(ctx, "tandem:{"+testOrg+"}:lease:"+watchRole).Err(); err != nil {
		t.Fatal(err)
	}
	thief, err := ne.st.AcquireWatchLease(ctx, testOrg, watchRole, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 10*time.Second, "the loser to end its subscription", func() bool {
		return len(ne.sim.Subscriptions("")) == 0 && ne.sim.Streams() == 0
	})

	if err := thief.Release(ctx); err != nil {
		t.Fatal(err)
	}
	ne.newSubscription(t, 10*time.Second, "the replica to take the released lease back", old[0])
}

// TestNotifierWatchesOnlyItsPoolsOrgs: an org served by the workers of pool "big" is watched by
// a replica of that pool, never by one of the default pool.
func TestNotifierWatchesOnlyItsPoolsOrgs(t *testing.T) {
	ne := newNotifyOrg(t)
	org, err := ne.st.GetOrg(t.Context(), testOrg)
	if err != nil {
		t.Fatal(err)
	}
	org.WorkerPool = "big"
	ne.putOrg(org)
	shared := ne.replicaOf(t, store.DefaultWorkerPool, nil)
	shared.tried(t, 3)
	if made := ne.sim.SubscriptionsMade(""); made != 0 {
		t.Fatalf("a replica of the default pool made %d subscriptions for an org of pool big", made)
	}
	ne.replicaOf(t, "big", nil)
	poll.Until(t, "the big pool's replica to subscribe", func() bool { return ne.sim.SubscriptionsMade(rep1Mailbox) == 1 })
}

// TestNotifierLeavesSuspendedMailboxesUnwatched: a user the exchange-worker suspended after
// repeated permanent failures loses its subscription, is not subscribed again while the
// suspension holds, and is watched again once an admin resumes it.
func TestNotifierLeavesSuspendedMailboxesUnwatched(t *testing.T) {
	ne := newNotifyEnv(t)
	old := ne.subscribed(t)
	ctx := t.Context()
	uk := store.UserKey{OrgID: testOrg, UserID: rep1}
	st := status.New(ne.st)
	suspended := &tandemv1.UserStatus{Suspended: true, SuspendedAt: timestamppb.Now(), PermanentFailures: 5}
	if err := st.Put(ctx, uk, status.PartExchange, suspended); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the suspended user's subscription ended", func() bool {
		return len(ne.sim.Subscriptions(rep1Mailbox)) == 0 && ne.sim.Streams() == 0
	})
	ne.tried(t, 3)
	if made := ne.sim.SubscriptionsMade(rep1Mailbox); made != 1 {
		t.Fatalf("%d subscriptions made for rep1, want only the one before the suspension", made)
	}

	if err := st.Resume(ctx, uk, time.Now()); err != nil {
		t.Fatal(err)
	}
	ne.newSubscription(t, 10*time.Second, "rep1 subscribed again once resumed", old[0])
}

// TestNotifierTakeoverWakesTheOrg: a change made while nobody watches the org — its watcher
// stopped, or died holding the lease — was never notified. The replica that takes the org over
// wakes it once subscribed, so the change is read within seconds, not at the poll interval an
// hour later.
func TestNotifierTakeoverWakesTheOrg(t *testing.T) {
	notDue := func(t *testing.T, ne *notifyEnv) {
		t.Helper()
		sch, err := ne.st.GetSchedule(t.Context(), testOrg)
		if err != nil {
			t.Fatal(err)
		}
		if !sch.NextAt.After(time.Now().Add(30 * time.Minute)) {
			t.Fatalf("the org is due at %v before anyone took it over", sch.NextAt)
		}
	}
	t.Run("holder stopped", func(t *testing.T) {
		ne := newNotifyOrg(t)
		longLease := func(c *NotifyConfig) { c.LeaseTTL = time.Hour }
		holder := ne.replica(t, longLease)
		ne.subscribed(t)
		holder.stop(t)
		ne.quiet(t)
		ne.edit(t, "CFO") // nobody watches
		notDue(t, ne)
		ne.replica(t, longLease)
		ne.woken(t, 10*time.Second, "the org woken by the replica that took it over")
	})
	t.Run("holder died", func(t *testing.T) {
		ne := newNotifyOrg(t)
		ne.quiet(t)
		const ttl = 2 * time.Second
		if _, err := ne.st.AcquireWatchLease(t.Context(), testOrg, watchRole, ttl); err != nil {
			t.Fatal(err)
		}
		ne.edit(t, "CTO") // the holder is gone; nobody watches
		notDue(t, ne)
		ne.replica(t, func(c *NotifyConfig) { c.Refresh, c.LeaseTTL = time.Hour, time.Hour })
		took := ne.woken(t, ttl+10*time.Second, "the org woken by the replica that took it over")
		t.Logf("woken %s after the change (the dead holder's lease lasted %s)", took, ttl)
	})
}

func TestNotifierLeavesMailboxesOfAnotherOrgUnwatched(t *testing.T) {
	ne := newNotifyEnv(t)
	ne.subscribed(t)
	// Another org syncs rep1's mailbox (it claimed it first): this org's rep1 does not sync.
	if err := ne.st.ReleaseMailboxes(t.Context(), testOrg, []string{rep1Mailbox}); err != nil {
		t.Fatal(err)
	}
	if _, err := ne.st.ClaimMailboxes(t.Context(), "00Dotherorg0000001", []string{rep1Mailbox}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "rep1's subscription ended", func() bool {
		return len(ne.sim.Subscriptions(rep1Mailbox)) == 0
	})
}

// TestNotifierMarksTheMailboxBeforeWaking: once its notifications arrive, a mailbox is marked
// watched; a change moves its mark before the org is woken, so that the cycle the wake starts
// reads it (Worker.quiet); a mailbox no longer watched, or whose watcher stopped, is not marked
// watched.
func TestNotifierMarksTheMailboxBeforeWaking(t *testing.T) {
	ne := newNotifyEnv(t)
	uk := store.UserKey{OrgID: testOrg, UserID: rep1}
	mark := func() store.WatchMark {
		t.Helper()
		m, err := ne.st.MailboxWatchMark(t.Context(), uk, watchRole)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	edit := func(title string) {
		t.Helper()
		items := ne.sim.Items(rep1Mailbox, ewssim.SyncFolderName)
		if err := ne.sim.UpdateItem(rep1Mailbox, items[0].ItemID, func(it *ewssim.Item) { it.Contact.JobTitle = title }); err != nil {
			t.Fatal(err)
		}
	}
	ne.subscribed(t)
	// The subscription's first notification shows its connection delivers.
	ne.quiet(t)
	edit("CEO")
	ne.woken(t, 5*time.Second, "the org woken by an edit")
	before := mark()
	if !before.Watched() {
		t.Fatalf("mark %+v once notifications arrive, want watched", before)
	}
	if !mark().Quiet(before) {
		t.Fatal("the mark moved without a change")
	}
	ne.quiet(t)
	edit("CFO")
	ne.woken(t, 5*time.Second, "the org woken by another edit")
	after := mark()
	if after.Quiet(before) {
		t.Fatalf("mark %+v after a change is still %+v", after, before)
	}
	// The edit is noted with the item and the change key it left, for the worker to tell the
	// echo of its own writes from other changes.
	item := ne.sim.Items(rep1Mailbox, ewssim.SyncFolderName)[0]
	noted, ok, err := ne.st.NotedItems(t.Context(), uk, watchRole, before.Notes, after.Notes)
	if err != nil || !ok || !slices.Contains(noted, store.WatchedItem{ID: item.ItemID, Version: item.ChangeKey}) {
		t.Fatalf("noted items %v (%v, %v), want %s at %s", noted, ok, err, item.ItemID, item.ChangeKey)
	}

	before = mark()
	ne.configure(t, rep2, rep3)
	poll.Until(t, "rep1's mailbox unwatched once rep1 stops syncing", func() bool { return !mark().Watched() })
	ne.configure(t, rep1, rep2, rep3)
	ne.subscribed(t)
	ne.stop(t)
	if m := mark(); m.Watched() || m.Quiet(before) {
		t.Fatalf("mark %+v after the notifier stopped", m)
	}
}
