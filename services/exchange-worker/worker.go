// Package exchangeworker is the exchange-worker service: it reads each user's changes from
// Exchange when the scheduler asks (per user), publishes them as change batches for the
// reconciler, and carries out the writes the reconciler sends to Exchange. It talks to Exchange
// only through an exchange.Connector (EWS today), built per org from the org's settings.
package exchangeworker

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	"github.com/tandem-sync/tandem/pkg/worker"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Config is the exchange-worker's settings.
type Config struct {
	// Platform is the connections and runtime settings every service shares.
	Platform platform.Config
	// JobConcurrency is how many users' reads run at once per replica.
	JobConcurrency int
	// ApplyConcurrency is how many write batches run at once per replica.
	ApplyConcurrency int
	// AllowHTTP permits plain-HTTP EWS endpoints (simulators and lab servers only).
	AllowHTTP bool
	// BackoffBase and BackoffMax bound how long a user whose reads fail is skipped.
	BackoffBase, BackoffMax time.Duration
	// SuspendAfter is how many permanent read failures in a row (failures retrying cannot fix,
	// such as a mailbox that does not exist) suspend a user's sync; 0 never suspends. Retryable
	// failures never count: they say nothing about whether the mailbox can ever be read.
	SuspendAfter int
	// SuspendedProbe is how often a suspended user is read anyway, so that a mailbox fixed in
	// Exchange comes back without an admin.
	SuspendedProbe time.Duration
	// Notify configures streaming notifications (notify.go).
	Notify NotifyConfig
	// Pool is the worker pool this replica serves: it takes the jobs and write batches of the
	// orgs whose worker_pool names it, and no others. Empty means the default pool.
	Pool string
}

// RegisterFlags registers the worker's flags, the platform's included.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Platform.RegisterFlags(fs)
	fs.IntVar(&c.JobConcurrency, "job-concurrency", 16, "users read at once by this replica")
	fs.IntVar(&c.ApplyConcurrency, "apply-concurrency", 16, "write batches carried out at once by this replica")
	fs.BoolVar(&c.AllowHTTP, "allow-http", false, "allow plain-HTTP Exchange endpoints (simulators and lab servers only)")
	fs.DurationVar(&c.BackoffBase, "backoff-base", time.Minute, "first back-off of a user whose Exchange reads fail")
	fs.DurationVar(&c.BackoffMax, "backoff-max", time.Hour, "longest back-off of a user whose Exchange reads fail")
	fs.IntVar(&c.SuspendAfter, "suspend-after", 5, "suspend a user's sync after this many permanent Exchange read failures in a row (0: never)")
	fs.DurationVar(&c.SuspendedProbe, "suspended-probe-interval", 24*time.Hour, "how often a suspended user's mailbox is tried anyway")
	fs.StringVar(&c.Pool, "pool", store.DefaultWorkerPool, "worker pool this replica serves: the orgs whose worker_pool names it")
	c.Notify.RegisterFlags(fs)
}

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.Pool != "" && !store.ValidWorkerPool(c.Pool) {
		return fmt.Errorf("--pool %q: a worker pool is 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit", c.Pool)
	}
	if c.JobConcurrency < 1 || c.ApplyConcurrency < 1 {
		return errors.New("concurrency must be at least 1")
	}
	if c.mailboxBackoff().Validate() != nil {
		return errors.New("--backoff-base must be positive and not above --backoff-max")
	}
	if c.SuspendAfter < 0 {
		return errors.New("--suspend-after must not be negative")
	}
	if c.SuspendAfter > 0 && c.SuspendedProbe <= 0 {
		return errors.New("--suspended-probe-interval must be positive when --suspend-after is set")
	}
	return c.Notify.Validate()
}

// mailboxBackoff is how long a user whose reads keep failing is skipped: the retry policy
// counted in consecutive failures, without jitter, because the time is shown to admins as the
// user's next sync and the scheduler already spreads users' cycles.
func (c *Config) mailboxBackoff() retry.Policy {
	return retry.Policy{Base: c.BackoffBase, Max: c.BackoffMax}
}

// ConnectorFactory builds an org's Exchange connector from its settings.
type ConnectorFactory func(org *tandemv1.Org) (exchange.Connector, error)

