package exchangeworker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The notifier: near-real-time Exchange changes. It watches the mailboxes of every syncing
// user but the suspended ones with EWS streaming notifications (ews.Watcher, one per org's connector) and, when a
// mailbox reports a change, wakes the user's org: its next cycle becomes due at once, or a
// short gap after the last one started (store.WakeAfter), instead of at the end of the poll
// interval. It also notes, before it wakes the org, which mailboxes it watches and which
// changed (store.NoteWatches), so that a cycle reads only the mailboxes that may have changed
// since their last read (Worker.unread). Polling stays the fallback: a mailbox is read at least
// every poll interval whatever its notifications say, so a notification that never comes costs
// latency, never a change.
//
// Every replica runs a notifier, but each org is watched by one replica only: the one holding
// the org's watch lease (store.AcquireWatchLease, role watchRole). The others retry now and then
// (every third of the lease's TTL, or as the holder's lease would expire if sooner) and take
// over when the holder releases it on shutdown or dies and lets it expire. A holder that loses
// the lease stops watching the org at once, so two replicas' subscriptions overlap for no longer
// than it takes the loser to notice. A replica that takes an org's lease wakes the org once it
// has subscribed each mailbox (ews.WatchConfig.CatchUp): changes made while nobody watched
// were not reported, and would otherwise wait for the poll interval; the wake that follows
// reads them. Changes a lost subscription misses wake the org the same way (package ews).

// watchRole names the notifier's watch lease on an org.
const watchRole = "watch-exchange"

// releaseTimeout bounds the release of a watch lease when the notifier stops: a release that
// cannot be made leaves the lease to expire.
const releaseTimeout = 5 * time.Second

// NotifyConfig configures the notifier.
type NotifyConfig struct {
	// Enabled turns the notifier on.
	Enabled bool
	// Refresh is how often the syncing users are read again (users added, removed, assigned
	// another configuration); zero means a minute.
	Refresh time.Duration
	// MinGap is the least time between the start of an org's cycle and a cycle a notification
	// starts, so that a burst of changes costs one cycle; zero means store.DefaultWakeGap.
	MinGap time.Duration
	// ConnectionTimeout is how long each GetStreamingEvents connection stays open (whole
	// minutes, at most 30); zero means 30 minutes.
	ConnectionTimeout time.Duration
	// IdleTimeout is how long a connection may say nothing, not even a keep-alive, before it
	// is opened again; zero means ews.DefaultStreamIdleTimeout.
	IdleTimeout time.Duration
	// LeaseTTL is how long an org's watch lease lasts unless renewed: how long an org goes
	// unwatched when the replica watching it dies. Zero means store.DefaultWatchLeaseTTL.
	LeaseTTL time.Duration
}

// RegisterFlags registers the notifier's flags.
func (c *NotifyConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "notify", true, "watch mailboxes with EWS streaming notifications and start a cycle as soon as one changes (polling stays the fallback)")
	fs.DurationVar(&c.Refresh, "notify-refresh", time.Minute, "how often the notifier reads the syncing users again")
	fs.DurationVar(&c.MinGap, "notify-min-gap", store.DefaultWakeGap, "least time between the start of an org's cycle and one a notification starts")
	fs.DurationVar(&c.ConnectionTimeout, "notify-connection-timeout", ews.MaxConnectionTimeout, "how long each GetStreamingEvents connection stays open (1m to 30m)")
	fs.DurationVar(&c.IdleTimeout, "notify-idle-timeout", ews.DefaultStreamIdleTimeout, "reopen a notification connection that sends nothing, not even a keep-alive, for this long")
	fs.DurationVar(&c.LeaseTTL, "notify-lease-ttl", store.DefaultWatchLeaseTTL, "one replica watches an org's mailboxes, under a lease this long; another takes over at most this long after it dies")
}

// Validate checks the settings.
func (c NotifyConfig) Validate() error {
	var errs []error
	if c.Refresh < 0 || c.MinGap < 0 || c.IdleTimeout < 0 || c.LeaseTTL < 0 {
		errs = append(errs, errors.New("--notify-refresh, --notify-min-gap, --notify-idle-timeout and --notify-lease-ttl must not be negative"))
	}
	if c.LeaseTTL > 0 && c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("--notify-lease-ttl %s is shorter than a second", c.LeaseTTL))
	}
	if c.ConnectionTimeout < 0 || c.ConnectionTimeout > ews.MaxConnectionTimeout {
		errs = append(errs, fmt.Errorf("--notify-connection-timeout %s outside 1m..30m", c.ConnectionTimeout))
	}
	return errors.Join(errs...)
}

