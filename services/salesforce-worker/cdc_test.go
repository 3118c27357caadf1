package salesforceworker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// cdcEnv is a worker subscribed to the simulated org's change events over a real gRPC
// connection on a free loopback port, with real Redis and NATS.
type cdcEnv struct {
	*sfsimEnv
	contactID string
}

func newCDCEnv(t *testing.T) *cdcEnv {
	t.Helper()
	se := newSFSimEnv(t, false)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- se.sim.ServePubSub(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServePubSub: %v", err)
		}
	})
	cfg := testConfig()
	cfg.CDC = CDCConfig{Endpoint: lis.Addr().String(), Plaintext: true, Refresh: 100 * time.Millisecond,
		Backoff: retry.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}}
	w, err := NewWithConnectors(cfg, se.p.Platform, RESTConnectors(se.p.Platform, "TandemTest", true))
	if err != nil {
		t.Fatal(err)
	}
	se.w = w
	// The org's directory, as the worker's first job reads it.
	var users []*tandemv1.SyncUser
	for _, id := range []string{se.rep1, se.rep2} {
		u, _ := se.sim.Get("User", id)
		users = append(users, &tandemv1.SyncUser{UserId: id, Username: fmt.Sprint(u["Username"]), Email: fmt.Sprint(u["Email"]),
			ProfileId: fmt.Sprint(u["ProfileId"]), Active: true})
	}
	se.putUsers(users...)
	id, err := se.sim.Insert("Contact", map[string]any{"FirstName": "Grace", "LastName": "Hopper"}, se.rep1)
	if err != nil {
		t.Fatal(err)
	}
	return &cdcEnv{sfsimEnv: se, contactID: id}
}

// notDue schedules the org's next cycle an hour away: only a wake brings it forward.
func (e *cdcEnv) notDue() {
	e.t.Helper()
	now := time.Now()
	if _, ok, err := e.st.ClaimCycle(e.t.Context(), testOrg, now, now.Add(time.Hour)); err != nil || !ok {
		e.t.Fatalf("ClaimCycle: %v %v", ok, err)
	}
}

// startCDC runs the worker's CDC component until the returned stop is called, which waits for
// it to end; it returns once the subscription is set up on the simulator.
func (e *cdcEnv) startCDC() (stop func()) {
	e.t.Helper()
	comps := e.w.cdcComponents()
	if len(comps) != 1 {
		e.t.Fatalf("%d CDC components", len(comps))
	}
	ctx, cancel := context.WithCancel(e.t.Context())
	done := make(chan error, 1)
	go func() { done <- comps[0].Run(ctx) }()
	e.waitFor("the subscription", func() bool { return e.sim.PubSubSubscribers() == 1 })
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("CDC component: %v", err)
		}
		// Shut down means shut down: no subscription left behind.
		e.waitFor("the subscription to end", func() bool { return e.sim.PubSubSubscribers() == 0 })
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *cdcEnv) waitFor(what string, cond func() bool) time.Duration {
	e.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			e.t.Fatalf("no %s after 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// due reports whether the org's next cycle is due now.
func (e *cdcEnv) due() bool {
	e.t.Helper()
	sch, err := e.st.GetSchedule(e.t.Context(), testOrg)
	if err != nil {
		e.t.Fatal(err)
	}
	return !sch.NextAt.After(time.Now())
}

func (e *cdcEnv) storedReplay() []byte {
	e.t.Helper()
	raw, ok, err := e.st.GetCursor(e.t.Context(), replayKey(cdcKey{org: testOrg, kind: contact}))
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// TestCDCWakeLinksTheCycle: the wake change events cause is made under a span, which the cycle
// it makes due links to, so that a trace leads from the change in Salesforce to the cycle.
func TestCDCWakeLinksTheCycle(t *testing.T) {
	e := newCDCEnv(t)
	e.notDue()
	rec := tracetest.NewSpanRecorder()
	c := e.w.newCDC()
	c.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("CDC: %v", err)
		}
	})
	e.waitFor("the subscription", func() bool { return e.sim.PubSubSubscribers() == 1 })
	if err := e.sim.Update("Contact", e.contactID, map[string]any{"Title": "Commodore"}, e.rep1); err != nil {
		t.Fatal(err)
	}
	e.waitFor("wake", e.due)
	var wake trace.SpanContext
	e.waitFor("the wake's span", func() bool {
		for _, sp := range rec.Ended() {
			if sp.Name() == "salesforce-worker.cdcWake" {
				wake = sp.SpanContext()
				return true
			}
		}
		return false
	})
	now := time.Now()
	sch, ok, err := e.st.ClaimNextCycle(t.Context(), testOrg, now, now.Add(time.Hour))
	if err != nil || !ok {
		t.Fatalf("claim the woken cycle: %v %v", ok, err)
	}
	for _, sc := range sch.DueBy {
		if sc.TraceID() == wake.TraceID() && sc.SpanID() == wake.SpanID() {
			return
		}
	}
	t.Fatalf("the woken cycle is due by %v, not by the wake's span %v", sch.DueBy, wake)
}