// EWSConnectors builds EWS connectors on the platform's logger and telemetry: every request to
// Exchange is a client span and is measured; allowHTTP lets them use plain-http URLs.
func EWSConnectors(p *platform.Platform, allowHTTP bool) ConnectorFactory {
	return func(org *tandemv1.Org) (exchange.Connector, error) {
		if org.GetExchange() == nil {
			return nil, syncerr.New(syncerr.ExchangeConfigurationMissing, "org %s has no Exchange connection", org.GetOrgId())
		}
		return ews.NewConnector(ews.ConnectorConfig{Connection: org.GetExchange(), AllowHTTP: allowHTTP, Logger: p.Logger,
			TracerProvider: p.Telemetry.TracerProvider, MeterProvider: p.Telemetry.MeterProvider})
	}
}

// Worker is the exchange-worker.
type Worker struct {
	cfg    Config
	p      *platform.Platform
	st     *store.Store
	bus    *bus.Bus
	status *status.Store
	conns  *store.OrgCache[exchange.Connector]
	outbox *ledger.Outbox
	writes *worker.Writes
	met    *metrics
	log    *slog.Logger
	now    func() time.Time

	// introduced is the connector each org's mailboxes were last named to (directory.go).
	introducedMu sync.Mutex
	introduced   map[string]*introduction
}

// New returns a worker using EWS connectors.
func New(cfg Config, p *platform.Platform) (*Worker, error) {
	return NewWithConnectors(cfg, p, EWSConnectors(p, cfg.AllowHTTP))
}

// NewWithConnectors returns a worker using connectors built by factory.
func NewWithConnectors(cfg Config, p *platform.Platform, factory ConnectorFactory) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg: cfg, p: p, st: p.Store, bus: p.Bus, status: status.New(p.Store),
		conns: store.NewOrgCache(p.Store, factory), log: p.Logger.With(slog.String("component", "exchange-worker")), now: time.Now,
		introduced: map[string]*introduction{},
	}
	met, err := newMetrics(p.Telemetry.MeterProvider)
	if err != nil {
		return nil, err
	}
	w.met = met
	w.outbox = ledger.NewOutbox(p.Store)
	w.writes = &worker.Writes{Outbox: w.outbox, Store: w.st, Pub: w.bus, Now: func() time.Time { return w.now() }, Log: w.log, System: "Exchange"}
	return w, nil
}

// Components returns the job and apply consumers of the replica's worker pool, and the notifier
// when it is enabled.
func (w *Worker) Components() []lifecycle.Component {
	return append([]lifecycle.Component{
		{Name: "exchange-jobs", Run: func(ctx context.Context) error {
			return w.bus.Consume(ctx, bus.PoolConsumer(bus.ConsumerExchangeJobs, store.PoolOrDefault(w.cfg.Pool)), w.handleJob, bus.WithConcurrency(w.cfg.JobConcurrency))
		}},
		{Name: "exchange-apply", Run: func(ctx context.Context) error {
			return w.bus.Consume(ctx, bus.PoolConsumer(bus.ConsumerExchangeApply, store.PoolOrDefault(w.cfg.Pool)), w.handleApply, bus.WithConcurrency(w.cfg.ApplyConcurrency))
		}},
	}, w.notifyComponents()...)
}

// Run runs the worker alone, with its health endpoint, until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	return platform.Run(ctx, w.cfg.Platform, "exchange-worker", w.p, w)
}

// connector returns the org's connector, rebuilt when the org's settings change.
func (w *Worker) connector(ctx context.Context, orgID string) (exchange.Connector, *tandemv1.Org, error) {
	conn, org, err := w.conns.Get(ctx, orgID)
	if err != nil {
		return nil, nil, err
	}
	w.introduce(ctx, orgID, conn)
	return conn, org, nil
}

// mailbox resolves the user's mailbox from the directory.
func (w *Worker) mailbox(ctx context.Context, orgID, userID string) (exchange.Mailbox, error) {
	user, err := w.st.GetUser(ctx, orgID, userID)
	if errors.Is(err, store.ErrNotFound) {
		return exchange.Mailbox{}, syncerr.New(syncerr.SyncUserNotInDirectory, "user %s is not in org %s's directory", userID, orgID)
	}
	if err != nil {
		return exchange.Mailbox{}, err
	}
	if user.GetEmail() == "" {
		return exchange.Mailbox{}, syncerr.New(syncerr.SyncAddressNotLinked, "user %s has no email address", userID)
	}
	return exchange.Mailbox{OrgID: orgID, UserID: userID, Address: user.GetEmail()}, nil
}