func (c NotifyConfig) withDefaults() NotifyConfig {
	if c.Refresh == 0 {
		c.Refresh = time.Minute
	}
	if c.MinGap == 0 {
		c.MinGap = store.DefaultWakeGap
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = store.DefaultWatchLeaseTTL
	}
	return c
}

// pass is how often the notifier goes over the orgs: it re-reads them every Refresh, and
// retries the watch leases other replicas hold every third of their TTL (as often as the
// holder renews them), so that it takes over an org soon after the holder lets go of it.
func (c NotifyConfig) pass() time.Duration { return min(c.Refresh, c.LeaseTTL/3) }

// notifyComponents is the notifier, when it is enabled.
func (w *Worker) notifyComponents() []lifecycle.Component {
	if !w.cfg.Notify.Enabled {
		return nil
	}
	n := newNotifier(w.cfg.Notify, store.PoolOrDefault(w.cfg.Pool), w.st, w.conns, w.log, w.p.Telemetry.TracerProvider)
	return []lifecycle.Component{{Name: "exchange-notify", Run: n.Run}}
}

// watchable is a connector that can watch mailboxes (EWS; Microsoft Graph will have its own
// change notifications).
type watchable interface {
	NewWatcher(ews.WatchConfig) *ews.Watcher
}

// notifier watches the syncing users' mailboxes and wakes their orgs.
type notifier struct {
	cfg NotifyConfig
	// pool is the worker pool of the replica: it watches only the mailboxes of that pool's orgs.
	pool string
	st   *store.Store
	// status tells which users are suspended, whose mailboxes are not watched.
	status *status.Store
	conns  *store.OrgCache[exchange.Connector]
	log    *slog.Logger
	tracer trace.Tracer
	// watchConfig adjusts each org's watcher (tests shorten its back-off).
	watchConfig func(*ews.WatchConfig)

	// the watchers' notes wait in dirty for wakeLoop; signal tells it there are some.
	mu     sync.Mutex
	dirty  map[*store.Lease]*pendingNotes
	signal chan struct{}

	// want is what the last read of the orgs asked to watch, read at readAt; orgs are the orgs
	// this replica watches, under their watch leases. They belong to Run's goroutine.
	want   map[string]orgWant
	readAt time.Time
	orgs   map[string]*orgWatch

	// passes counts the passes over the orgs made (tests wait for a replica to have tried).
	passes atomic.Int64
}

// orgWant is what an org asks to watch: its mailboxes, on its current connector.
type orgWant struct {
	conn    exchange.Connector
	wc      watchable
	watches []ews.Watch
}

// orgWatch is one org's watcher, on the connector it was made from, running while this replica
// holds the org's watch lease.
type orgWatch struct {
	conn  exchange.Connector
	w     *ews.Watcher
	lease *store.Lease
	// held ends when the lease is lost (cause store.ErrLeaseLost) or stopHold is called; the
	// watcher runs on it.
	held     context.Context
	stopHold func()
	done     chan struct{}
}

func newNotifier(cfg NotifyConfig, pool string, st *store.Store, conns *store.OrgCache[exchange.Connector], logger *slog.Logger, tp trace.TracerProvider) *notifier {
	return &notifier{
		cfg: cfg.withDefaults(), pool: pool, st: st, status: status.New(st), conns: conns, log: logger.With(slog.String("part", "notify")),
		tracer: tp.Tracer("github.com/tandem-sync/tandem/services/exchange-worker"),
		dirty:  map[*store.Lease]*pendingNotes{}, signal: make(chan struct{}, 1), want: map[string]orgWant{}, orgs: map[string]*orgWatch{},
	}
}

// Run watches until ctx ends. Every goroutine it starts has ended when it returns, every
// subscription it made is ended (see ews.Watcher.Run), and the watch leases it held are
// released for other replicas to take over.
func (n *notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { n.wakeLoop(ctx) })
	defer wg.Wait()
	defer n.stopAll(ctx)
	return lifecycle.Paced(ctx, n.pass, func(err error) {
		n.log.WarnContext(ctx, "reading the users to watch or taking their orgs' watch leases", slog.Any("error", err))
	})
}