func TestCDCWakesTheOrgAndResumesAfterRestart(t *testing.T) {
	e := newCDCEnv(t)
	e.notDue()
	stop := e.startCDC()
	if e.due() {
		t.Fatal("due before any change")
	}

	// A rep edits a contact in Salesforce: the org is due at once, not in an hour.
	if err := e.sim.Update("Contact", e.contactID, map[string]any{"Title": "Rear Admiral"}, e.rep1); err != nil {
		t.Fatal(err)
	}
	if took := e.waitFor("wake", e.due); took > time.Second {
		t.Errorf("the org was due %s after the edit, want within a second", took)
	} else {
		t.Logf("org due %s after the edit", took)
	}
	e.waitFor("stored replay id", func() bool { return string(e.storedReplay()) == string(e.sim.LatestReplayID()) })

	// The worker stops; an edit happens meanwhile; the restarted worker resumes after the
	// stored replay id, so the edit is not missed (from LATEST it would be).
	stop()
	e.notDue()
	if err := e.sim.Update("Contact", e.contactID, map[string]any{"Department": "Navy"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.Insert("Contact", map[string]any{"LastName": "Outsider"}, e.sim.AdminUserID()); err != nil {
		t.Fatal(err)
	}
	e.startCDC()
	e.waitFor("wake for the edit made while stopped", e.due)
	e.waitFor("stored replay id to move on", func() bool { return string(e.storedReplay()) == string(e.sim.LatestReplayID()) })
}

func TestCDCExpiredReplayIDFallsBackToLatest(t *testing.T) {
	e := newCDCEnv(t)
	e.notDue()
	// A replay id the bus does not have (older than its 72 hours).
	if err := e.st.PutCursor(t.Context(), replayKey(cdcKey{org: testOrg, kind: contact}), base64.StdEncoding.EncodeToString([]byte("gone-by!"))); err != nil {
		t.Fatal(err)
	}
	comps := e.w.cdcComponents()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- comps[0].Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("CDC component: %v", err)
		}
	}()
	// The org is woken once (its poll covers the gap) and the subscription goes on from LATEST.
	e.waitFor("wake after the refused replay id", e.due)
	e.waitFor("the subscription from LATEST", func() bool { return e.sim.PubSubSubscribers() == 1 })
	e.notDue()
	if err := e.sim.Update("Contact", e.contactID, map[string]any{"Title": "Commodore"}, e.rep1); err != nil {
		t.Fatal(err)
	}
	e.waitFor("wake after the fallback", e.due)
}

func TestCDCTurnedOff(t *testing.T) {
	for _, cfg := range []CDCConfig{{}, {Endpoint: "127.0.0.1:1", Disabled: true}} {
		w := &Worker{cfg: Config{CDC: cfg}}
		if got := w.cdcComponents(); len(got) != 0 {
			t.Errorf("%+v: %d components", cfg, len(got))
		}
	}
}

