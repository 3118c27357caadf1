// Package scheduler decides when each org and user syncs. Every tick it starts the cycles that
// are due — claiming each org's next cycle atomically in Redis, so any number of replicas never
// start one twice — and publishes the cycle's jobs: one Salesforce job per org (Salesforce is
// polled for all of an org's syncing users at once) and one Exchange job per due user. Users
// whose Exchange reads keep failing are backed off, and suspended once they fail permanently
// (then only probed now and then); users marked for reset have their ledger cleared and are read
// in full. A mailbox is synced by one org at a time: a user whose mailbox another org already
// syncs is left out of its org's cycles until that org stops syncing it (mailboxes.go).
package scheduler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"golang.org/x/sync/errgroup"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Config is the scheduler's settings.
type Config struct {
	// Platform is the connections and runtime settings every service shares.
	Platform platform.Config
	// Tick is how often due orgs are looked for.
	Tick time.Duration
	// Interval is how often an org syncs when its settings do not say.
	Interval time.Duration
	// Jitter spreads cycles by up to this share of the interval, so orgs set up together do not
	// stay in lockstep.
	Jitter float64
	// StallCycles: a user whose last reconciled cycle is this many cycles behind is read in
	// full, which restarts the chain of reads if a page was ever lost.
	StallCycles uint64
	// StallAfter is how long a user's reconciliation must also have been StallCycles behind
	// before it counts as stalled: notifications start cycles back to back, and a dozen cycles
	// may pass while one long Salesforce poll runs. Zero judges by cycles alone.
	StallAfter time.Duration
	// PoolCleanup is how often the consumers of worker pools no org uses are looked for; one
	// found unused and idle on two looks in a row is deleted (pools.go). Zero turns it off.
	PoolCleanup time.Duration
}

// RegisterFlags registers the scheduler's flags, the platform's included.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Platform.RegisterFlags(fs)
	fs.DurationVar(&c.Tick, "tick", time.Second, "how often to look for orgs whose cycle is due")
	fs.DurationVar(&c.Interval, "sync-interval", 5*time.Minute, "how often an org syncs when its settings do not say")
	fs.Float64Var(&c.Jitter, "jitter", 0.1, "random spread of cycle starts, as a share of the interval (0..0.5)")
	fs.Uint64Var(&c.StallCycles, "stall-cycles", 10, "read a user in full when reconciliation is this many cycles behind")
	fs.DurationVar(&c.StallAfter, "stall-after", time.Minute, "read a user in full only once reconciliation has been --stall-cycles behind for this long (0: at once)")
	fs.DurationVar(&c.PoolCleanup, "pool-cleanup", 10*time.Minute, "how often to look for worker pools no org uses, whose idle consumers are deleted on the second look (0: never)")
}

// Validate checks the settings.
func (c *Config) Validate() error {
	var errs []error
	if c.Tick <= 0 {
		errs = append(errs, errors.New("--tick must be positive"))
	}
	if c.Interval <= 0 {
		errs = append(errs, errors.New("--sync-interval must be positive"))
	}
	if c.Jitter < 0 || c.Jitter > 0.5 {
		errs = append(errs, fmt.Errorf("--jitter %v outside 0..0.5", c.Jitter))
	}
	if c.StallCycles < 2 {
		errs = append(errs, errors.New("--stall-cycles must be at least 2"))
	}
	if c.StallAfter < 0 {
		errs = append(errs, errors.New("--stall-after must not be negative"))
	}
	if c.PoolCleanup < 0 {
		errs = append(errs, errors.New("--pool-cleanup must not be negative"))
	}
	return errors.Join(errs...)
}

// Publisher publishes jobs.
type Publisher interface {
	Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error
}

// Queue tells how many messages the bus holds on a subject, and how many Exchange jobs for each
// of an org's users.
type Queue interface {
	Stored(ctx context.Context, subject string) (uint64, error)
	ExchangeJobsStored(ctx context.Context, orgID, pool string) (map[string]uint64, error)
}