// cursor is what the worker stores per user and kind: the connector's cursor and the cycle of
// the read that produced it (the next read continues from that cycle); and, of the last read
// that asked Exchange, when its last page was read and the mailbox's watch mark taken before
// it (see unread).
type cursor struct {
	Value  string          `json:"value"`
	Cycle  uint64          `json:"cycle"`
	ReadAt int64           `json:"read_at,omitempty"` // unix ms
	Watch  store.WatchMark `json:"watch,omitzero"`
}

func cursorKey(mb exchange.Mailbox, kind tandemv1.RecordKind) store.CursorKey {
	return store.CursorKey{Org: mb.OrgID, User: mb.UserID, Name: "exchange-" + store.KindName(kind)}
}

func (w *Worker) loadCursor(ctx context.Context, mb exchange.Mailbox, kind tandemv1.RecordKind) (cursor, error) {
	raw, ok, err := w.st.GetCursor(ctx, cursorKey(mb, kind))
	if err != nil || !ok {
		return cursor{}, err
	}
	var c cursor
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		// An unreadable cursor costs a full read, nothing else.
		w.log.WarnContext(ctx, "unreadable Exchange cursor; reading in full", slog.Any("error", err))
		return cursor{}, nil
	}
	return c, nil
}

// handleJob reads a user's changes for every kind the job names.
func (w *Worker) handleJob(ctx context.Context, m *bus.Message) error {
	job := &tandemv1.SyncJob{}
	if err := m.Decode(job); err != nil {
		return err
	}
	ctx = telemetry.WithScope(ctx, job.GetOrgId(), job.GetUserId())
	mb, err := w.mailbox(ctx, job.GetOrgId(), job.GetUserId())
	if err != nil {
		return w.failed(ctx, job, err)
	}
	conn, _, err := w.connector(ctx, job.GetOrgId())
	if err != nil {
		return w.failed(ctx, job, err)
	}
	// The folders are located once per mailbox and cached by the connector; a read that finds
	// them gone locates them again.
	folders, err := conn.Folders(ctx, mb)
	if err != nil {
		return w.failed(ctx, job, err)
	}
	// The mailbox's watch mark, taken before it is read (see unread).
	mark, err := w.st.MailboxWatchMark(ctx, store.UserKey{OrgID: mb.OrgID, UserID: mb.UserID}, watchRole)
	if err != nil {
		w.log.WarnContext(ctx, "cannot tell whether the mailbox changed; reading it", slog.Any("error", err))
		mark = store.WatchMark{}
	}
	for _, kind := range job.GetKinds() {
		if err := w.read(ctx, conn, mb, job, kind, mark); err != nil {
			return w.failed(ctx, job, err)
		}
	}
	return w.succeeded(ctx, mb, job, folders)
}

// unread says whether the job may skip reading a kind from Exchange, and why it may or must not
// (a reason of metrics.go): it may when nothing changed since the last read (cur) but what
// Tandem knows. The mailbox was watched when that read began and has been since, without a
// break (the notifier marks the mailbox before it wakes the org; see store.WatchMark), and
//   - its mark is the same (quiet): the notifier was told of no change; or
//   - it moved only by notes of items at versions the reconciler already holds (echoes): the
//     echo of Tandem's own writes, whose results recorded the versions they left.
//
// Polling stays the fallback: a mailbox is read whenever its last read is the job's poll
// interval old, whatever the notifications say, and always in full when the job asks for it.
// Anything it cannot tell (Redis failing) makes it read.
func (w *Worker) unread(ctx context.Context, mb exchange.Mailbox, job *tandemv1.SyncJob, cur cursor, mark store.WatchMark) (skip bool, why string) {
	poll := job.GetPollInterval().AsDuration()
	switch {
	case job.GetFullResync() || cur.Value == "":
		return false, readFull
	case poll <= 0:
		return false, readEveryCycle
	case cur.ReadAt == 0 || w.now().Sub(time.UnixMilli(cur.ReadAt)) >= poll:
		return false, readPollDue
	case mark.Quiet(cur.Watch):
		return true, skipUnchanged
	case !cur.Watch.Watched() || mark.Watcher != cur.Watch.Watcher:
		return false, readUnwatched
	case mark.Notes-cur.Watch.Notes > maxEchoNotes:
		return false, readManyNotes
	}
	echoes, err := w.echoes(ctx, mb, job.GetKinds(), cur.Watch.Notes, mark.Notes)
	if err != nil {
		w.log.WarnContext(ctx, "cannot tell whether the mailbox changed; reading it", slog.Any("error", err))
		return false, readCannotTell
	}
	if echoes {
		return true, skipOwnWrites
	}
	return false, readChanged
}