// pass re-reads the orgs to watch when Refresh has passed since the last read, then starts,
// updates and stops the orgs' watchers to match, for the orgs whose watch lease it holds or can
// take. It returns when to make the next pass.
func (n *notifier) pass(ctx context.Context) (time.Duration, error) {
	defer n.passes.Add(1)
	var errs []error
	lastRead := n.readAt
	if lastRead.IsZero() || time.Since(lastRead) >= n.cfg.Refresh {
		if err := n.read(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	fresh := n.readAt != lastRead
	next := n.cfg.pass()
	if !n.readAt.IsZero() {
		next = min(next, max(time.Until(n.readAt.Add(n.cfg.Refresh)), time.Millisecond))
	}
	retry, err := n.contend(ctx, fresh)
	if err != nil {
		errs = append(errs, err)
	}
	return min(next, retry), errors.Join(errs...)
}

// read works out which orgs' mailboxes to watch. An org whose users cannot be read keeps what
// it asked for before; if the orgs cannot be listed, nothing changes and the next pass reads
// again.
func (n *notifier) read(ctx context.Context) error {
	orgs, err := n.st.ListOrgs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	want := map[string]orgWant{}
	for _, org := range orgs {
		id := org.GetOrgId()
		if !org.GetEnabled() || org.GetExchange() == nil || store.WorkerPool(org) != n.pool {
			// Another pool's workers watch the org's mailboxes, as they read them.
			continue
		}
		watches, err := n.watches(ctx, org)
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", id, err))
			if old, ok := n.want[id]; ok {
				want[id] = old // keep what it watches until it can be read again
			}
			continue
		}
		if len(watches) == 0 {
			continue
		}
		conn, _, err := n.conns.Get(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", id, err))
			if old, ok := n.want[id]; ok {
				want[id] = old
			}
			continue
		}
		wc, ok := conn.(watchable)
		if !ok {
			continue
		}
		want[id] = orgWant{conn: conn, wc: wc, watches: watches}
	}
	n.want, n.readAt = want, time.Now()
	return errors.Join(errs...)
}

// contend makes the watchers match n.want, for the orgs whose lease this replica holds or can
// take now; fresh says n.want was just read, so the watchers' mailboxes are set again. It
// returns how soon a lease another replica holds would expire unless renewed, the time to try
// it again.
func (n *notifier) contend(ctx context.Context, fresh bool) (time.Duration, error) {
	for id, ow := range n.orgs {
		want, wanted := n.want[id]
		switch {
		case ow.held.Err() != nil:
			// The lease was lost and the watch has ended (its goroutine said so); try again below.
			ow.stop()
			delete(n.orgs, id)
		case !wanted:
			n.giveUp(ctx, id, ow, "no mailbox of the org to watch")
			delete(n.orgs, id)
		case ow.conn != want.conn:
			// The org's settings changed: its connector was built again.
			n.giveUp(ctx, id, ow, "the org's settings changed")
			delete(n.orgs, id)
		}
	}
	retry := n.cfg.pass()
	var errs []error
	for id, want := range n.want {
		ow := n.orgs[id]
		if ow == nil {
			lease, err := n.st.AcquireWatchLease(ctx, id, watchRole, n.cfg.LeaseTTL)
			var held *store.LeaseHeldError
			switch {
			case errors.As(err, &held):
				// Another replica watches the org.
				retry = min(retry, held.Remaining+leaseRetrySlack)
				continue
			case err != nil:
				errs = append(errs, fmt.Errorf("org %s: %w", id, err))
				continue
			}
			ow = n.start(ctx, id, want, lease)
			n.orgs[id] = ow
		} else if !fresh {
			continue
		}
		ow.w.Set(want.watches)
	}
	return retry, errors.Join(errs...)
}

// leaseRetrySlack is how long after another replica's watch lease would expire the notifier
// tries to take it: a little later, so that it finds the lease gone.
const leaseRetrySlack = 20 * time.Millisecond

// watches lists the org's syncing users' mailboxes, with the kinds each syncs, as the scheduler
// decides who syncs. A mailbox another org syncs (store.HeldElsewhere) is left out, as the
// scheduler leaves its user out. So is a suspended user's mailbox (status.Suspended): the scheduler
// reads it only at its probe interval, so a notification could not start a read, and would
// only wake the org for nothing. Its subscription, if any, ends with the next refresh, and the
// mailbox is watched again with the first refresh after the suspension is lifted.
func (n *notifier) watches(ctx context.Context, org *tandemv1.Org) ([]ews.Watch, error) {
	mbs, err := syncingMailboxes(ctx, n.st, org.GetOrgId())
	if err != nil {
		return nil, err
	}
	assigned := make([]store.Assignment, len(mbs))
	for i, mb := range mbs {
		assigned[i] = mb.Assignment
	}
	suspended, err := n.status.SuspendedUsers(ctx, org, assigned)
	if err != nil {
		return nil, err
	}
	emails := make([]string, len(mbs))
	for i, mb := range mbs {
		emails[i] = mb.Address
	}
	elsewhere, err := n.st.HeldElsewhere(ctx, org.GetOrgId(), emails)
	if err != nil {
		return nil, err
	}
	out := make([]ews.Watch, 0, len(mbs))
	for _, mb := range mbs {
		if suspended[mb.UserID] || elsewhere[store.MailboxAddress(mb.Address)] {
			continue
		}
		out = append(out, ews.Watch{Mailbox: mb.Mailbox, Kinds: mb.Kinds})
	}
	if len(suspended) > 0 {
		n.log.DebugContext(ctx, "leaving suspended users' mailboxes unwatched", slog.String(telemetry.KeyOrg, org.GetOrgId()), slog.Int("suspended", len(suspended)))
	}
	return out, nil
}

// start runs a watcher for the org while the lease is held.
func (n *notifier) start(ctx context.Context, orgID string, want orgWant, lease *store.Lease) *orgWatch {
	log := n.log.With(slog.String(telemetry.KeyOrg, orgID))
	// Whoever held the lease before (a replica that stopped or died, or this one before it lost
	// the lease) watched nothing since it let go: each mailbox counts as changed once subscribed.
	// The same holds, harmlessly, for the first lease of an org: an org that never had a cycle
	// is due anyway (store.WakeAfter leaves it alone), and one that had stopped being watched
	// (no mailbox to watch, its settings changed) went unwatched just the same. Telling the
	// first lease apart (its fence counter is new) would save one cycle per org, once: not
	// worth changing the lease script every lease shares.
	cfg := ews.WatchConfig{
		OnChange: func(mb exchange.Mailbox) { n.note(lease, mb, store.WatchChanged, nil) },
		// Changes that only create or modify items are noted with the versions they left: the
		// echo of the exchange-worker's own writes needs no read (see Worker.echoes).
		OnItems: func(mb exchange.Mailbox, ids []ews.ItemID) {
			items := make([]store.WatchedItem, len(ids))
			for i, id := range ids {
				if strings.ContainsAny(id.ID+id.ChangeKey, " \t\n") {
					n.note(lease, mb, store.WatchChanged, nil) // not an id store keeps
					return
				}
				items[i] = store.WatchedItem{ID: id.ID, Version: id.ChangeKey}
			}
			n.note(lease, mb, store.WatchItems, items)
		},
		OnWatching: func(mb exchange.Mailbox, watching bool) {
			ev := store.WatchStopped
			if watching {
				ev = store.WatchStarted
			}
			n.note(lease, mb, ev, nil)
		},
		ConnectionTimeout: n.cfg.ConnectionTimeout,
		IdleTimeout:       n.cfg.IdleTimeout,
		Logger:            log,
		CatchUp:           true,
	}
	if n.watchConfig != nil {
		n.watchConfig(&cfg)
	}
	held, stopHold := lease.Hold(ctx)
	ow := &orgWatch{conn: want.conn, w: want.wc.NewWatcher(cfg), lease: lease, held: held, stopHold: stopHold, done: make(chan struct{})}
	go func() {
		defer close(ow.done)
		// Run returns nil: the watcher retries whatever fails. It ends its subscriptions before it
		// returns, which is when another replica may take over.
		_ = ow.w.Run(held)
		if cause := context.Cause(held); errors.Is(cause, store.ErrLeaseLost) {
			log.InfoContext(ctx, "gave up watching the org's mailboxes: its watch lease was lost", slog.Any("error", cause))
		}
	}()
	log.InfoContext(ctx, "took over watching the org's mailboxes", slog.Int64("lease_token", lease.Token()), slog.Int("mailboxes", len(want.watches)))
	return ow
}

// stop ends the watcher and waits for it (it ends its subscriptions); the lease stays held
// until it is released or expires.
func (ow *orgWatch) stop() {
	ow.stopHold()
	<-ow.done
}

// giveUp stops watching the org and then releases its lease, in that order, so that the replica
// taking over never subscribes while this one still is.
func (n *notifier) giveUp(ctx context.Context, orgID string, ow *orgWatch, why string) {
	ow.stop()
	n.release(ctx, orgID, ow, why)
}

// release gives up the lease of a stopped watch, unless it was lost.
func (n *notifier) release(ctx context.Context, orgID string, ow *orgWatch, why string) {
	if errors.Is(context.Cause(ow.held), store.ErrLeaseLost) {
		return
	}
	// Release even when ctx is done (shutting down): another replica should take over at once,
	// not when the lease expires.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	log := n.log.With(slog.String(telemetry.KeyOrg, orgID))
	if err := ow.lease.Release(rctx); err != nil && !errors.Is(err, store.ErrLeaseLost) {
		log.WarnContext(ctx, "cannot release the org's watch lease; another replica takes over when it expires", slog.Any("error", err))
	}
	log.InfoContext(ctx, "gave up watching the org's mailboxes", slog.String("reason", why))
}

// stopAll ends every watcher, all at once, then releases their leases.
func (n *notifier) stopAll(ctx context.Context) {
	for _, ow := range n.orgs {
		ow.stopHold()
	}
	for id, ow := range n.orgs {
		<-ow.done
		n.release(ctx, id, ow, "the notifier is stopping")
	}
	clear(n.orgs)
}

// noteRetry spaces the attempts to record notes and wake orgs after Redis failed.
var noteRetry = retry.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.DefaultJitter}