// Scheduler starts sync cycles.
type Scheduler struct {
	cfg    Config
	p      *platform.Platform
	st     *store.Store
	pub    Publisher
	queue  Queue
	led    *ledger.Ledger
	sync   *engine.Syncer
	status *status.Store
	log    *slog.Logger
	tracer trace.Tracer
	now    func() time.Time
	pools  Pools

	// retirable are the worker pools the last RetirePools found unused with idle consumers,
	// whose consumers the next deletes if it finds them so again.
	retireMu  sync.Mutex
	retirable map[string]bool

	// behind holds when each user whose reconciliation is StallCycles behind was first seen so
	// without progress (see stalled). A scheduler that takes over starts afresh, which only
	// delays the net.
	behindMu sync.Mutex
	behind   map[store.UserKey]lag
}

// lag is when a user's reconciliation was first seen StallCycles behind, and the last cycle
// it had reconciled then.
type lag struct {
	since      time.Time
	reconciled uint64
}

// New returns a scheduler on the platform's store and bus.
func New(cfg Config, p *platform.Platform) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Scheduler{
		cfg: cfg, p: p, st: p.Store, pub: p.Bus, queue: p.Bus, pools: p.Bus, led: ledger.New(p.Store),
		sync:   engine.New(p.Store, p.Bus, engine.Options{Logger: p.Logger}),
		status: status.New(p.Store), log: p.Logger.With(slog.String("component", "scheduler")), now: time.Now,
		tracer: newTracer(p.Telemetry), behind: map[store.UserKey]lag{},
	}, nil
}

// Components returns the scheduler's components: the tick loop, the listener that starts
// woken orgs' cycles without waiting for a tick (wake.go), and, unless it is turned off, the
// loop that deletes the consumers of worker pools no org uses (pools.go).
func (s *Scheduler) Components() []lifecycle.Component {
	out := []lifecycle.Component{{Name: "scheduler", Run: s.loop}, {Name: "scheduler-wakes", Run: s.wakes}}
	if s.cfg.PoolCleanup > 0 {
		out = append(out, lifecycle.Component{Name: "scheduler-pools", Run: s.poolsLoop})
	}
	return out
}

func (s *Scheduler) loop(ctx context.Context) error {
	return lifecycle.Every(ctx, s.cfg.Tick, s.Tick, func(err error) {
		s.log.ErrorContext(ctx, "schedule", slog.Any("error", err))
	})
}

// Tick starts every due org's cycle. Orgs are handled in random order each tick, so that no
// tenant is always served first.
func (s *Scheduler) Tick(ctx context.Context) error {
	orgs, err := s.st.ListOrgs(ctx)
	if err != nil {
		return err
	}
	rand.Shuffle(len(orgs), func(i, j int) { orgs[i], orgs[j] = orgs[j], orgs[i] })
	var errs []error
	for _, org := range orgs {
		if !org.GetEnabled() {
			continue
		}
		if err := s.scheduleOrg(ctx, org); err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", org.GetOrgId(), err))
		}
	}
	return errors.Join(errs...)
}

func (s *Scheduler) interval(org *tandemv1.Org) time.Duration {
	d := s.baseInterval(org)
	if s.cfg.Jitter > 0 {
		spread := time.Duration(float64(d) * s.cfg.Jitter)
		d += rand.N(2*spread+1) - spread
	}
	return d
}

// baseInterval is the org's sync interval, before jitter.
func (s *Scheduler) baseInterval(org *tandemv1.Org) time.Duration {
	if n := org.GetSyncIntervalSeconds(); n > 0 {
		return time.Duration(n) * time.Second
	}
	return s.cfg.Interval
}

// pollInterval is how long a mailbox whose notifications report no change may go unread
// (SyncJob.poll_interval): the org's shortest interval once jittered, so that a mailbox read
// at a cycle the interval started is read again at the next such cycle. Whatever its
// notifications say, a mailbox is read at least once in two intervals.
func (s *Scheduler) pollInterval(org *tandemv1.Org) time.Duration {
	return time.Duration(float64(s.baseInterval(org)) * (1 - s.cfg.Jitter))
}