// maxEchoNotes bounds the notes since a mailbox's last read that Worker.echoes looks at: a
// mailbox noted more often than that is read.
const maxEchoNotes = 1000

// echoes reports whether the mailbox's notes numbered after from up to to all tell of items
// that are now at versions the reconciler holds for one of kinds, or that the worker's own
// writes left.
func (w *Worker) echoes(ctx context.Context, mb exchange.Mailbox, kinds []tandemv1.RecordKind, from, to int64) (bool, error) {
	uk := store.UserKey{OrgID: mb.OrgID, UserID: mb.UserID}
	items, ok, err := w.st.NotedItems(ctx, uk, watchRole, from, to)
	if err != nil || !ok {
		return false, err
	}
	// Only the newest version of an item counts: a read would report the item as it is now,
	// not how it was in between.
	left := map[string]string{} // item id → version still to be found
	for _, it := range items {
		left[it.ID] = it.Version
	}
	// What the reconciler holds, then what the worker's writes left whose results it may not
	// have recorded yet (written.go).
	for _, kind := range kinds {
		if len(left) == 0 {
			break
		}
		known, err := w.outbox.Known(ctx, uk, kind, tandemv1.System_SYSTEM_EXCHANGE, slices.Collect(maps.Keys(left)))
		if err != nil {
			return false, err
		}
		for id, m := range known {
			if !m.GetDeleted() && m.GetRecord().GetVersion() == left[id] {
				delete(left, id)
			}
		}
		if len(left) == 0 {
			break
		}
		written, err := w.written(ctx, uk, kind, slices.Collect(maps.Keys(left)))
		if err != nil {
			return false, err
		}
		for id, v := range written {
			if v == left[id] {
				delete(left, id)
			}
		}
	}
	return len(left) == 0, nil
}

// read reads one kind's changes and publishes them as pages, then stores the cursor: the
// cursor advances only once the changes it covers are durably published.
//
// A kind the job may skip (see unread) is not read: the job reports, for the cycle, a read that
// found nothing, continuing from the last, and started when the last read's last page did. That is
// what the last read found, told again: the reconciler takes no item for gone because of it
// (see vanishedCreates in package engine), as it would from a read that started later.
func (w *Worker) read(ctx context.Context, conn exchange.Connector, mb exchange.Mailbox, job *tandemv1.SyncJob, kind tandemv1.RecordKind, mark store.WatchMark) error {
	cur, err := w.loadCursor(ctx, mb, kind)
	if err != nil {
		return err
	}
	if job.GetFullResync() {
		cur = cursor{}
	}
	pager, err := worker.NewPager(w.bus, mb.OrgID, mb.UserID, tandemv1.System_SYSTEM_EXCHANGE, kind, job.GetCycle())
	if err != nil {
		return err
	}
	skip, why := w.unread(ctx, mb, job, cur, mark)
	w.met.read(ctx, kind, !skip, why)
	if !skip {
		w.log.DebugContext(ctx, "reading the mailbox", slog.String("kind", store.KindName(kind)), slog.String("reason", why))
	} else {
		w.log.DebugContext(ctx, "mailbox not read", slog.String("kind", store.KindName(kind)), slog.String("reason", why),
			slog.Uint64("previous_cycle", cur.Cycle), slog.Time("last_read", time.UnixMilli(cur.ReadAt)))
		if err := pager.Publish(ctx, nil, false, true, cur.Cycle, time.UnixMilli(cur.ReadAt)); err != nil {
			return err
		}
		// The mark is now known to say nothing new: the next job compares with it.
		return w.putCursor(ctx, mb, kind, cursor{Value: cur.Value, Cycle: job.GetCycle(), ReadAt: cur.ReadAt, Watch: mark})
	}
	next := cur.Value
	// readStart is when the read of the next page started; readAt that of the last page
	// published.
	readStart := w.now()
	var readAt time.Time
	err = conn.Changes(ctx, mb, kind, cur.Value, func(ctx context.Context, p exchange.Page) error {
		if err := pager.Publish(ctx, p.Changes, p.Full, p.Last, cur.Cycle, readStart); err != nil {
			return err
		}
		next, readAt = p.Cursor, readStart
		readStart = w.now()
		return nil
	}, exchange.WithKnown(w.known(mb, kind)))
	if err != nil {
		return err
	}
	if !pager.Finished() {
		// The connector reported no page at all: the side still reports the cycle.
		if err := pager.Publish(ctx, nil, cur.Value == "", true, cur.Cycle, readStart); err != nil {
			return err
		}
		readAt = readStart
	}
	return w.putCursor(ctx, mb, kind, cursor{Value: next, Cycle: job.GetCycle(), ReadAt: readAt.UnixMilli(), Watch: mark})
}

