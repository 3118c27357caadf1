package scheduler_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
	"github.com/tandem-sync/tandem/services/scheduler"
)

const (
	orgA  = "00Dorg00000000A"
	user1 = "005user00000001"
	user2 = "005user00000002"
	user3 = "005user00000003"
	user4 = "005user00000004"
)

var (
	contactKind = tandemv1.RecordKind_RECORD_KIND_CONTACT
	eventKind   = tandemv1.RecordKind_RECORD_KIND_EVENT
)

// env is a scheduler on real NATS and Redis, with the job stream read back directly.
type env struct {
	p      *platformtest.Platform
	st     *store.Store
	status *status.Store
	sched  *scheduler.Scheduler
	// reconciler plays the reconciler: it hands the engine reads, moving the user's ledger on.
	reconciler *engine.Syncer
	// seen is the last job-stream sequence already returned by newJobs.
	seen uint64
	// running keeps the Salesforce jobs newJobs returns on the bus, as if a poll were still
	// carrying them out; otherwise they are done once returned, like the Exchange jobs.
	running bool
}

func testConfig() scheduler.Config {
	return scheduler.Config{Tick: time.Second, Interval: time.Hour, Jitter: 0, StallCycles: 3}
}

func newEnv(t *testing.T, cfg scheduler.Config) *env {
	t.Helper()
	p := platformtest.New(t)
	s, err := scheduler.New(cfg, p.Platform)
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, st: p.Store, status: status.New(p.Store), sched: s, reconciler: engine.New(p.Store, p.Bus, engine.Options{Logger: p.Logger})}
}

// job is a job read back from the stream.
type job struct {
	subject string
	job     *tandemv1.SyncJob
}

// newJobs returns the jobs published since the last call, in order, and then takes them off the
// work-queue stream as workers that are done with them would (the Salesforce jobs only unless
// e.running).
func (e *env) newJobs(t *testing.T) []job {
	t.Helper()
	jobs, subjects, last := platformtest.Published(t, e.p.JetStream, bus.StreamJobs, e.seen, func() *tandemv1.SyncJob { return &tandemv1.SyncJob{} })
	if uint64(len(jobs)) != last-e.seen {
		t.Fatalf("%d of the jobs %d to %d in the stream, want every one", len(jobs), e.seen+1, last)
	}
	out := make([]job, len(jobs))
	for i, j := range jobs {
		out[i] = job{subjects[i], j}
	}
	e.seen = last
	// Only the jobs returned: a running scheduler may have published more since.
	stream, err := e.p.JetStream.Stream(t.Context(), bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSequence(last + 1)}
	if e.running {
		opts = append(opts, jetstream.WithPurgeSubject("tandem.jobs.*.exchange.>"))
	}
	if err := stream.Purge(t.Context(), opts...); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) tick(t *testing.T) {
	t.Helper()
	if err := e.sched.Tick(t.Context()); err != nil {
		t.Fatalf("Tick: %v", err)
	}
}

func (e *env) putOrg(t *testing.T, org *tandemv1.Org) {
	t.Helper()
	if _, err := e.st.PutOrg(t.Context(), org); err != nil {
		t.Fatal(err)
	}
}

func (e *env) putUsers(t *testing.T, orgID string, users ...*tandemv1.SyncUser) {
	t.Helper()
	if err := e.st.PutUsers(t.Context(), orgID, users); err != nil {
		t.Fatal(err)
	}
}