func (s *Scheduler) scheduleOrg(ctx context.Context, org *tandemv1.Org) error {
	orgID := org.GetOrgId()
	now := s.now()
	usage, err := s.status.SalesforceUsage(ctx, orgID)
	if err != nil {
		return err
	}
	if usage.GetBackedOffUntil().AsTime().After(now) {
		// Salesforce has the org backed off (daily limit or Tandem's reserve): cycles would only
		// queue up behind the Salesforce job.
		return nil
	}
	// A cycle claimed earlier whose jobs did not all go out (a failed publish, or a claimant
	// that died) is published before any new cycle is claimed: a claim never drops a cycle.
	claimed, ok, err := s.st.ResumeCycle(ctx, orgID, now)
	if err != nil {
		return err
	}
	resumed := ok
	if ok {
		s.log.InfoContext(ctx, "publishing the jobs of a cycle claimed earlier", slog.String("org", orgID), slog.Uint64(telemetry.KeyCycle, claimed.Cycle))
	} else {
		claimed, ok, err = s.st.ClaimNextCycle(ctx, orgID, now, now.Add(s.interval(org)))
		if err != nil || !ok {
			return err
		}
	}
	cycle, next := claimed.Cycle, claimed.NextAt
	ctx = telemetry.WithScope(ctx, orgID, "")
	ctx, span := s.cycleSpan(ctx, orgID, claimed, resumed)
	published, err := s.startCycle(ctx, org, cycle, jobTag(claimed), now, next)
	if !published {
		// Left in the outbox: the next tick publishes the cycle again.
		err = errors.Join(err, s.st.ReleaseCycle(ctx, orgID, cycle))
	} else {
		err = errors.Join(err, s.st.CyclePublished(ctx, orgID, cycle))
	}
	endSpan(span, err)
	return err
}

// jobTag names a claimed cycle in its jobs' message ids: its number and when it was claimed. A
// resumed cycle keeps both, so publishing it again is de-duplicated by the bus; a cycle numbered
// again after the schedule was lost has another claim time, so its jobs are never mistaken for
// the jobs of the cycle that had its number before (within the bus's duplicate window).
func jobTag(c store.Schedule) string {
	return fmt.Sprintf("%d@%d", c.Cycle, c.StartedAt.UnixMilli())
}

// startCycle publishes a claimed cycle's jobs (tag names the cycle in their message ids, see
// jobTag). Publishing it again publishes the same jobs under the same message ids, which the bus
// de-duplicates. published is false when a job may
// not have gone out (the cycle must be published again); err also reports what went wrong for
// single users, whom the cycle skips.
func (s *Scheduler) startCycle(ctx context.Context, org *tandemv1.Org, cycle uint64, tag string, now, next time.Time) (published bool, err error) {
	orgID := org.GetOrgId()
	began := time.Now()
	// The jobs go to the workers of the org's pool, read with the org's settings (ListOrgs).
	pool := store.WorkerPool(org)
	assigned, err := s.st.ListAssignments(ctx, orgID)
	if err != nil {
		return false, err
	}
	resets, err := s.st.ListResets(ctx, orgID)
	if err != nil {
		return false, err
	}
	// Which of the org's syncing users have their mailbox (mailboxes.go). Without the claims
	// nobody's mailbox is known to be the org's: the cycle is published again next tick.
	holders, err := s.claimMailboxes(ctx, orgID, assigned)
	if holders == nil {
		return false, err
	}

	sfJob := &tandemv1.SyncJob{OrgId: orgID, System: tandemv1.System_SYSTEM_SALESFORCE, Cycle: cycle, ScheduledAt: timestamppb.New(now)}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// Each user's part takes a few Redis round trips (status, scheduling state, reset, gaps) and
	// a publish: one user after the other, the cycle of an org of a hundred reps took seconds to
	// start under load, and one of thousands would take minutes. They are prepared, and their
	// jobs published, cycleConcurrency at a time; the Salesforce job lists the users in the
	// order assigned.
	// The users whose Exchange job of an earlier cycle is still queued or under way: one
	// request for the whole org. Without the answer (NATS restarting), every user gets a job.
	queued, err := s.queue.ExchangeJobsStored(ctx, orgID, pool)
	if err != nil {
		s.log.WarnContext(ctx, "cannot tell which mailboxes' reads are still queued; every mailbox is read", slog.Any("error", err))
	}
	parts := make([]userCycle, len(assigned))
	var prep errgroup.Group
	prep.SetLimit(cycleConcurrency)
	for i, a := range assigned {
		prep.Go(func() error {
			id := a.User.GetUserId()
			parts[i] = s.prepareUser(ctx, org, pool, a, holders, resets[id], queued[id] > 0, cycle, tag, now, next)
			return nil
		})
	}
	_ = prep.Wait()          // every part reports its own errors
	var back []store.UserKey // users back in the Salesforce job after a suspension
	// The reps' Exchange jobs go out after the org's Salesforce job: the org's poll, one read for
	// every rep, is what a cycle waits for longest, and publishing a hundred reps' jobs first
	// would start it seconds later.
	var exchangeJobs []func() error
	for _, part := range parts {
		errs = append(errs, part.errs...)
		if part.job != nil {
			exchangeJobs = append(exchangeJobs, part.job)
		}
		if !part.polled {
			continue
		}
		for _, k := range part.kinds {
			if !slices.Contains(sfJob.Kinds, k) {
				sfJob.Kinds = append(sfJob.Kinds, k)
			}
		}
		sfJob.UserIds = append(sfJob.UserIds, part.uk.UserID)
		if part.fullSalesforce {
			sfJob.FullUserIds = append(sfJob.FullUserIds, part.uk.UserID)
		}
		if part.back {
			back = append(back, part.uk)
		}
	}
	// The Salesforce job also goes out without users: it refreshes the org's user directory,
	// which is how a new org learns its users.
	sfPublished, sfErr := s.salesforceJob(ctx, orgID, pool, sfJob, tag, back)
	publishErrs := make([]error, len(exchangeJobs))
	var publish errgroup.Group
	publish.SetLimit(cycleConcurrency)
	for i, job := range exchangeJobs {
		publish.Go(func() error {
			publishErrs[i] = job()
			return nil
		})
	}
	_ = publish.Wait() // publishErrs holds the errors
	publishFailed := slices.ContainsFunc(publishErrs, func(err error) bool { return err != nil })
	s.log.DebugContext(ctx, "cycle started", slog.Uint64(telemetry.KeyCycle, cycle), slog.Int("users", len(sfJob.GetUserIds())),
		slog.Duration("took", time.Since(began)))
	return sfPublished && !publishFailed, errors.Join(append(append(errs, publishErrs...), sfErr)...)
}