func (w *Worker) putCursor(ctx context.Context, mb exchange.Mailbox, kind tandemv1.RecordKind, c cursor) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return w.st.PutCursor(ctx, cursorKey(mb, kind), string(raw))
}

// known looks up, read-only, the reconciler's newest observations of a user's Exchange items:
// an item a read reports at the version the reconciler holds (the echo of Tandem's own write,
// whose result recorded the version it left) is reported with that record instead of being
// fetched again. Deletions are not records.
func (w *Worker) known(mb exchange.Mailbox, kind tandemv1.RecordKind) exchange.KnownFunc {
	uk := store.UserKey{OrgID: mb.OrgID, UserID: mb.UserID}
	return func(ctx context.Context, ids []string) (map[string]*tandemv1.Record, error) {
		mirror, err := w.outbox.Known(ctx, uk, kind, tandemv1.System_SYSTEM_EXCHANGE, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[string]*tandemv1.Record, len(mirror))
		for id, m := range mirror {
			if !m.GetDeleted() && m.GetRecord().GetBody() != nil {
				out[id] = m.GetRecord()
			}
		}
		return out, nil
	}
}

// succeeded records a good read in the user's Exchange status.
func (w *Worker) succeeded(ctx context.Context, mb exchange.Mailbox, job *tandemv1.SyncJob, folders exchange.Folders) error {
	passed := tandemv1.CheckResult_CHECK_RESULT_PASSED
	part := &tandemv1.UserStatus{
		Email: mb.Address, MailboxVersionSupported: passed, RecognizedByServiceAccount: passed,
		ExchangeVersion: folders.ServerVersion,
	}
	for _, kind := range job.GetKinds() {
		part.Kinds = append(part.Kinds, &tandemv1.KindStatus{Kind: kind, FolderFound: passed, AddressesLinked: passed})
	}
	uk := store.UserKey{OrgID: mb.OrgID, UserID: mb.UserID}
	return w.status.Put(ctx, uk, status.PartExchange, part)
}

// failed records a failed read in the user's status and the error report, and backs the user
// off or suspends it (suspend). A failure Tandem retries by itself goes back to the bus
// (redelivered with the delay the server asked for); one it cannot retry ends here — the next
// cycles try again after the back-off.
func (w *Worker) failed(ctx context.Context, job *tandemv1.SyncJob, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	se := syncerr.As(cause)
	uk := store.UserKey{OrgID: job.GetOrgId(), UserID: job.GetUserId()}
	prev, err := w.status.GetPart(ctx, uk, status.PartExchange)
	if err != nil {
		return errors.Join(cause, err)
	}
	part := proto.Clone(prev).(*tandemv1.UserStatus)
	part.ConsecutiveFailures = prev.GetConsecutiveFailures() + 1
	part.LastError = se.Proto()
	if se.Permanent() {
		part.PermanentFailures++
	}
	backoff, err := w.suspend(ctx, uk, prev, part, se.Permanent())
	if err != nil {
		return errors.Join(cause, err)
	}
	part.NextSyncAt = timestamppb.New(w.now().Add(backoff))
	failedCheck := tandemv1.CheckResult_CHECK_RESULT_FAILED
	switch se.Code {
	case syncerr.ExchangeImpersonationDenied, syncerr.ExchangeAuthFailed:
		part.RecognizedByServiceAccount = failedCheck
	case syncerr.ExchangeUnsupportedVersion:
		part.MailboxVersionSupported = failedCheck
	case syncerr.ExchangeMailboxNotFound, syncerr.SyncAddressNotLinked, syncerr.SyncUserNotInDirectory:
		part.Kinds = nil
		for _, kind := range job.GetKinds() {
			part.Kinds = append(part.Kinds, &tandemv1.KindStatus{Kind: kind, AddressesLinked: failedCheck})
		}
	case syncerr.ExchangeFolderNotFound:
		part.Kinds = nil
		for _, kind := range job.GetKinds() {
			part.Kinds = append(part.Kinds, &tandemv1.KindStatus{Kind: kind, FolderFound: failedCheck})
		}
	}
	var errs []error
	if err := w.status.Put(ctx, uk, status.PartExchange, part); err != nil {
		errs = append(errs, err)
	}
	for _, kind := range job.GetKinds() {
		if _, err := w.st.RecordError(ctx, uk.OrgID, uk.UserID, kind, se.Proto()); err != nil {
			errs = append(errs, err)
		}
	}
	w.log.WarnContext(ctx, "Exchange read failed", slog.String("code", string(se.Code)), slog.Any("error", cause),
		slog.Duration("backoff", part.GetNextSyncAt().AsTime().Sub(w.now())), slog.Bool("suspended", part.GetSuspended()))
	if se.Retryable() {
		return errors.Join(append([]error{se}, errs...)...)
	}
	return errors.Join(errs...)
}