func (e *env) putConfig(t *testing.T, orgID string, cfg *tandemv1.SyncConfiguration) *tandemv1.SyncConfiguration {
	t.Helper()
	stored, err := e.st.PutConfiguration(t.Context(), orgID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func (e *env) dueNow(t *testing.T, orgID string) {
	t.Helper()
	if err := e.st.DueNow(t.Context(), orgID); err != nil {
		t.Fatal(err)
	}
}

func (e *env) cycle(t *testing.T, orgID string) uint64 {
	t.Helper()
	sch, err := e.st.GetSchedule(t.Context(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	return sch.Cycle
}

// reconcile has the reconciler receive both sides' complete (empty) reads of cycle for kind,
// so the user's ledger counts cycle as reconciled.
func (e *env) reconcile(t *testing.T, orgID, userID string, kind tandemv1.RecordKind, cycle uint64) {
	t.Helper()
	// The reconciler takes in only cycles the org's schedule has started.
	platformtest.ClaimCycles(t, e.st, orgID, cycle)
	for _, side := range []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE} {
		if err := e.reconciler.HandleChanges(t.Context(), &tandemv1.ChangeBatch{
			OrgId: orgID, UserId: userID, Source: side, Kind: kind, Cycle: cycle,
			Last: true, PageCount: 1, FullSnapshot: true, ReadAt: timestamppb.Now(),
		}); err != nil {
			t.Fatalf("HandleChanges: %v", err)
		}
	}
	if _, reconciled, err := ledger.New(e.st).ResetProgress(t.Context(), store.UserKey{OrgID: orgID, UserID: userID}, kind); err != nil || reconciled != cycle {
		t.Fatalf("reconciled %d, %v; want %d", reconciled, err, cycle)
	}
}

func user(id string, active bool) *tandemv1.SyncUser {
	return &tandemv1.SyncUser{UserId: id, Email: id + "@acme.example", Active: active, ProfileId: "00eprofile000001"}
}

// userIn is user with an address of its own org's domain: a mailbox is synced by one org at a
// time, so tests with several orgs that all sync give each org its own mailboxes.
func userIn(orgID, id string, active bool) *tandemv1.SyncUser {
	u := user(id, active)
	u.Email = id + "@" + strings.ToLower(orgID) + ".example"
	return u
}

func org(id string) *tandemv1.Org {
	return &tandemv1.Org{OrgId: id, Name: id, Enabled: true}
}

func contactsAndEvents(name string, active bool, users ...string) *tandemv1.SyncConfiguration {
	return &tandemv1.SyncConfiguration{
		Name: name, Active: active, UserIds: users,
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
		Events:   &tandemv1.EventSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_SALESFORCE_TO_EXCHANGE},
	}
}

func contactsOnly(users ...string) *tandemv1.SyncConfiguration {
	return &tandemv1.SyncConfiguration{
		Name: "contacts", Active: true, UserIds: users,
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
	}
}

// split separates a cycle's jobs: the org's Salesforce job and the Exchange jobs by user.
func split(t *testing.T, orgID string, jobs []job) (*tandemv1.SyncJob, map[string]*tandemv1.SyncJob) {
	t.Helper()
	sf, ex := splitAny(t, orgID, jobs)
	if sf == nil {
		t.Fatalf("no Salesforce job for org %s in %v", orgID, jobs)
	}
	return sf, ex
}

// splitAny is split for a cycle that may have no Salesforce job (nil).
func splitAny(t *testing.T, orgID string, jobs []job) (*tandemv1.SyncJob, map[string]*tandemv1.SyncJob) {
	t.Helper()
	var sf *tandemv1.SyncJob
	ex := map[string]*tandemv1.SyncJob{}
	for _, j := range jobs {
		route, err := bus.ParseSubject(j.subject)
		if err != nil {
			t.Fatalf("job on %s: %v", j.subject, err)
		}
		if route.Kind != bus.KindJob || route.OrgID != orgID || j.job.GetOrgId() != orgID {
			t.Fatalf("job for org %s on %s, want org %s", j.job.GetOrgId(), j.subject, orgID)
		}
		switch route.System {
		case tandemv1.System_SYSTEM_SALESFORCE:
			if sf != nil {
				t.Fatalf("two Salesforce jobs for org %s in one cycle", orgID)
			}
			if j.job.GetSystem() != tandemv1.System_SYSTEM_SALESFORCE || j.job.GetUserId() != "" {
				t.Fatalf("Salesforce job %v on %s", j.job, j.subject)
			}
			sf = j.job
		case tandemv1.System_SYSTEM_EXCHANGE:
			if j.job.GetSystem() != tandemv1.System_SYSTEM_EXCHANGE || j.job.GetUserId() != route.UserID {
				t.Fatalf("Exchange job %v on %s", j.job, j.subject)
			}
			if ex[route.UserID] != nil {
				t.Fatalf("two Exchange jobs for %s in one cycle", route.UserID)
			}
			ex[route.UserID] = j.job
		}
	}
	return sf, ex
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestTickStartsADueCycleOnce(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	e.putOrg(t, org(orgA))
	// user1 syncs contacts and events; user2 is active without a configuration; user3 is
	// inactive; user4 is only in an inactive configuration.
	e.putUsers(t, orgA, user(user1, true), user(user2, true), user(user3, false), user(user4, true))
	cfg := e.putConfig(t, orgA, contactsAndEvents("reps", true, user1, user3))
	e.putConfig(t, orgA, contactsAndEvents("paused", false, user4))

	before := time.Now()
	e.tick(t)
	sf, ex := split(t, orgA, e.newJobs(t))
	want := &tandemv1.SyncJob{OrgId: orgA, System: tandemv1.System_SYSTEM_SALESFORCE, Cycle: 1,
		UserIds: []string{user1}, Kinds: []tandemv1.RecordKind{contactKind, eventKind}, ScheduledAt: sf.GetScheduledAt()}
	if !proto.Equal(sf, want) {
		t.Fatalf("Salesforce job = %v, want %v", sf, want)
	}
	if at := sf.GetScheduledAt().AsTime(); at.Before(before.Add(-time.Second)) || at.After(time.Now()) {
		t.Fatalf("scheduled at %v, want about now", at)
	}
	if got := sortedKeys(ex); !slices.Equal(got, []string{user1}) {
		t.Fatalf("Exchange jobs for %v, want only %s", got, user1)
	}
	// A mailbox whose notifications say nothing changed may go unread for the interval.
	wantEx := &tandemv1.SyncJob{OrgId: orgA, UserId: user1, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: 1,
		Kinds: []tandemv1.RecordKind{contactKind, eventKind}, ScheduledAt: sf.GetScheduledAt(), PollInterval: durationpb.New(time.Hour)}
	if !proto.Equal(ex[user1], wantEx) {
		t.Fatalf("Exchange job = %v, want %v", ex[user1], wantEx)
	}

	// Every user gets the scheduler's part of the status.
	for _, tc := range []struct {
		user     string
		assigned tandemv1.CheckResult
		config   string
	}{
		{user1, tandemv1.CheckResult_CHECK_RESULT_PASSED, cfg.GetId()},
		{user2, tandemv1.CheckResult_CHECK_RESULT_FAILED, ""},
		{user3, tandemv1.CheckResult_CHECK_RESULT_FAILED, ""},
		{user4, tandemv1.CheckResult_CHECK_RESULT_FAILED, ""},
	} {
		part, err := e.status.GetPart(ctx, store.UserKey{OrgID: orgA, UserID: tc.user}, status.PartScheduler)
		if err != nil {
			t.Fatal(err)
		}
		if part.GetAssignedToActiveConfiguration() != tc.assigned || part.GetConfigurationId() != tc.config {
			t.Errorf("%s: assigned %s to %q, want %s to %q", tc.user, part.GetAssignedToActiveConfiguration(), part.GetConfigurationId(), tc.assigned, tc.config)
		}
		if next := part.GetNextSyncAt().AsTime(); next.Before(before.Add(time.Hour-time.Second)) || next.After(time.Now().Add(time.Hour)) {
			t.Errorf("%s: next sync at %v, want an interval from now", tc.user, next)
		}
	}

	// Within the interval, nothing more starts.
	e.tick(t)
	if jobs := e.newJobs(t); len(jobs) != 0 {
		t.Fatalf("a second tick within the interval published %v", jobs)
	}
	if c := e.cycle(t, orgA); c != 1 {
		t.Fatalf("cycle = %d after a second tick, want 1", c)
	}

	// Once due again (a configuration change), the next cycle starts.
	e.dueNow(t, orgA)
	e.tick(t)
	sf, ex = split(t, orgA, e.newJobs(t))
	if sf.GetCycle() != 2 || ex[user1].GetCycle() != 2 {
		t.Fatalf("cycles %d and %d, want 2", sf.GetCycle(), ex[user1].GetCycle())
	}
}

// TestSalesforceJobGoesFirst: a cycle publishes the org's Salesforce job before its reps'
// Exchange jobs, so that the org's poll, which every rep's cycle waits for, starts first.
// TestPollIntervalIsTheShortestInterval: an Exchange job's poll interval is the org's own
// interval, or the scheduler's, less the jitter, so that cycles the interval starts early
// still read the mailboxes the last one read.
func TestPollIntervalIsTheShortestInterval(t *testing.T) {
	cfg := testConfig()
	cfg.Jitter = 0.2
	e := newEnv(t, cfg)
	o := org(orgA)
	o.SyncIntervalSeconds = 600
	e.putOrg(t, o)
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsAndEvents("reps", true, user1))
	e.tick(t)
	_, ex := split(t, orgA, e.newJobs(t))
	if got := ex[user1].GetPollInterval().AsDuration(); got != 480*time.Second {
		t.Errorf("poll interval %s, want 8m0s", got)
	}
}

func TestSalesforceJobGoesFirst(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true), user(user3, true))
	e.putConfig(t, orgA, contactsAndEvents("reps", true, user1, user2, user3))
	e.tick(t)
	jobs := e.newJobs(t)
	if len(jobs) != 4 || jobs[0].job.GetSystem() != tandemv1.System_SYSTEM_SALESFORCE {
		t.Fatalf("jobs published in the order %v, want the Salesforce job and then three Exchange jobs", jobs)
	}
}