// cycleConcurrency is how many users' parts of a cycle the scheduler prepares, and how many of
// their Exchange jobs it publishes, at once.
const cycleConcurrency = 32

// userCycle is one user's part of a cycle (prepareUser).
type userCycle struct {
	uk store.UserKey
	// polled says the user is in the org's Salesforce job, for kinds; fullSalesforce that the
	// poll reads the user in full, back that the user is back from a suspension.
	polled, fullSalesforce, back bool
	kinds                        []tandemv1.RecordKind
	// job publishes the user's Exchange job (or the probe of a suspended user); nil for none.
	job func() error
	// errs are what went wrong for the user, whom the cycle skips where it must.
	errs []error
}

// prepareUser records the scheduler's status of one assigned user and decides the user's part of
// the cycle: whether the org's poll reads the user, and in full, and the user's Exchange job.
func (s *Scheduler) prepareUser(ctx context.Context, org *tandemv1.Org, pool string, a store.Assignment, holders map[string]string,
	rs tandemv1.ResetStatus, jobQueued bool, cycle uint64, tag string, now, next time.Time,
) userCycle {
	orgID := org.GetOrgId()
	user, cfg := a.User, a.Config
	uk := store.UserKey{OrgID: orgID, UserID: user.GetUserId()}
	out := userCycle{uk: uk}
	kinds := store.SyncedKinds(cfg)
	part := &tandemv1.UserStatus{
		Email: user.GetEmail(), ConfigurationId: cfg.GetId(), NextSyncAt: timestamppb.New(next),
		AssignedToActiveConfiguration: tandemv1.CheckResult_CHECK_RESULT_FAILED,
	}
	if len(kinds) > 0 {
		part.AssignedToActiveConfiguration = tandemv1.CheckResult_CHECK_RESULT_PASSED
		if h := holders[store.MailboxAddress(user.GetEmail())]; h != "" && h != orgID {
			part.MailboxClaimedByOrg = h
		}
	}
	if part.MailboxClaimedByOrg != "" {
		if err := s.leaveOut(ctx, uk, part); err != nil {
			out.errs = append(out.errs, err)
		}
	}
	if err := s.status.Put(ctx, uk, status.PartScheduler, part); err != nil {
		out.errs = append(out.errs, err)
	}
	if part.AssignedToActiveConfiguration != tandemv1.CheckResult_CHECK_RESULT_PASSED || part.MailboxClaimedByOrg != "" {
		// Not synced, or its mailbox is another org's: no job reads it.
		return out
	}
	sch, err := s.status.Scheduling(ctx, uk)
	if err != nil {
		out.errs = append(out.errs, err)
		return out
	}
	lifted := status.LiftedAt(status.SettingsChanged(org, cfg), sch.Admin)
	if status.Suspended(sch.Exchange, lifted) {
		out.job = func() error { return s.probe(ctx, uk, pool, sch, cycle, tag, kinds, now) }
		return out
	}
	full, err := s.fullReads(ctx, uk, pool, rs, cycle, kinds)
	if err != nil {
		out.errs = append(out.errs, err)
		return out
	}
	if sch.LeftOut {
		// Back from a suspension: the org's incremental polls went on without the user, so
		// its Salesforce side is read in full.
		full.salesforce = true
		out.back = true
	}
	out.polled, out.fullSalesforce, out.kinds = true, full.salesforce, kinds
	// A mailbox is not read again while an earlier read is still to come (its job queued or
	// under way), nor while the user's first sync waits for its Salesforce side: another read
	// would only queue behind it, and read what the next one reads anyway. The next cycle's
	// read continues from the last, so nothing is missed; the Salesforce side is read as usual.
	// A full read the user needs goes out whatever.
	if !full.exchange && (jobQueued || full.exchangeUnplanned) {
		why := "an earlier Exchange job of the user is still queued or under way"
		if !jobQueued {
			why = "the user's first Exchange read is not planned yet"
		}
		s.log.DebugContext(ctx, "this cycle does not read the mailbox", slog.String("user", uk.UserID),
			slog.Uint64(telemetry.KeyCycle, cycle), slog.String("reason", why))
		return out
	}
	out.job = func() error {
		return s.exchangeJob(ctx, uk, pool, sch.Exchange, cycle, tag, kinds, full.exchange, s.pollInterval(org), now)
	}
	return out
}