func TestCDCWhichChangesMatter(t *testing.T) {
	owners := map[string]bool{"005rep": true}
	tests := []struct {
		ev   salesforce.ChangeEvent
		want bool
	}{
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeCreate, OwnerID: "005rep"}, true},
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeCreate, OwnerID: "005other"}, false},
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeUndelete, OwnerID: "005other"}, false},
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeUpdate}, true},                      // owner unchanged, unknown
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeUpdate, OwnerID: "005other"}, true}, // moved away from a rep, maybe
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeDelete}, true},
		{salesforce.ChangeEvent{ChangeType: "GAP_OVERFLOW"}, true},
		// Tandem's own write, and another app's.
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeUpdate, Origin: "com/salesforce/api/rest/62.0;client=TandemTest"}, false},
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeCreate, OwnerID: "005rep", Origin: "com/salesforce/api/rest/62.0;client=TandemTest"}, false},
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeUpdate, Origin: "com/salesforce/api/soap/62.0;client=DataLoader"}, true},
		{salesforce.ChangeEvent{ChangeType: salesforce.ChangeUpdate, Origin: "com/salesforce/api/rest/62.0"}, true},
	}
	for _, tc := range tests {
		if got := matters(tc.ev, owners, "TandemTest"); got != tc.want {
			t.Errorf("%s owned by %q: %v, want %v", tc.ev.ChangeType, tc.ev.OwnerID, got, tc.want)
		}
	}
}

func TestCDCIgnoresTandemsOwnWrites(t *testing.T) {
	e := newCDCEnv(t)
	if err := e.sim.AddConnectedApp(sfsim.ConnectedApp{ClientID: "cc-app", ClientSecret: "cc-secret", ExecutionUserID: e.rep1}); err != nil {
		t.Fatal(err)
	}
	base := e.org.GetSalesforce().GetMyDomainUrl()
	resp, err := http.PostForm(base+"/services/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cc-app"}, "client_secret": {"cc-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// patch retitles the contact through the REST API as the client named.
	patch := func(client, title string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, base+"/services/data/v"+e.sim.APIVersion()+"/sobjects/Contact/"+e.contactID,
			strings.NewReader(`{"Title":"`+title+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Sforce-Call-Options", "client="+client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH as %s: %s", client, resp.Status)
		}
	}
	e.notDue()
	e.startCDC()

	// Tandem's own write (its client name, TandemTest here) is handled without a wake.
	patch("TandemTest", "Written by Tandem")
	e.waitFor("the event handled", func() bool { return string(e.storedReplay()) == string(e.sim.LatestReplayID()) })
	if e.due() {
		t.Error("Tandem's own write made the org due")
	}
	// Another app's write wakes the org.
	patch("DataLoader", "Written by someone else")
	e.waitFor("wake for another app's write", e.due)
}

// cdcReplica is one salesforce-worker replica's CDC component, running.
type cdcReplica struct {
	c      *cdc
	cancel context.CancelFunc
	done   chan error
}

// replica starts another replica's CDC component on the same Redis and simulator, configured
// as the environment's and then by adjust; it is stopped when the test ends.
func (e *cdcEnv) replica(adjust func(*CDCConfig)) *cdcReplica {
	e.t.Helper()
	r := &cdcReplica{c: e.w.newCDC()}
	if adjust != nil {
		adjust(&r.c.cfg)
	}
	ctx, cancel := context.WithCancel(e.t.Context())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.c.run(ctx) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop stops the replica as a shutdown does, and waits for it.
func (r *cdcReplica) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("CDC component: %v", err)
	}
}

// tried waits for the replica to go over the orgs passes more times: to have tried, since the
// call, for the watch lease of every org it does not hold.
func (r *cdcReplica) tried(t *testing.T, passes int64) {
	t.Helper()
	from := r.c.passes.Load()
	poll.Until(t, "the replica to go over the orgs again", func() bool { return r.c.passes.Load() >= from+passes })
}

// subscribers waits for the simulator to have n subscribers, and made subscriptions made in all.
func (e *cdcEnv) subscribers(within time.Duration, what string, n, made int) {
	e.t.Helper()
	poll.Within(e.t, within, what, func() bool {
		return e.sim.PubSubSubscribers() == n && e.sim.PubSubSubscriptionsMade() == made
	})
}

// edited edits the contact as a rep would, and waits for the org to be due.
func (e *cdcEnv) edited(title, what string) {
	e.t.Helper()
	e.notDue()
	if err := e.sim.Update("Contact", e.contactID, map[string]any{"Title": title}, e.rep1); err != nil {
		e.t.Fatal(err)
	}
	poll.Within(e.t, 5*time.Second, what, e.due)
}