// pendingNotes are the notes of one watcher (one org, under one watch lease) that wakeLoop has
// yet to record, and whether one of them is a change, which wakes the org.
type pendingNotes struct {
	org     string
	notes   []store.WatchNote
	changed bool
}

// note is told, from a watcher's goroutines, what happened to a mailbox the lease's holder
// watches. It only queues the note: wakeLoop records it and wakes the org, once for however
// many changes came in the meantime.
func (n *notifier) note(lease *store.Lease, mb exchange.Mailbox, ev store.WatchEvent, items []store.WatchedItem) {
	n.mu.Lock()
	p := n.dirty[lease]
	if p == nil {
		p = &pendingNotes{org: mb.OrgID}
		n.dirty[lease] = p
	}
	p.notes = append(p.notes, store.WatchNote{UserID: mb.UserID, Event: ev, Items: items})
	p.changed = p.changed || ev == store.WatchChanged || ev == store.WatchItems
	n.mu.Unlock()
	select {
	case n.signal <- struct{}{}:
	default:
	}
}

// wakeLoop records the watchers' notes (store.NoteWatches: an exchange-worker reads a mailbox
// only if its mark moved since the last read, see Worker.read) and then wakes the orgs whose
// mailboxes changed, in that order, so that the cycle a wake starts reads the mailbox. Every
// change is followed by a wake that starts after it, so none is missed, and a burst of changes
// makes few. Notes that cannot be recorded are tried again, with their wake, until they are.
func (n *notifier) wakeLoop(ctx context.Context) {
	retryTimer := time.NewTimer(time.Hour)
	retryTimer.Stop()
	defer retryTimer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.signal:
		case <-retryTimer.C:
		}
		n.mu.Lock()
		batch := n.dirty
		n.dirty = map[*store.Lease]*pendingNotes{}
		n.mu.Unlock()
		failed := false
		for lease, p := range batch {
			if err := n.record(ctx, lease, p); err != nil {
				if ctx.Err() != nil {
					return
				}
				failed = true
				n.requeue(lease, p)
				if failures == 0 {
					n.log.WarnContext(ctx, "cannot record the mailboxes' notifications or wake the org; trying again",
						slog.String(telemetry.KeyOrg, p.org), slog.Any("error", err))
				}
			}
		}
		if failed {
			failures++
			retryTimer.Reset(noteRetry.Delay(failures))
		} else {
			failures = 0
		}
	}
}

// record records one watcher's notes and wakes the org if a mailbox changed.
func (n *notifier) record(ctx context.Context, lease *store.Lease, p *pendingNotes) error {
	if err := n.st.NoteWatches(ctx, lease, p.notes); err != nil {
		return err
	}
	p.notes = nil
	if !p.changed {
		return nil
	}
	// The cycle the wake makes due links to this span (store.WakeAfter): a trace leads from
	// the mailbox change to the cycle that syncs it.
	wctx, span := n.tracer.Start(ctx, "exchange-worker.wake", trace.WithAttributes(attribute.String("tandem.org_id", p.org)))
	due, err := n.st.WakeAfter(wctx, p.org, n.cfg.MinGap)
	span.End()
	if err != nil {
		return err
	}
	p.changed = false
	n.log.DebugContext(ctx, "org woken by a mailbox change", slog.String(telemetry.KeyOrg, p.org), slog.Time("due", due))
	return nil
}

// requeue puts back what record could not do, before anything queued since.
func (n *notifier) requeue(lease *store.Lease, p *pendingNotes) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if q := n.dirty[lease]; q != nil {
		p.notes = append(p.notes, q.notes...)
		p.changed = p.changed || q.changed
	}
	n.dirty[lease] = p
}