// gatePublisher holds each Exchange job's publish until want of them are under way at once, or
// a while has passed, and records the most that were under way at once.
type gatePublisher struct {
	next scheduler.Publisher
	want int

	mu             sync.Mutex
	underWay, most int
	all            chan struct{} // closed once want are under way
}

func (g *gatePublisher) Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error {
	if strings.Contains(subject, ".exchange.") {
		g.mu.Lock()
		g.underWay++
		g.most = max(g.most, g.underWay)
		if g.underWay == g.want {
			close(g.all)
		}
		g.mu.Unlock()
		select {
		case <-g.all:
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		g.mu.Lock()
		g.underWay--
		g.mu.Unlock()
	}
	return g.next.Publish(ctx, subject, msg, msgID)
}

// A cycle's users are prepared and their jobs published together: one after the other, a cycle
// of a large org took minutes to start.
func TestCycleJobsArePublishedTogether(t *testing.T) {
	e := newEnv(t, testConfig())
	e.putOrg(t, org(orgA))
	users := []string{user1, user2, user3, user4}
	e.putUsers(t, orgA, user(user1, true), user(user2, true), user(user3, true), user(user4, true))
	e.putConfig(t, orgA, contactsOnly(users...))
	gate := &gatePublisher{next: e.p.Bus, want: len(users), all: make(chan struct{})}
	scheduler.SetPublisher(e.sched, gate)
	e.tick(t)
	if gate.most != len(users) {
		t.Errorf("at most %d Exchange jobs published at once, want %d", gate.most, len(users))
	}
	jobs := e.newJobs(t)
	if len(jobs) != 1+len(users) || jobs[0].job.GetSystem() != tandemv1.System_SYSTEM_SALESFORCE {
		t.Fatalf("jobs %v, want the Salesforce job and then %d Exchange jobs", jobs, len(users))
	}
	// The Salesforce job lists the users in the order assigned, whatever order they were
	// prepared in.
	if got := jobs[0].job.GetUserIds(); !slices.Equal(got, users) {
		t.Errorf("Salesforce job users %v, want %v", got, users)
	}
	var read []string
	for _, j := range jobs[1:] {
		read = append(read, j.job.GetUserId())
	}
	slices.Sort(read)
	if !slices.Equal(read, users) {
		t.Errorf("Exchange jobs for %v, want %v", read, users)
	}
}

func TestTickSkipsOrgs(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	now := time.Now()
	const (
		enabled   = "00Dorg0enabled"
		disabled  = "00Dorg0disabled"
		backedOff = "00Dorg0backedoff"
		recovered = "00Dorg0recovered"
		noUsers   = "00Dorg0nousers"
		ownPace   = "00Dorg0ownpace"
	)
	for _, id := range []string{enabled, disabled, backedOff, recovered, noUsers, ownPace} {
		o := org(id)
		o.Enabled = id != disabled
		if id == ownPace {
			o.SyncIntervalSeconds = 90
		}
		e.putOrg(t, o)
		if id != noUsers {
			e.putUsers(t, id, userIn(id, user1, true))
			e.putConfig(t, id, contactsOnly(user1))
		}
	}
	// Salesforce has backed one org off (daily limit); another's back-off is over.
	for id, until := range map[string]time.Time{backedOff: now.Add(time.Hour), recovered: now.Add(-time.Minute)} {
		if err := e.status.PutSalesforceUsage(ctx, id, &tandemv1.SalesforceApiUsage{DailyMax: 1000, Used: 1000, BackedOffUntil: timestamppb.New(until)}); err != nil {
			t.Fatal(err)
		}
	}

	e.tick(t)
	byOrg := map[string][]job{}
	for _, j := range e.newJobs(t) {
		byOrg[j.job.GetOrgId()] = append(byOrg[j.job.GetOrgId()], j)
	}
	for _, tc := range []struct {
		org       string
		wantCycle uint64
		wantUsers []string
	}{
		{enabled, 1, []string{user1}},
		{disabled, 0, nil},
		{backedOff, 0, nil},
		{recovered, 1, []string{user1}},
		// An org without users still gets its Salesforce job: it refreshes the user directory.
		{noUsers, 1, nil},
		{ownPace, 1, []string{user1}},
	} {
		t.Run(tc.org, func(t *testing.T) {
			if c := e.cycle(t, tc.org); c != tc.wantCycle {
				t.Fatalf("cycle = %d, want %d", c, tc.wantCycle)
			}
			if tc.wantCycle == 0 {
				if len(byOrg[tc.org]) != 0 {
					t.Fatalf("skipped org got jobs %v", byOrg[tc.org])
				}
				return
			}
			sf, ex := split(t, tc.org, byOrg[tc.org])
			if !slices.Equal(sf.GetUserIds(), tc.wantUsers) || !slices.Equal(sortedKeys(ex), tc.wantUsers) {
				t.Fatalf("Salesforce job users %v, Exchange jobs %v; want %v", sf.GetUserIds(), sortedKeys(ex), tc.wantUsers)
			}
		})
	}
	// An org's own interval overrides the scheduler's.
	sch, err := e.st.GetSchedule(ctx, ownPace)
	if err != nil {
		t.Fatal(err)
	}
	if d := sch.NextAt.Sub(sch.StartedAt); d != 90*time.Second {
		t.Fatalf("own-pace org's next cycle %s after the last, want 90s", d)
	}
}

func TestBackedOffUsersGetNoExchangeJob(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	now := time.Now()
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true), user(user3, true), user(user4, true))
	e.putConfig(t, orgA, contactsOnly(user1, user2, user3, user4))
	for u, part := range map[string]*tandemv1.UserStatus{
		// Failing, and not due before an hour from now.
		user1: {ConsecutiveFailures: 3, NextSyncAt: timestamppb.New(now.Add(time.Hour))},
		// Failing, but its back-off is over.
		user2: {ConsecutiveFailures: 3, NextSyncAt: timestamppb.New(now.Add(-time.Second))},
		// A future next sync without failures is no back-off.
		user3: {NextSyncAt: timestamppb.New(now.Add(time.Hour))},
		// Backed off, but marked for reset: a reset reads in full at once.
		user4: {ConsecutiveFailures: 1, NextSyncAt: timestamppb.New(now.Add(time.Hour))},
	} {
		if err := e.status.Put(ctx, store.UserKey{OrgID: orgA, UserID: u}, status.PartExchange, part); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.MarkReset(ctx, store.UserKey{OrgID: orgA, UserID: user4}); err != nil {
		t.Fatal(err)
	}

	e.tick(t)
	sf, ex := split(t, orgA, e.newJobs(t))
	if got := sortedKeys(ex); !slices.Equal(got, []string{user2, user3, user4}) {
		t.Fatalf("Exchange jobs for %v, want %s, %s and %s", got, user2, user3, user4)
	}
	// Salesforce is polled for every syncing user: a backed-off mailbox does not stop the
	// other side from being read.
	if !slices.Equal(sf.GetUserIds(), []string{user1, user2, user3, user4}) {
		t.Fatalf("Salesforce job users %v", sf.GetUserIds())
	}
	if !ex[user4].GetFullResync() || !slices.Equal(sf.GetFullUserIds(), []string{user4}) {
		t.Fatalf("reset user: Exchange job %v, Salesforce full users %v", ex[user4], sf.GetFullUserIds())
	}
}