// TestCDCOneReplicaSubscribesPerOrg: two replicas started together make one Pub/Sub
// subscription for the org, not two: the one holding the org's watch lease subscribes; the
// other keeps trying.
func TestCDCOneReplicaSubscribesPerOrg(t *testing.T) {
	e := newCDCEnv(t)
	a, b := e.replica(nil), e.replica(nil)
	e.subscribers(20*time.Second, "one subscription", 1, 1)
	a.tried(t, 3)
	b.tried(t, 3)
	if made := e.sim.PubSubSubscriptionsMade(); made != 1 {
		t.Fatalf("%d subscriptions made by two replicas, want 1", made)
	}
	if n := e.sim.PubSubSubscribers(); n != 1 {
		t.Fatalf("%d subscribers, want 1", n)
	}
	e.edited("Rear Admiral", "the org woken by an edit")
}

// TestCDCHandsTheOrgOverOnStop: a replica that stops releases the org's watch lease, and the
// other subscribes at once — the lease lasts far longer than the test waits — resuming after
// the stored replay id, so that an edit made in between still wakes the org.
func TestCDCHandsTheOrgOverOnStop(t *testing.T) {
	e := newCDCEnv(t)
	longLease := func(c *CDCConfig) { c.LeaseTTL = time.Hour }
	holder := e.replica(longLease)
	e.subscribers(20*time.Second, "the holder's subscription", 1, 1)
	standby := e.replica(longLease)
	standby.tried(t, 3)
	if made := e.sim.PubSubSubscriptionsMade(); made != 1 {
		t.Fatalf("%d subscriptions made before the handover, want 1", made)
	}
	e.edited("Commodore", "the org woken through the holder")
	poll.Until(t, "the holder to store the replay id", func() bool { return string(e.storedReplay()) == string(e.sim.LatestReplayID()) })

	holder.stop(t)
	if n := e.sim.PubSubSubscribers(); n > 1 {
		t.Fatalf("%d subscribers after the holder stopped", n)
	}
	// An edit while the org changes hands: the standby resumes after the holder's replay id.
	e.edited("Rear Admiral", "the org woken through the replica that took over")
	e.subscribers(10*time.Second, "the standby's subscription", 1, 2)
	e.edited("Admiral", "the org woken by a later edit")
}

// TestCDCTakesOverFromADeadHolder: a replica killed while it holds the org's watch lease never
// releases it (here the test holds it and goes away); another replica subscribes once the lease
// expires — not before, and without waiting for its own refresh or its own lease's renewal
// cadence, both far longer.
func TestCDCTakesOverFromADeadHolder(t *testing.T) {
	e := newCDCEnv(t)
	const ttl = 2 * time.Second
	if _, err := e.st.AcquireWatchLease(t.Context(), testOrg, cdcRole, ttl); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	standby := e.replica(func(c *CDCConfig) { c.Refresh, c.LeaseTTL = time.Hour, time.Hour })
	standby.tried(t, 1)
	if time.Since(died) < ttl {
		if made := e.sim.PubSubSubscriptionsMade(); made != 0 {
			t.Fatalf("%d subscriptions made while the dead holder's lease lasted", made)
		}
	}
	e.subscribers(ttl+3*time.Second, "the standby to take over within the lease's TTL", 1, 1)
	if took := time.Since(died); took < ttl {
		t.Fatalf("subscribed %s after the holder died, before its %s lease expired", took, ttl)
	} else {
		t.Logf("taken over %s after the holder died (lease TTL %s)", took, ttl)
	}
	e.edited("Commodore", "the org woken through the replica that took over")
}