// salesforceJob publishes a cycle's Salesforce job, unless the org's last poll is still running
// (then the cycle reads Exchange only), and then takes the users back from a suspension (back)
// off the list of those left out. published is false when the cycle's jobs must go out again.
func (s *Scheduler) salesforceJob(ctx context.Context, orgID, pool string, job *tandemv1.SyncJob, tag string, back []store.UserKey) (published bool, err error) {
	subject, err := bus.SalesforceJobSubject(orgID, pool)
	if err != nil {
		return false, err
	}
	if poll, err := s.pollRunning(ctx, orgID, subject, job); err != nil || poll {
		return err == nil, err
	}
	if err := s.pub.Publish(ctx, subject, job, bus.MsgID(orgID, "salesforce", tag)); err != nil {
		return false, err
	}
	// Only once the full read is on its way: otherwise the next cycle asks for it again.
	var errs []error
	for _, uk := range back {
		if err := s.status.ClearLeftOut(ctx, uk); err != nil {
			errs = append(errs, err)
		}
	}
	return true, errors.Join(errs...)
}

// pollRunning reports whether the org's Salesforce job of an earlier cycle is still on the bus
// (queued, or taken by a worker and not yet done), in which case job, an incremental poll, is
// not published. A poll reads from the org's cursor, which moves only when a poll ends: a second
// poll started meanwhile would read the same window again (at scale, the echo of every write
// of the first sync, once per cycle) and compete with the first for the org's API allocation.
// Skipping it loses nothing: the next poll reads from where the running one ends, and names it
// as the read it continues from, so the reconciler counts the skipped cycles read (see
// engine.advance); a skipped cycle leaves no pages behind to be taken for a lost read. A job
// that reads users in full (a reset, a lost read, a user back from a suspension) always goes out.
func (s *Scheduler) pollRunning(ctx context.Context, orgID, subject string, job *tandemv1.SyncJob) (bool, error) {
	if len(job.GetFullUserIds()) > 0 {
		return false, nil
	}
	n, err := s.queue.Stored(ctx, subject)
	if err != nil {
		return false, fmt.Errorf("look for org %s's running poll on %s: %w", orgID, subject, err)
	}
	if n > 0 {
		s.log.DebugContext(ctx, "the org's last Salesforce poll is still running; this cycle does not poll",
			slog.Uint64(telemetry.KeyCycle, job.GetCycle()))
	}
	return n > 0, nil
}

// sides says which sides of a user to read in full, and whether the user's last Exchange read
// is still to be planned.
type sides struct {
	exchange, salesforce bool
	// exchangeUnplanned: for every kind, the user's first sync has a complete Exchange read
	// still to be planned (see firstSyncWaits).
	exchangeUnplanned bool
}