func TestResetReadsInFull(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true))
	e.putConfig(t, orgA, contactsAndEvents("reps", true, user1, user2))
	uk := store.UserKey{OrgID: orgA, UserID: user1}
	led := ledger.New(e.st)

	// Cycle 1 is read and reconciled for both users.
	e.tick(t)
	e.newJobs(t)
	for _, u := range []string{user1, user2} {
		for _, k := range []tandemv1.RecordKind{contactKind, eventKind} {
			e.reconcile(t, orgA, u, k, 1)
		}
	}

	// The admin resets user1; the org is due at once.
	if err := e.st.MarkReset(ctx, uk); err != nil {
		t.Fatal(err)
	}
	e.dueNow(t, orgA)
	e.tick(t)
	sf, ex := split(t, orgA, e.newJobs(t))
	if sf.GetCycle() != 2 || !slices.Equal(sf.GetFullUserIds(), []string{user1}) || !slices.Equal(sf.GetUserIds(), []string{user1, user2}) {
		t.Fatalf("Salesforce job = %v, want cycle 2 reading %s in full", sf, user1)
	}
	if !ex[user1].GetFullResync() || ex[user2].GetFullResync() {
		t.Fatalf("Exchange jobs: %s full %v, %s full %v; want only %s in full", user1, ex[user1].GetFullResync(), user2, ex[user2].GetFullResync(), user1)
	}
	// The ledger is reset from this cycle (as engine.Reset does): batches of earlier cycles are
	// ignored, and nothing is reconciled since.
	for _, k := range []tandemv1.RecordKind{contactKind, eventKind} {
		from, reconciled, err := led.ResetProgress(ctx, uk, k)
		if err != nil || from != 2 || reconciled != 0 {
			t.Fatalf("%s: reset from %d, reconciled %d, %v; want from 2, reconciled 0", k, from, reconciled, err)
		}
		if _, reconciled, _ := led.ResetProgress(ctx, store.UserKey{OrgID: orgA, UserID: user2}, k); reconciled != 1 {
			t.Fatalf("%s: the other user's ledger was touched: reconciled %d", k, reconciled)
		}
	}
	if rs, err := e.st.ResetStatus(ctx, uk); err != nil || rs != tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS {
		t.Fatalf("reset status = %s, %v; want in progress", rs, err)
	}

	// While the full reads are reconciled, later cycles read incrementally and the reset stays
	// in progress.
	e.dueNow(t, orgA)
	e.tick(t)
	sf, ex = split(t, orgA, e.newJobs(t))
	if len(sf.GetFullUserIds()) != 0 || ex[user1].GetFullResync() {
		t.Fatalf("cycle 3 reads in full again: %v, %v", sf, ex[user1])
	}
	if rs, _ := e.st.ResetStatus(ctx, uk); rs != tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS {
		t.Fatalf("reset status = %s before the reset cycle was reconciled", rs)
	}
	// Once every kind has reconciled the reset cycle, the reset is over.
	e.reconcile(t, orgA, user1, contactKind, 2)
	e.dueNow(t, orgA)
	e.tick(t)
	e.newJobs(t)
	if rs, _ := e.st.ResetStatus(ctx, uk); rs != tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS {
		t.Fatalf("reset status = %s with events not reconciled yet", rs)
	}
	e.reconcile(t, orgA, user1, eventKind, 2)
	e.dueNow(t, orgA)
	e.tick(t)
	e.newJobs(t)
	if rs, _ := e.st.ResetStatus(ctx, uk); rs != tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
		t.Fatalf("reset status = %s after the reset cycle was reconciled, want none", rs)
	}
}

