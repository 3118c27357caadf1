// Package salesforceworker is the salesforce-worker service. Salesforce API calls are a scarce
// daily budget shared with everything else in an org, so it polls per org, not per user: one
// job per org and cycle reads what changed for all of the org's syncing users at once and routes
// the changes to each user as change batches. It also keeps the org's user directory, and
// carries out the writes the reconciler sends to Salesforce for each user: the write batches of
// an org's users that arrive together are combined into shared calls (combiner), as the
// integration user, unless the org's write_as makes each rep write their own records.
package salesforceworker

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/keylock"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	"github.com/tandem-sync/tandem/pkg/worker"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Config is the salesforce-worker's settings.
type Config struct {
	// Platform is the connections and runtime settings every service shares.
	Platform platform.Config
	// JobConcurrency is how many orgs' polls run at once per replica.
	JobConcurrency int
	// ApplyConcurrency is how many write batches run at once per replica.
	ApplyConcurrency int
	// ApplyLinger is how long the write batches of an org that run at once wait, once all have
	// submitted their writes, for another batch of the org to start before their writes are
	// sent together (see combiner).
	ApplyLinger time.Duration
	// ApplyMaxDelay is the longest a write batch waits for others of its org to be combined with.
	ApplyMaxDelay time.Duration
	// DirectoryRefresh is how often the org's user directory is read again.
	DirectoryRefresh time.Duration
	// ClientName goes in Sforce-Call-Options on writes, so Tandem's writes can be recognised.
	ClientName string
	// CDC configures the Change Data Capture subscriptions (cdc.go).
	CDC CDCConfig
	// Pool is the worker pool this replica serves: it takes the jobs and write batches of the
	// orgs whose worker_pool names it, and no others. Empty means the default pool.
	Pool string
	// AllowHTTP permits plain-http My Domain URLs (simulators and lab servers only).
	AllowHTTP bool
	// FullReadGroup is how many reps one query of a full read reads (salesforce.PollRequest):
	// each group's reps are reported complete as soon as it is read, so that the reconciler
	// plans them while the next group is read. 0 means DefaultFullReadGroup.
	FullReadGroup int
}

// DefaultApplyConcurrency is how many write batches a replica carries out at once by default:
// enough for the batches of many reps of an org to wait for each other and share Salesforce
// calls (see combiner). A waiting batch costs a goroutine; the calls to an org are capped by its
// max_concurrent_requests.
const DefaultApplyConcurrency = 32

// DefaultFullReadGroup is how many reps one query of a full read reads by default: at 1,000
// contacts a rep, ten pages of 2,000 rows, so that a first sync of a large org is planned in
// steps of seconds, for one more query per 25 reps.
const DefaultFullReadGroup = 25

// RegisterFlags registers the worker's flags, the platform's included.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Platform.RegisterFlags(fs)
	fs.IntVar(&c.JobConcurrency, "job-concurrency", 4, "orgs polled at once by this replica")
	fs.IntVar(&c.ApplyConcurrency, "apply-concurrency", DefaultApplyConcurrency, "write batches carried out at once by this replica (those of an org share Salesforce calls)")
	fs.DurationVar(&c.ApplyLinger, "apply-linger", DefaultApplyLinger, "how long an org's write batches running at once wait for another one to start before their writes are sent together")
	fs.DurationVar(&c.ApplyMaxDelay, "apply-max-delay", DefaultApplyMaxDelay, "the longest a write batch waits for others of its org to share Salesforce calls with")
	fs.DurationVar(&c.DirectoryRefresh, "directory-refresh", time.Hour, "how often each org's user directory is read again")
	fs.StringVar(&c.ClientName, "client-name", salesforce.DefaultClientName, "client name sent in Sforce-Call-Options on writes")
	fs.BoolVar(&c.AllowHTTP, "allow-http", false, "allow plain-HTTP Salesforce My Domain URLs (simulators and lab servers only)")
	fs.IntVar(&c.FullReadGroup, "full-read-group", DefaultFullReadGroup, "reps read by one query of a full read (a first sync, a reset); each group's reps are planned while the next group is read")
	fs.StringVar(&c.Pool, "pool", store.DefaultWorkerPool, "worker pool this replica serves: the orgs whose worker_pool names it")
	c.CDC.RegisterFlags(fs)
}

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.Pool != "" && !store.ValidWorkerPool(c.Pool) {
		return fmt.Errorf("--pool %q: a worker pool is 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit", c.Pool)
	}
	if c.JobConcurrency < 1 || c.ApplyConcurrency < 1 {
		return errors.New("concurrency must be at least 1")
	}
	if c.FullReadGroup < 0 {
		return errors.New("--full-read-group must not be negative")
	}
	if c.ApplyLinger < 0 || c.ApplyMaxDelay < 0 || c.ApplyLinger > c.ApplyMaxDelay {
		return errors.New("--apply-linger and --apply-max-delay must not be negative, and the linger must not exceed the maximum delay")
	}
	if c.DirectoryRefresh <= 0 {
		return errors.New("--directory-refresh must be positive")
	}
	if c.CDC.Refresh < 0 || c.CDC.LeaseTTL < 0 || (c.CDC.LeaseTTL > 0 && c.CDC.LeaseTTL < time.Second) {
		return errors.New("--cdc-refresh must not be negative, and --cdc-lease-ttl must be 0 (the default) or at least 1s")
	}
	return nil
}