// fullReads decides which sides of the user this cycle reads in full: both for a reset or a
// stalled reconciliation, the side whose read was lost otherwise (see gaps).
func (s *Scheduler) fullReads(ctx context.Context, uk store.UserKey, pool string, rs tandemv1.ResetStatus, cycle uint64, kinds []tandemv1.RecordKind) (sides, error) {
	full, err := s.reset(ctx, uk, rs, cycle, kinds)
	if err == nil && !full {
		full, err = s.stalled(ctx, uk, pool, cycle, kinds)
	}
	if err != nil || full {
		return sides{exchange: full, salesforce: full}, err
	}
	return s.gaps(ctx, uk, pool, cycle, kinds)
}

// reset carries out a user's reset: a user marked for reset has the ledger cleared now and is
// read in full this cycle; a reset in progress ends once the reconciler has planned a cycle
// after it. It reports whether the user must be read in full.
func (s *Scheduler) reset(ctx context.Context, uk store.UserKey, rs tandemv1.ResetStatus, cycle uint64, kinds []tandemv1.RecordKind) (bool, error) {
	switch rs {
	case tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET:
		// The ledger is cleared before the mark moves on. Clearing fails whenever the
		// reconciler holds the user's lease; the user then stays marked and the next cycle
		// tries again. The other way round, a failed clear would leave the reset in progress
		// with nothing to wait for, and the next cycle would end it: a reset that never ran.
		// Only this cycle's claimant gets here, so the ledger is cleared once per cycle.
		if err := s.sync.Reset(ctx, uk, cycle); err != nil {
			return false, fmt.Errorf("reset %s: %w", uk, err)
		}
		if _, err := s.st.BeginReset(ctx, uk); err != nil {
			// The ledger is reset but the user is still marked: the next cycle resets it
			// again, which relinks the same records.
			return false, err
		}
		s.log.InfoContext(ctx, "reset sync", slog.String("user", uk.UserID), slog.Uint64(telemetry.KeyCycle, cycle))
		return true, nil
	case tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS:
		for _, k := range kinds {
			from, reconciled, err := s.led.ResetProgress(ctx, uk, k)
			if err != nil {
				return false, err
			}
			if from == cycle {
				// This very cycle began the reset and is being published again (outbox.go):
				// its jobs are the same, full reads included.
				return true, nil
			}
			if reconciled < from {
				return false, nil
			}
		}
		_, err := s.st.ClearReset(ctx, uk)
		return false, err
	}
	return false, nil
}

// stalled reports whether the user's reconciliation is StallCycles behind for a kind: a safety
// net behind gaps (recovery.go), which finds a lost read of either side within two cycles. Only
// a user that has reconciled once is judged here; a lag cannot tell a stalled first sync from a
// user who was never read, which is why gaps looks for the evidence a lost read leaves instead.
// A lag counts only once it has lasted StallAfter as well: cycles that notifications start may
// follow each other within a second, and their count is no measure of time.
// Nor is a lag a stall while the user is still being read (see reading): a long poll of a large
// org holds the org's reconciliation back until it ends (see pollRunning), and its pages then
// wait for the reconciler; reading in full meanwhile would only add to both.
func (s *Scheduler) stalled(ctx context.Context, uk store.UserKey, pool string, cycle uint64, kinds []tandemv1.RecordKind) (bool, error) {
	for _, k := range kinds {
		from, reconciled, err := s.led.ResetProgress(ctx, uk, k)
		if err != nil {
			return false, err
		}
		since := max(reconciled, from)
		if since > 0 && cycle > since+s.cfg.StallCycles {
			if busy, err := s.reading(ctx, uk, pool); err != nil || busy {
				return false, err
			}
			if !s.behindFor(uk, since, s.cfg.StallAfter) {
				return false, nil
			}
			s.log.WarnContext(ctx, "reconciliation stalled; reading in full", slog.String("user", uk.UserID),
				slog.Uint64("reconciled", reconciled), slog.Uint64(telemetry.KeyCycle, cycle))
			s.caughtUp(uk)
			return true, nil
		}
	}
	s.caughtUp(uk)
	return false, nil
}