// suspend decides whether the failed read leaves the user suspended, and returns how long the
// user waits before the next read: the back-off, or the probe interval while suspended.
//
// A suspension that still holds (a probe failed) keeps its suspended_at. One that was lifted
// since (status.Suspended) ended: the user got one more try, and a permanent failure suspends it
// again at once, because the run of permanent failures goes on — only a good read ends it.
func (w *Worker) suspend(ctx context.Context, uk store.UserKey, prev, part *tandemv1.UserStatus, permanent bool) (time.Duration, error) {
	if prev.GetSuspended() {
		lifted, err := w.status.Lifted(ctx, uk)
		if err != nil {
			return 0, err
		}
		if status.Suspended(prev, lifted) {
			return w.cfg.SuspendedProbe, nil
		}
	}
	if permanent && w.cfg.SuspendAfter > 0 && int(part.GetPermanentFailures()) >= w.cfg.SuspendAfter {
		part.Suspended, part.SuspendedAt = true, timestamppb.New(w.now())
		w.log.WarnContext(ctx, "Exchange reads keep failing permanently; suspending the user's sync",
			slog.String("code", part.GetLastError().GetCode()), slog.Int("permanent_failures", int(part.GetPermanentFailures())),
			slog.Duration("probe_in", w.cfg.SuspendedProbe))
		return w.cfg.SuspendedProbe, nil
	}
	part.Suspended, part.SuspendedAt = false, nil
	return w.cfg.mailboxBackoff().Delay(int(part.GetConsecutiveFailures())), nil
}

// handleApply carries out a write batch (see worker.Writes).
func (w *Worker) handleApply(ctx context.Context, m *bus.Message) error {
	return w.writes.Handler(w.apply)(ctx, m)
}

// apply carries out a write batch's commands in the user's mailbox. The connector looks up the
// sync keys of the creates an item may carry the key of already: retries, those of a batch the
// bus redelivered, and those the worker tells it about (see attempts.go): creates it started
// before, and creates that re-create a pair's Exchange item.
func (w *Worker) apply(ctx context.Context, batch *tandemv1.WriteBatch, cmds []*tandemv1.WriteCommand, redelivered bool) ([]*tandemv1.WriteResult, error) {
	mb, err := w.mailbox(ctx, batch.GetOrgId(), batch.GetUserId())
	if err != nil {
		return nil, err
	}
	conn, _, err := w.connector(ctx, batch.GetOrgId())
	if err != nil {
		return nil, err
	}
	uk := store.UserKey{OrgID: mb.OrgID, UserID: mb.UserID}
	again, err := w.startedBefore(ctx, uk, cmds)
	if err != nil {
		return nil, err
	}
	relinked, err := w.relinking(ctx, uk, batch.GetKind(), cmds)
	if err != nil {
		return nil, err
	}
	if len(again) > 0 || len(relinked) > 0 {
		w.log.InfoContext(ctx, "creates whose sync key an item may carry already; their keys are looked up", slog.Int("started_before", len(again)),
			slog.Int("recreating", len(relinked)), slog.String("batch", batch.GetBatchId()), slog.Bool("redelivered", redelivered))
	}
	opts := []exchange.ApplyOption{exchange.KeyMayExist(append(again, relinked...)...)}
	if redelivered {
		opts = append(opts, exchange.Redelivered())
	}
	results, err := conn.Apply(ctx, mb, batch.GetKind(), cmds, opts...)
	if nerr := w.noteWritten(ctx, uk, batch.GetKind(), results); nerr != nil {
		w.log.WarnContext(ctx, "the echo of these writes will be read", slog.Any("error", nerr))
	}
	return results, err
}