// Connector is what the worker needs from a Salesforce connector.
type Connector interface {
	Users(ctx context.Context) ([]*tandemv1.SyncUser, error)
	Poll(ctx context.Context, req salesforce.PollRequest, emit salesforce.EmitFunc) (string, error)
	ApplyMany(ctx context.Context, kind tandemv1.RecordKind, batches []salesforce.UserCommands) []salesforce.UserResults
	SharesWrites() bool
	Usage() salesforce.Usage
}

// ConnectorFactory builds an org's Salesforce connector from its settings.
type ConnectorFactory func(org *tandemv1.Org) (Connector, error)

// RESTConnectors builds REST connectors; allowHTTP lets them use plain-http My Domain URLs.
func RESTConnectors(p *platform.Platform, clientName string, allowHTTP bool) ConnectorFactory {
	return func(org *tandemv1.Org) (Connector, error) {
		if org.GetSalesforce() == nil {
			return nil, syncerr.New(syncerr.SalesforceConfigMissing, "org %s has no Salesforce connection", org.GetOrgId())
		}
		return salesforce.NewConnector(org, salesforce.WithLogger(p.Logger), salesforce.WithClientName(clientName), salesforce.WithAllowHTTP(allowHTTP),
			salesforce.WithTracerProvider(p.Telemetry.TracerProvider), salesforce.WithMeterProvider(p.Telemetry.MeterProvider))
	}
}

// Worker is the salesforce-worker.
type Worker struct {
	cfg    Config
	p      *platform.Platform
	st     *store.Store
	bus    *bus.Bus
	status *status.Store
	conns  *store.OrgCache[Connector]
	writes *worker.Writes
	// combiner lets the apply handlers running at once for an org share Salesforce calls.
	combiner *combiner
	// polls lets one job of an org poll at a time on this replica (see handleJob).
	polls keylock.Locks[string]
	log   *slog.Logger
	now   func() time.Time
}

// New returns a worker using REST connectors.
func New(cfg Config, p *platform.Platform) (*Worker, error) {
	return NewWithConnectors(cfg, p, RESTConnectors(p, cfg.ClientName, cfg.AllowHTTP))
}

// NewWithConnectors returns a worker using connectors built by factory.
func NewWithConnectors(cfg Config, p *platform.Platform, factory ConnectorFactory) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg: cfg, p: p, st: p.Store, bus: p.Bus, status: status.New(p.Store),
		conns: store.NewOrgCache(p.Store, factory), log: p.Logger.With(slog.String("component", "salesforce-worker")), now: time.Now,
	}
	w.combiner = newCombiner(cfg.ApplyLinger, cfg.ApplyMaxDelay, p.Telemetry.TracerProvider, w.log.With(slog.String("part", "combiner")))
	w.writes = &worker.Writes{Outbox: ledger.NewOutbox(p.Store), Store: w.st, Pub: w.bus, Now: func() time.Time { return w.now() }, Log: w.log, System: "Salesforce"}
	return w, nil
}