// TestCDCStopsWhenItLosesTheLease: a holder whose lease another replica took (as after it
// paused past the TTL) ends its subscription as soon as its renewal fails, and takes the org
// back once the lease is free again.
func TestCDCStopsWhenItLosesTheLease(t *testing.T) {
	e := newCDCEnv(t)
	e.replica(func(c *CDCConfig) { c.LeaseTTL = time.Second })
	e.subscribers(20*time.Second, "the holder's subscription", 1, 1)

	ctx := t.Context()
	if err := e.st.Client().Del(ctx, "tandem:{"+testOrg+"}:lease:"+cdcRole).Err(); err != nil {
		t.Fatal(err)
	}
	thief, err := e.st.AcquireWatchLease(ctx, testOrg, cdcRole, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.subscribers(10*time.Second, "the loser to end its subscription", 0, 1)

	if err := thief.Release(ctx); err != nil {
		t.Fatal(err)
	}
	e.subscribers(10*time.Second, "the replica to take the released lease back", 1, 2)
}

// TestCDCSubscribesOnlyForItsPoolsOrgs: an org served by the workers of pool "big" gets its
// Pub/Sub subscription from a replica of that pool, never from one of the default pool.
func TestCDCSubscribesOnlyForItsPoolsOrgs(t *testing.T) {
	e := newCDCEnv(t)
	org, err := e.st.GetOrg(t.Context(), testOrg)
	if err != nil {
		t.Fatal(err)
	}
	org.WorkerPool = "big"
	if _, err := e.st.PutOrg(t.Context(), org); err != nil {
		t.Fatal(err)
	}
	shared := e.replica(nil)
	shared.tried(t, 3)
	if made := e.sim.PubSubSubscriptionsMade(); made != 0 {
		t.Fatalf("a replica of the default pool made %d subscriptions for an org of pool big", made)
	}
	shared.stop(t)
	e.w.cfg.Pool = "big"
	e.replica(nil)
	e.subscribers(20*time.Second, "the big pool's replica to subscribe", 1, 1)
}

// TestCDCTakeoverWithoutReplayIDWakesTheOrg: a holder that stopped, or died, before it stored
// any replay id (it does with the first event or keepalive, every 270 seconds) leaves nothing to
// resume from. The replica that takes over subscribes from the latest event, which would never
// show a change made while nobody was subscribed: it wakes the org instead, so that a poll reads
// the change within seconds, not at the poll interval an hour later. An org's first
// subscription does not wake it.
func TestCDCTakeoverWithoutReplayIDWakesTheOrg(t *testing.T) {
	for _, died := range []bool{false, true} {
		name := map[bool]string{false: "holder stopped", true: "holder died"}[died]
		t.Run(name, func(t *testing.T) {
			e := newCDCEnv(t)
			e.notDue()
			longLease := func(c *CDCConfig) { c.LeaseTTL = time.Hour }
			holder := e.replica(longLease)
			e.subscribers(20*time.Second, "the holder's subscription", 1, 1)
			holder.tried(t, 3)
			if e.due() {
				t.Fatal("the org's first subscription made it due")
			}
			holder.stop(t)
			const ttl = 2 * time.Second
			if died {
				// As if the holder had died holding the lease: it expires instead of being released.
				if _, err := e.st.AcquireWatchLease(t.Context(), testOrg, cdcRole, ttl); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.sim.Update("Contact", e.contactID, map[string]any{"Title": "Commodore"}, e.rep1); err != nil {
				t.Fatal(err)
			}
			if e.due() || len(e.storedReplay()) > 0 {
				t.Fatalf("due %v, replay id %x stored, while nobody was subscribed", e.due(), e.storedReplay())
			}
			e.replica(longLease)
			e.subscribers(ttl+10*time.Second, "the standby to take over", 1, 2)
			poll.Within(t, 5*time.Second, "the org woken by the replica that took it over", e.due)

			// Later changes wake it through the subscription.
			e.edited("Rear Admiral", "the org woken by a later edit")
		})
	}
}

func TestCDCLeavesOutUsersWhoseMailboxAnotherOrgSyncs(t *testing.T) {
	e := newCDCEnv(t)
	c := &cdc{w: e.w}
	ctx := t.Context()
	before, err := c.syncing(ctx, testOrg)
	if err != nil {
		t.Fatal(err)
	}
	if !before[tandemv1.RecordKind_RECORD_KIND_CONTACT][e.rep1] {
		t.Fatalf("rep1 does not sync contacts to begin with: %v", before)
	}
	u, _ := e.sim.Get("User", e.rep1)
	if _, err := e.w.st.ClaimMailboxes(ctx, "00Dotherorg0000001", []string{fmt.Sprint(u["Email"])}); err != nil {
		t.Fatal(err)
	}
	after, err := c.syncing(ctx, testOrg)
	if err != nil {
		t.Fatal(err)
	}
	if after[tandemv1.RecordKind_RECORD_KIND_CONTACT][e.rep1] || !after[tandemv1.RecordKind_RECORD_KIND_CONTACT][e.rep2] {
		t.Fatalf("with rep1's mailbox synced by another org, the syncing users are %v; want rep2 only", after)
	}
}