func TestResetWaitsForTheReconcileLease(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true))
	e.putConfig(t, orgA, contactsOnly(user1, user2))
	uk := store.UserKey{OrgID: orgA, UserID: user1}
	e.tick(t)
	e.newJobs(t)
	e.reconcile(t, orgA, user1, contactKind, 1)
	if err := e.st.MarkReset(ctx, uk); err != nil {
		t.Fatal(err)
	}

	// The reconciler is working on user1 when the reset is due: the reset cannot clear the
	// ledger now, and the user stays marked for the next cycle.
	lease, err := e.st.AcquireLease(ctx, uk, engine.LeaseRole, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.dueNow(t, orgA)
	if err := e.sched.Tick(ctx); err == nil {
		t.Fatal("Tick reported no error for a reset it could not carry out")
	}
	sf, ex := split(t, orgA, e.newJobs(t))
	if ex[user1] != nil || slices.Contains(sf.GetUserIds(), user1) || ex[user2] == nil {
		t.Fatalf("jobs during the failed reset: Salesforce %v, Exchange for %v", sf, sortedKeys(ex))
	}
	if rs, _ := e.st.ResetStatus(ctx, uk); rs != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
		t.Fatalf("reset status = %s after a failed reset, want still marked", rs)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}

	e.dueNow(t, orgA)
	e.tick(t)
	sf, ex = split(t, orgA, e.newJobs(t))
	if !ex[user1].GetFullResync() || !slices.Equal(sf.GetFullUserIds(), []string{user1}) {
		t.Fatalf("the reset was not carried out once the lease was free: %v, %v", sf, ex[user1])
	}
	from, _, err := ledger.New(e.st).ResetProgress(ctx, uk, contactKind)
	if err != nil || from != sf.GetCycle() {
		t.Fatalf("reset from %d, %v; want %d", from, err, sf.GetCycle())
	}
}