// Components returns the job and apply consumers of the replica's worker pool, and the CDC
// subscriptions.
func (w *Worker) Components() []lifecycle.Component {
	return append(w.cdcComponents(), []lifecycle.Component{
		{Name: "salesforce-jobs", Run: func(ctx context.Context) error {
			return w.bus.Consume(ctx, bus.PoolConsumer(bus.ConsumerSalesforceJobs, store.PoolOrDefault(w.cfg.Pool)), w.handleJob, bus.WithConcurrency(w.cfg.JobConcurrency))
		}},
		{Name: "salesforce-apply", Run: func(ctx context.Context) error {
			// The combined calls outlive no handler: a call runs until its last handler stops
			// waiting for it, and the consumer drains its handlers before it returns.
			defer w.combiner.wait()
			return w.bus.Consume(ctx, bus.PoolConsumer(bus.ConsumerSalesforceApply, store.PoolOrDefault(w.cfg.Pool)), w.handleApply, bus.WithConcurrency(w.cfg.ApplyConcurrency))
		}},
	}...)
}

// Run runs the worker alone, with its health endpoint, until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	return platform.Run(ctx, w.cfg.Platform, "salesforce-worker", w.p, w)
}

// connector returns the org's connector, rebuilt when the org's settings change.
func (w *Worker) connector(ctx context.Context, orgID string) (Connector, error) {
	conn, _, err := w.conns.Get(ctx, orgID)
	return conn, err
}

// cursor is the org's poll cursor for a kind and the cycle of the poll that produced it.
type cursor struct {
	Value string `json:"value"`
	Cycle uint64 `json:"cycle"`
}

func cursorKey(orgID string, kind tandemv1.RecordKind) store.CursorKey {
	return store.CursorKey{Org: orgID, Name: "salesforce-" + store.KindName(kind)}
}

// handleJob polls the org for every kind the job names and publishes each user's changes.
func (w *Worker) handleJob(ctx context.Context, m *bus.Message) error {
	job := &tandemv1.SyncJob{}
	if err := m.Decode(job); err != nil {
		return err
	}
	orgID := job.GetOrgId()
	ctx = telemetry.WithScope(ctx, orgID, "")
	conn, err := w.connector(ctx, orgID)
	if err != nil {
		return w.failed(ctx, orgID, job, err)
	}
	defer w.saveUsage(ctx, orgID, conn)
	if err := w.refreshDirectory(ctx, orgID, conn, len(job.GetUserIds()) == 0); err != nil {
		return w.failed(ctx, orgID, job, err)
	}
	if len(job.GetUserIds()) == 0 {
		return nil
	}
	audience, full, err := w.audience(ctx, orgID, job)
	if err != nil {
		return w.failed(ctx, orgID, job, err)
	}
	// Two jobs of the org taken at once (the scheduler skips a cycle's poll while one is queued
	// or running, but jobs published close together can still both wait in the queue) would
	// read from the same cursor, the second reading again all the first reads — at scale, the
	// echo of a first sync's writes. The second waits, and reads from where the first ended.
	done, err := w.polls.Lock(ctx, orgID)
	if err != nil {
		return err
	}
	defer done()
	for _, kind := range job.GetKinds() {
		if err := w.poll(ctx, conn, job, kind, audience, full); err != nil {
			return w.failed(ctx, orgID, job, err)
		}
	}
	return nil
}

// refreshDirectory reads the org's users when the directory is stale (or forced).
func (w *Worker) refreshDirectory(ctx context.Context, orgID string, conn Connector, force bool) error {
	key := store.CursorKey{Org: orgID, Name: "directory"}
	raw, ok, err := w.st.GetCursor(ctx, key)
	if err != nil {
		return err
	}
	if ok && !force {
		if ms, err := strconv.ParseInt(raw, 10, 64); err == nil && w.now().Sub(time.UnixMilli(ms)) < w.cfg.DirectoryRefresh {
			return nil
		}
	}
	users, err := conn.Users(ctx)
	if err != nil {
		return err
	}
	known, err := w.st.ListUsers(ctx, orgID)
	if err != nil {
		return err
	}
	if err := w.st.PutUsers(ctx, orgID, users); err != nil {
		return err
	}
	if err := w.st.PutCursor(ctx, key, strconv.FormatInt(w.now().UnixMilli(), 10)); err != nil {
		return err
	}
	// Active users the directory did not list before — a new org's reps, a rep hired since —
	// start syncing at once rather than at the end of the org's interval (five minutes by
	// default): the org's next cycle is made due now. Should that fail, the interval still
	// brings them.
	if n := newActiveUsers(known, users); n > 0 {
		if err := w.st.DueNow(ctx, orgID); err != nil {
			w.log.WarnContext(ctx, "cannot start a cycle for the directory's new users; they wait for the org's interval", slog.Any("error", err))
		} else {
			w.log.InfoContext(ctx, "new users in the directory; the org's next cycle is due now", slog.Int("users", n))
		}
	}
	return nil
}