// behindFor reports whether the user, behind now with reconciled the last cycle reconciled, has
// been behind for at least d without reconciling a cycle since. A user whose reconciliation
// moves on is not stalled, however far behind the org's cycles: cycles that start while the
// org's long Salesforce poll runs do not poll (see pollRunning), and the user reconciles them
// only with the poll that follows it.
func (s *Scheduler) behindFor(uk store.UserKey, reconciled uint64, d time.Duration) bool {
	s.behindMu.Lock()
	defer s.behindMu.Unlock()
	now := s.now()
	l, ok := s.behind[uk]
	if !ok || l.reconciled != reconciled {
		l = lag{since: now, reconciled: reconciled}
		s.behind[uk] = l
	}
	return now.Sub(l.since) >= d
}

// caughtUp forgets that the user was behind.
func (s *Scheduler) caughtUp(uk store.UserKey) {
	s.behindMu.Lock()
	defer s.behindMu.Unlock()
	delete(s.behind, uk)
}

// probe handles a suspended user (see status.Suspended): it is left out of the org's Salesforce
// job — there is nothing to reconcile for it — and gets an Exchange job only when its next probe
// is due (the exchange-worker sets it), so that a mailbox fixed in Exchange comes back by itself.
// A good read ends the suspension; the user is then read in full from Salesforce (startCycle).
func (s *Scheduler) probe(ctx context.Context, uk store.UserKey, pool string, sch status.Scheduling, cycle uint64, tag string, kinds []tandemv1.RecordKind, now time.Time) error {
	var errs []error
	if !sch.LeftOut {
		// Without the mark, the user's first Salesforce read after the suspension would continue
		// from polls it was not part of; the gap would be found (recovery.go), only later.
		if err := s.status.MarkLeftOut(ctx, uk); err != nil {
			errs = append(errs, err)
		}
	}
	if sch.Exchange.GetNextSyncAt().AsTime().After(now) {
		return errors.Join(errs...)
	}
	s.log.InfoContext(ctx, "probing a suspended user's mailbox", slog.String("user", uk.UserID),
		slog.String("code", sch.Exchange.GetLastError().GetCode()), slog.Time("suspended_at", sch.Exchange.GetSuspendedAt().AsTime()))
	// A suspended mailbox is not watched (the notifier leaves it out): the probe reads it.
	return errors.Join(append(errs, s.publishExchangeJob(ctx, uk, pool, cycle, tag, kinds, false, 0, now))...)
}

// exchangeJob publishes a user's Exchange job unless the user is backed off after failures
// (ex is the exchange-worker's status part). A user whose suspension was lifted (ex still says
// suspended, but the caller found that it no longer holds) is due at once, back-off or not.
func (s *Scheduler) exchangeJob(ctx context.Context, uk store.UserKey, pool string, ex *tandemv1.UserStatus, cycle uint64, tag string, kinds []tandemv1.RecordKind, full bool, poll time.Duration, now time.Time) error {
	resumed := ex.GetSuspended()
	if !full && !resumed && ex.GetConsecutiveFailures() > 0 && ex.GetNextSyncAt().AsTime().After(now) {
		return nil
	}
	return s.publishExchangeJob(ctx, uk, pool, cycle, tag, kinds, full, poll, now)
}

// publishExchangeJob publishes the user's Exchange job of cycle (tag names it, see jobTag) for
// the workers of pool, the org's; poll is its poll interval (SyncJob.poll_interval), zero for
// none.
func (s *Scheduler) publishExchangeJob(ctx context.Context, uk store.UserKey, pool string, cycle uint64, tag string, kinds []tandemv1.RecordKind, full bool, poll time.Duration, now time.Time) error {
	subject, err := bus.ExchangeJobSubject(uk.OrgID, pool, uk.UserID)
	if err != nil {
		return err
	}
	job := &tandemv1.SyncJob{
		OrgId: uk.OrgID, UserId: uk.UserID, System: tandemv1.System_SYSTEM_EXCHANGE, Kinds: kinds,
		Cycle: cycle, FullResync: full, ScheduledAt: timestamppb.New(now),
	}
	if poll > 0 {
		job.PollInterval = durationpb.New(poll)
	}
	return s.pub.Publish(ctx, subject, job, bus.MsgID(uk.OrgID, uk.UserID, "exchange", tag))
}

// Run runs the scheduler alone, with its health endpoint, until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	return platform.Run(ctx, s.cfg.Platform, "scheduler", s.p, s)
}