func TestStalledReconciliationReadsInFull(t *testing.T) {
	cfg := testConfig() // StallCycles 3
	for _, tc := range []struct {
		name string
		// reconciled is the user's last reconciled cycle (0: never); cycle the cycle the tick starts.
		reconciled, cycle uint64
		wantFull          bool
	}{
		{"never reconciled", 0, 6, false},
		{"within the stall window", 2, 5, false},
		{"past the stall window", 2, 6, true},
		{"far behind", 1, 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, cfg)
			e.putOrg(t, org(orgA))
			e.putUsers(t, orgA, user(user1, true))
			e.putConfig(t, orgA, contactsOnly(user1))
			if tc.reconciled > 0 {
				e.reconcile(t, orgA, user1, contactKind, tc.reconciled)
			}
			// Earlier cycles started without the user being read.
			platformtest.ClaimCycles(t, e.st, orgA, tc.cycle-1)
			e.tick(t)
			sf, ex := split(t, orgA, e.newJobs(t))
			if sf.GetCycle() != tc.cycle {
				t.Fatalf("cycle %d, want %d", sf.GetCycle(), tc.cycle)
			}
			if full := slices.Contains(sf.GetFullUserIds(), user1); full != tc.wantFull || ex[user1].GetFullResync() != tc.wantFull {
				t.Fatalf("Salesforce full %v, Exchange full %v; want %v", full, ex[user1].GetFullResync(), tc.wantFull)
			}
		})
	}
}