// newActiveUsers counts the active users of users that known does not list.
func newActiveUsers(known, users []*tandemv1.SyncUser) int {
	seen := make(map[string]bool, len(known))
	for _, u := range known {
		seen[u.GetUserId()] = true
	}
	n := 0
	for _, u := range users {
		if u.GetActive() && !seen[u.GetUserId()] {
			n++
		}
	}
	return n
}

// audience resolves the job's users to their contact scope and filters; the second result holds
// the users to read in full (reset).
func (w *Worker) audience(ctx context.Context, orgID string, job *tandemv1.SyncJob) (map[string]salesforce.Audience, map[string]bool, error) {
	full := map[string]bool{}
	for _, id := range job.GetFullUserIds() {
		full[id] = true
	}
	out := map[string]salesforce.Audience{}
	for _, id := range job.GetUserIds() {
		user, err := w.st.GetUser(ctx, orgID, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		cfg, _, err := w.st.ResolveConfiguration(ctx, orgID, user)
		if err != nil {
			return nil, nil, err
		}
		out[id] = salesforce.Audience{User: user, Scope: cfg.GetContacts().GetScope(), Filters: cfg.GetContacts().GetFilters()}
	}
	return out, full, nil
}

// poll reads one kind for the audience: incrementally from the org's cursor for most users, in
// full for users being reset. Every user gets at least one (possibly empty) last page, so the
// reconciler knows Salesforce has reported the cycle. Pages are published while the poll reads
// on (userPages), and all of them are stored before the org's cursor moves.
func (w *Worker) poll(ctx context.Context, conn Connector, job *tandemv1.SyncJob, kind tandemv1.RecordKind, audience map[string]salesforce.Audience, full map[string]bool) error {
	orgID := job.GetOrgId()
	cur := cursor{}
	if raw, ok, err := w.st.GetCursor(ctx, cursorKey(orgID, kind)); err != nil {
		return err
	} else if ok {
		if err := json.Unmarshal([]byte(raw), &cur); err != nil {
			w.log.WarnContext(ctx, "unreadable Salesforce cursor; reading in full", slog.Any("error", err))
			cur = cursor{}
		}
	}
	pages := newUserPages(ctx, w.bus, job, kind, cur.Cycle)
	next, err := w.pollPages(ctx, conn, kind, audience, full, cur, pages)
	// Every publish handed on ends (stored or failed) before the poll does, whatever happened.
	if werr := pages.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	raw, err := json.Marshal(cursor{Value: next, Cycle: job.GetCycle()})
	if err != nil {
		return err
	}
	return w.st.PutCursor(ctx, cursorKey(orgID, kind), string(raw))
}

// pollPages runs the polls of poll and hands their pages to pages; it returns the org's next
// cursor.
func (w *Worker) pollPages(ctx context.Context, conn Connector, kind tandemv1.RecordKind, audience map[string]salesforce.Audience, full map[string]bool, cur cursor, pages *userPages) (string, error) {
	group := w.cfg.FullReadGroup
	if group == 0 {
		group = DefaultFullReadGroup
	}
	var incremental, reset []salesforce.Audience
	for id, a := range audience {
		if full[id] {
			reset = append(reset, a)
		} else {
			incremental = append(incremental, a)
		}
	}
	next := cur.Value
	if len(reset) > 0 {
		// A full read for the users being reset. The org's cursor goes on from where it was,
		// unless there is none yet: then this read is where the org's polling starts.
		if err := pages.begin(reset, w.now()); err != nil {
			return "", err
		}
		c, err := conn.Poll(ctx, salesforce.PollRequest{Kind: kind, Audience: reset, FullReadGroup: group, Done: pages.done}, pages.emit)
		if err != nil {
			return "", err
		}
		if cur.Value == "" {
			next = c
		}
	}
	if len(incremental) > 0 {
		if err := pages.begin(incremental, w.now()); err != nil {
			return "", err
		}
		c, err := conn.Poll(ctx, salesforce.PollRequest{Kind: kind, Audience: incremental, Cursor: cur.Value,
			FullReadGroup: group, Done: pages.done}, pages.emit)
		if err != nil {
			return "", err
		}
		next = c
	}
	for id := range audience {
		if !pages.finished[id] {
			if err := pages.finish(ctx, id); err != nil {
				return "", err
			}
		}
	}
	return next, nil
}

// publishesInFlight bounds the pages of one poll being published at once. A page of a query
// carries the changes of many users, each a publish of its own that waits for JetStream's
// acknowledgement: one after the other, they took most of the time a full read takes.
const publishesInFlight = 32

// userPages publishes each user's pages of one kind in one cycle. A page is published in the
// background while the poll reads on: a user's pages one after the other, in the order the
// poll emitted them, and up to publishesInFlight pages of different users at once. The first
// publish that fails fails the poll: emit and finish report it, the pages not yet published are
// not, and wait returns it.
type userPages struct {
	pub      worker.Publisher
	job      *tandemv1.SyncJob
	kind     tandemv1.RecordKind
	previous uint64
	// readAt is when the poll under way started.
	readAt time.Time
	users  map[string]*userPager
	// finished are the users whose last page went out before the poll ended (see done).
	finished map[string]bool
	// publishing runs the publishes; its context, publishCtx, ends at the first that fails.
	publishing *errgroup.Group
	publishCtx context.Context
}

type userPager struct {
	pager *worker.Pager
	full  bool
	// readAt is when the poll that reads the user started: every page of the user carries it,
	// so that the reconciler never takes what the poll saw for newer than a write that
	// completed while it ran.
	readAt time.Time
	// sent is closed once the user's last page handed on is published (or failed).
	sent chan struct{}
}

func newUserPages(ctx context.Context, pub worker.Publisher, job *tandemv1.SyncJob, kind tandemv1.RecordKind, previous uint64) *userPages {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(publishesInFlight)
	return &userPages{pub: pub, job: job, kind: kind, previous: previous, users: map[string]*userPager{},
		finished: map[string]bool{}, publishing: g, publishCtx: gctx}
}

// begin starts a poll for audience at readAt.
func (up *userPages) begin(audience []salesforce.Audience, readAt time.Time) error {
	up.readAt = readAt
	for _, a := range audience {
		if _, err := up.pager(a.User.GetUserId()); err != nil {
			return err
		}
	}
	return nil
}

func (up *userPages) pager(userID string) (*userPager, error) {
	if p, ok := up.users[userID]; ok {
		return p, nil
	}
	pg, err := worker.NewPager(up.pub, up.job.GetOrgId(), userID, tandemv1.System_SYSTEM_SALESFORCE, up.kind, up.job.GetCycle())
	if err != nil {
		return nil, err
	}
	sent := make(chan struct{})
	close(sent)
	p := &userPager{pager: pg, readAt: up.readAt, sent: sent}
	up.users[userID] = p
	return p, nil
}

func (up *userPages) emit(_ context.Context, userID string, changes []*tandemv1.Change, full bool) error {
	p, err := up.pager(userID)
	if err != nil {
		return err
	}
	p.full = p.full || full
	return up.publish(p, changes, false)
}

// done finishes users whose read completed while the poll goes on (salesforce.PollRequest.Done),
// and returns once their last pages are stored: the poll reads the next group only then.
func (up *userPages) done(ctx context.Context, userIDs []string) error {
	for _, id := range userIDs {
		if err := up.finish(ctx, id); err != nil {
			return err
		}
		up.finished[id] = true
	}
	for _, id := range userIDs {
		select {
		case <-up.users[id].sent:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return up.failure()
}

// finish publishes the user's last page, which tells the reconciler the read is complete.
func (up *userPages) finish(_ context.Context, userID string) error {
	p, err := up.pager(userID)
	if err != nil {
		return err
	}
	return up.publish(p, nil, true)
}

// publish hands one page of p's to the background, after the pages handed on before it. It
// waits while publishesInFlight pages are, and returns the error of a publish that failed.
func (up *userPages) publish(p *userPager, changes []*tandemv1.Change, last bool) error {
	if err := up.failure(); err != nil {
		return err
	}
	prev, sent := p.sent, make(chan struct{})
	p.sent = sent
	full, readAt := p.full, p.readAt
	up.publishing.Go(func() error {
		defer close(sent)
		select {
		case <-prev:
		case <-up.publishCtx.Done():
			return up.publishCtx.Err()
		}
		return p.pager.Publish(up.publishCtx, changes, full, last, up.previous, readAt)
	})
	return nil
}

// failure is, once a publish failed (or the poll's context ended), the first publish's error
// (or the context's); nil before.
func (up *userPages) failure() error {
	if up.publishCtx.Err() == nil {
		return nil
	}
	if err := up.publishing.Wait(); err != nil {
		return err
	}
	return up.publishCtx.Err()
}

// wait returns once every page handed on is published, with the first publish's error.
func (up *userPages) wait() error { return up.publishing.Wait() }

func (w *Worker) saveUsage(ctx context.Context, orgID string, conn Connector) {
	u := conn.Usage()
	usage := &tandemv1.SalesforceApiUsage{DailyMax: u.DailyMax, Used: u.Used, Reserve: u.Reserve, TandemCalls: u.TandemCalls}
	if !u.BackedOffUntil.IsZero() {
		usage.BackedOffUntil = timestamppb.New(u.BackedOffUntil)
	}
	if err := w.status.PutSalesforceUsage(ctx, orgID, usage); err != nil {
		w.log.WarnContext(ctx, "store Salesforce usage", slog.Any("error", err))
	}
}

// failed reports a poll that failed. Failures Tandem retries (limits, unavailability) go back
// to the bus with the delay Salesforce asked for; the others are reported for every user of the
// job and end here — the next cycle tries again.
func (w *Worker) failed(ctx context.Context, orgID string, job *tandemv1.SyncJob, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	se := syncerr.As(cause)
	w.log.WarnContext(ctx, "Salesforce poll failed", slog.String("code", string(se.Code)), slog.Any("error", cause))
	if se.Retryable() {
		return se
	}
	var errs []error
	users := job.GetUserIds()
	if len(users) == 0 {
		users = []string{""}
	}
	for _, u := range users {
		for _, kind := range job.GetKinds() {
			if _, err := w.st.RecordError(ctx, orgID, u, kind, se.Proto()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// handleApply carries out a write batch (see worker.Writes), combined with the other batches of
// its org and kind that run at the same time (see combiner). The handler enters the combiner
// before worker.Writes reads which commands are still in flight, so that the batches that started
// together wait for each other.
func (w *Worker) handleApply(ctx context.Context, m *bus.Message) error {
	batch := &tandemv1.WriteBatch{}
	if err := m.Decode(batch); err != nil {
		return err
	}
	t := w.combiner.enter(batch.GetOrgId(), batch.GetKind())
	defer t.leave()
	return w.writes.Handler(func(ctx context.Context, batch *tandemv1.WriteBatch, cmds []*tandemv1.WriteCommand, redelivered bool) ([]*tandemv1.WriteResult, error) {
		return w.apply(ctx, t, batch, cmds, redelivered)
	})(ctx, m)
}

// apply carries out a write batch's commands for the user they are for; a redelivered batch
// looks for earlier attempts the user may have deleted since.
func (w *Worker) apply(ctx context.Context, t *ticket, batch *tandemv1.WriteBatch, cmds []*tandemv1.WriteCommand, redelivered bool) ([]*tandemv1.WriteResult, error) {
	user, err := w.st.GetUser(ctx, batch.GetOrgId(), batch.GetUserId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, syncerr.New(syncerr.SyncUserNotInDirectory, "user %s is not in org %s's directory", batch.GetUserId(), batch.GetOrgId())
	}
	if err != nil {
		return nil, err
	}
	conn, err := w.connector(ctx, batch.GetOrgId())
	if err != nil {
		return nil, err
	}
	defer w.saveUsage(ctx, batch.GetOrgId(), conn)
	return t.apply(ctx, conn, user, cmds, redelivered)
}