// stallEnv is an org whose one user reconciled cycle 2 while the org's schedule went on to
// cycle claimed, with StallCycles 3 and StallAfter. full starts the next cycle and reports
// whether it reads the user in full.
func stallEnv(t *testing.T, stallAfter time.Duration, claimed uint64) (e *env, full func() bool) {
	t.Helper()
	cfg := testConfig() // StallCycles 3
	cfg.StallAfter = stallAfter
	e = newEnv(t, cfg)
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsOnly(user1))
	e.reconcile(t, orgA, user1, contactKind, 2)
	platformtest.ClaimCycles(t, e.st, orgA, claimed)
	return e, func() bool {
		t.Helper()
		if err := e.st.DueNow(t.Context(), orgA); err != nil {
			t.Fatal(err)
		}
		e.tick(t)
		sf, ex := split(t, orgA, e.newJobs(t))
		return slices.Contains(sf.GetFullUserIds(), user1) || ex[user1].GetFullResync()
	}
}

// TestStallMustLast: with StallAfter, a user as far behind as a stall is read in full only once
// it has been so that long: a burst of cycles is no stall.
func TestStallMustLast(t *testing.T) {
	const stallAfter = 300 * time.Millisecond
	_, full := stallEnv(t, stallAfter, 5)
	if full() {
		t.Fatal("read in full as soon as it fell behind")
	}
	time.Sleep(stallAfter)
	if !full() {
		t.Fatal("not read in full after being behind for --stall-after")
	}
}

// TestStallClockRestartsOnProgress: a user far behind the org's cycles whose reconciliation
// moves on is not stalled (cycles that start during a long Salesforce poll do not poll); only a
// lag without progress for --stall-after is.
func TestStallClockRestartsOnProgress(t *testing.T) {
	const stallAfter = 300 * time.Millisecond
	e, full := stallEnv(t, stallAfter, 8)
	if full() {
		t.Fatal("read in full as soon as it fell behind")
	}
	time.Sleep(stallAfter)
	e.reconcile(t, orgA, user1, contactKind, 4) // progress, still more than 3 cycles behind
	if full() {
		t.Fatal("read in full although its reconciliation moved on within --stall-after")
	}
	time.Sleep(stallAfter)
	if !full() {
		t.Fatal("not read in full after --stall-after behind without progress")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*scheduler.Config)
		ok     bool
	}{
		{"defaults", func(*scheduler.Config) {}, true},
		{"no tick", func(c *scheduler.Config) { c.Tick = 0 }, false},
		{"negative interval", func(c *scheduler.Config) { c.Interval = -time.Second }, false},
		{"negative stall time", func(c *scheduler.Config) { c.StallAfter = -time.Second }, false},
		{"negative jitter", func(c *scheduler.Config) { c.Jitter = -0.1 }, false},
		{"jitter above half", func(c *scheduler.Config) { c.Jitter = 0.6 }, false},
		{"jitter of half", func(c *scheduler.Config) { c.Jitter = 0.5 }, true},
		{"stall after one cycle", func(c *scheduler.Config) { c.StallCycles = 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if _, err := scheduler.New(cfg, &platform.Platform{Logger: slog.New(slog.DiscardHandler)}); (err == nil) != tc.ok {
				t.Fatalf("New() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestComponentTicksUntilStopped(t *testing.T) {
	cfg := testConfig()
	cfg.Tick = 50 * time.Millisecond
	e := newEnv(t, cfg)
	e.putOrg(t, org(orgA))
	stop := e.p.Run(t, "scheduler", e.sched.Components()...)
	// Cycles start on the component's own ticks: make the org due again and again.
	var seen uint64
	poll.Until(t, "three cycles started on the component's ticks", func() bool {
		if c := e.cycle(t, orgA); c > seen {
			seen = c
			e.dueNow(t, orgA)
		}
		return seen >= 3
	})
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduler did not stop")
	}
}

// TestCyclesNumberedAgainAfterLostStateArePublished: Redis is flushed, so the schedule is lost
// and the next cycle is numbered 1 again while the bus still remembers the message ids of the
// first cycle 1 (its duplicate window is ten minutes). The new cycle's jobs must go out all the
// same: de-duplicated against the old ones, they would be dropped, and the users not read.
func TestCyclesNumberedAgainAfterLostStateArePublished(t *testing.T) {
	e := newEnv(t, testConfig())
	setUp := func() {
		e.putOrg(t, org(orgA))
		e.putUsers(t, orgA, user(user1, true))
		e.putConfig(t, orgA, contactsOnly(user1))
	}
	setUp()
	e.tick(t)
	if sf, ex := split(t, orgA, e.newJobs(t)); sf.GetCycle() != 1 || ex[user1] == nil {
		t.Fatalf("first cycle: Salesforce job %v, Exchange jobs %v", sf, ex)
	}
	if err := e.st.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	setUp()
	time.Sleep(2 * time.Millisecond) // the claim times of the two cycles 1 differ
	e.tick(t)
	sf, ex := split(t, orgA, e.newJobs(t))
	if sf.GetCycle() != 1 || ex[user1].GetCycle() != 1 {
		t.Fatalf("after the loss: Salesforce job %v, Exchange jobs %v; want cycle 1 again, for %s", sf, ex, user1)
	}
}
