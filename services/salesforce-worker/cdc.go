package salesforceworker

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Near-real-time changes from Salesforce: for every org with syncing users, one Change Data
// Capture subscription per record kind synced (/data/ContactChangeEvent, /data/EventChangeEvent)
// through the Pub/Sub API. An event for a record owned by one of the org's syncing users — or
// one whose owner the event does not say (deletes, most updates) — makes the org's next cycle
// due at once; the cycle's poll reads the change as usual, so CDC only decides when to poll, and
// polling at the org's interval remains the fallback for anything CDC misses. The replay id of
// the last event handled is stored per org and topic, and a restarted worker resumes after it.
//
// Every replica runs the component, but each org is subscribed to by one replica only: the one
// holding the org's watch lease (store.AcquireWatchLease, role cdcRole); otherwise every change
// would be delivered, and wake the org, once per replica. The others retry every third of the
// lease's TTL, or as the holder's lease would expire if sooner, and take over when the holder
// releases it on shutdown or dies and lets it expire; the replay id stored in Redis lets the new
// holder resume where the old one stopped, and where the old one stored none yet, the new one
// wakes the org (see once). A holder that loses the lease ends the org's subscriptions at once.

// cdcRole names the CDC component's watch lease on an org.
const cdcRole = "watch-salesforce"

// cdcReleaseTimeout bounds the release of a watch lease when the component stops: a release
// that cannot be made leaves the lease to expire.
const cdcReleaseTimeout = 5 * time.Second

// cdcRetrySlack is how long after another replica's watch lease would expire the component
// tries to take it: a little later, so that it finds the lease gone.
const cdcRetrySlack = 20 * time.Millisecond

// CDCConfig configures the Change Data Capture subscriptions.
type CDCConfig struct {
	// Disabled turns the subscriptions off: changes then wait for the next poll.
	Disabled bool
	// Endpoint is the Pub/Sub API (host:port); empty turns the subscriptions off.
	// RegisterFlags defaults it to Salesforce's.
	Endpoint string
	// Plaintext speaks gRPC without TLS (a simulator on this machine).
	Plaintext bool
	// Refresh is how often the orgs, their syncing users and the kinds they sync are read again.
	Refresh time.Duration
	// Backoff is the wait between reconnections after failures.
	Backoff retry.Policy
	// LeaseTTL is how long an org's watch lease lasts unless renewed: how long an org goes
	// without CDC when the replica subscribed for it dies. Zero or less means
	// store.DefaultWatchLeaseTTL.
	LeaseTTL time.Duration
}

// Defaults of CDCConfig.
const (
	DefaultCDCRefresh     = 30 * time.Second
	defaultCDCBackoffBase = time.Second
	defaultCDCBackoffMax  = 5 * time.Minute
)

// RegisterFlags registers the CDC flags.
func (c *CDCConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Disabled, "cdc-disabled", false, "do not subscribe to Salesforce Change Data Capture; changes wait for the next poll")
	fs.StringVar(&c.Endpoint, "pubsub-endpoint", salesforce.DefaultPubSubEndpoint, "Salesforce Pub/Sub API endpoint (host:port) for Change Data Capture; empty disables it")
	fs.BoolVar(&c.Plaintext, "pubsub-plaintext", false, "reach the Pub/Sub API without TLS (a local simulator only)")
	fs.DurationVar(&c.Refresh, "cdc-refresh", DefaultCDCRefresh, "how often the orgs and syncing users CDC subscribes for are read again")
	fs.DurationVar(&c.LeaseTTL, "cdc-lease-ttl", store.DefaultWatchLeaseTTL, "one replica subscribes for an org, under a lease this long; another takes over at most this long after it dies")
}

// pass is how often the component goes over the orgs: it re-reads them every Refresh, and
// retries the watch leases other replicas hold every third of their TTL (as often as the
// holder renews them), so that it takes over an org soon after the holder lets go of it.
func (c CDCConfig) pass() time.Duration { return min(c.Refresh, c.LeaseTTL/3) }

func (c CDCConfig) enabled() bool { return !c.Disabled && c.Endpoint != "" }

// waker makes an org's next cycle due now. store.Store.DueNow does; a coalescing wake can
// replace it here in one line.
type waker interface {
	DueNow(ctx context.Context, orgID string) error
}

// pubsubSource is what a connector needs to subscribe: the REST connector has it.
type pubsubSource interface {
	PubSub(endpoint string, opts ...salesforce.PubSubOption) (*salesforce.PubSub, error)
}

// cdcKey names one subscription.
type cdcKey struct {
	org  string
	kind tandemv1.RecordKind
}

// cdc runs the subscriptions of the orgs whose watch lease this replica holds.
type cdc struct {
	w      *Worker
	cfg    CDCConfig
	wake   waker
	log    *slog.Logger
	tracer trace.Tracer
	opts   []salesforce.PubSubOption

	// want is, per org, the kinds the last read found synced, each with its syncing users, read
	// at readAt; orgs are the orgs this replica subscribes for, under their watch leases. They
	// belong to run's goroutine.
	want   map[string]map[tandemv1.RecordKind]map[string]bool
	readAt time.Time
	orgs   map[string]*cdcOrg

	mu sync.Mutex
	// clients are the orgs' Pub/Sub clients, rebuilt when the org's connector is.
	clients map[string]*cdcClient

	// passes counts the passes over the orgs made (tests wait for a replica to have tried).
	passes atomic.Int64
}

// cdcOrg is an org this replica holds the watch lease of, and its subscriptions.
type cdcOrg struct {
	lease *store.Lease
	// held ends when the lease is lost (cause store.ErrLeaseLost) or stopHold is called; the
	// subscriptions run on it.
	held     context.Context
	stopHold func()
	subs     map[tandemv1.RecordKind]*cdcSub
	wg       sync.WaitGroup
}

type cdcClient struct {
	conn Connector
	ps   *salesforce.PubSub
}

// cdcSub is one running subscription.
type cdcSub struct {
	key    cdcKey
	topic  string
	owners atomic.Pointer[map[string]bool]
	cancel context.CancelFunc
	// caughtUp says the subscription started from the latest event, the org woken if that could
	// miss anything (see once), and nothing has arrived since: later attempts from the latest
	// event do not wake the org again, lest a subscription that keeps failing wake it at every
	// attempt. It belongs to the subscription's goroutine.
	caughtUp bool
}

// cdcComponents returns the CDC component, or none when it is turned off.
func (w *Worker) cdcComponents() []lifecycle.Component {
	if !w.cfg.CDC.enabled() {
		return nil
	}
	c := w.newCDC()
	return []lifecycle.Component{{Name: "salesforce-cdc", Run: c.run}}
}

func (w *Worker) newCDC() *cdc {
	cfg := w.cfg.CDC
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultCDCRefresh
	}
	if cfg.Backoff.Base <= 0 {
		cfg.Backoff = retry.Policy{Base: defaultCDCBackoffBase, Max: defaultCDCBackoffMax, Jitter: retry.DefaultJitter}
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = store.DefaultWatchLeaseTTL
	}
	c := &cdc{w: w, cfg: cfg, wake: w.st, log: w.log.With(slog.String("part", "cdc")),
		tracer: w.p.Telemetry.TracerProvider.Tracer("github.com/tandem-sync/tandem/services/salesforce-worker"),
		want:   map[string]map[tandemv1.RecordKind]map[string]bool{}, orgs: map[string]*cdcOrg{}, clients: map[string]*cdcClient{}}
	if cfg.Plaintext {
		c.opts = append(c.opts, salesforce.PubSubPlaintext())
	}
	return c
}

// run keeps the subscriptions in line with the orgs until ctx ends, then stops them all, waits
// for them and releases the orgs' watch leases.
func (c *cdc) run(ctx context.Context) error {
	defer c.stopAll(ctx)
	return lifecycle.Paced(ctx, c.pass, func(err error) {
		c.log.WarnContext(ctx, "CDC: reading the orgs or taking their watch leases failed", slog.Any("error", err))
	})
}

// pass re-reads the orgs when Refresh has passed since the last read, then starts and stops
// subscriptions to match, for the orgs whose watch lease it holds or can take. It returns when
// to make the next pass.
func (c *cdc) pass(ctx context.Context) (time.Duration, error) {
	defer c.passes.Add(1)
	var errs []error
	if c.readAt.IsZero() || time.Since(c.readAt) >= c.cfg.Refresh {
		if err := c.read(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	next := c.cfg.pass()
	if !c.readAt.IsZero() {
		next = min(next, max(time.Until(c.readAt.Add(c.cfg.Refresh)), time.Millisecond))
	}
	retry, err := c.contend(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	return min(next, retry), errors.Join(errs...)
}

// read works out which subscriptions are wanted: per enabled org, each kind a syncing user
// syncs, with the users who own the records that matter. An org whose users cannot be read
// keeps what it wanted before; if the orgs cannot be listed, nothing changes and the next pass
// reads again.
func (c *cdc) read(ctx context.Context) error {
	orgs, err := c.w.st.ListOrgs(ctx)
	if err != nil {
		return err
	}
	want := map[string]map[tandemv1.RecordKind]map[string]bool{}
	var errs []error
	for _, org := range orgs {
		id := org.GetOrgId()
		if !org.GetEnabled() || org.GetSalesforce() == nil || store.WorkerPool(org) != store.PoolOrDefault(c.w.cfg.Pool) {
			// Another pool's workers subscribe for the org, as they poll it.
			continue
		}
		owners, err := c.syncing(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", id, err))
			if old, ok := c.want[id]; ok {
				want[id] = old
			}
			continue
		}
		if len(owners) > 0 {
			want[id] = owners
		}
	}
	c.want, c.readAt = want, time.Now()
	return errors.Join(errs...)
}

// contend makes the subscriptions match c.want, for the orgs whose lease this replica holds or
// can take now. It returns how soon a lease another replica holds would expire unless renewed,
// the time to try it again.
func (c *cdc) contend(ctx context.Context) (time.Duration, error) {
	for id, o := range c.orgs {
		switch {
		case o.held.Err() != nil:
			// The lease was lost and the subscriptions, on its context, have ended or are ending.
			c.drop(ctx, id, o, "")
		case c.want[id] == nil:
			c.drop(ctx, id, o, "nothing of the org to subscribe to")
		}
	}
	retry := c.cfg.pass()
	var errs []error
	for id, kinds := range c.want {
		o := c.orgs[id]
		if o == nil {
			lease, err := c.w.st.AcquireWatchLease(ctx, id, cdcRole, c.cfg.LeaseTTL)
			var held *store.LeaseHeldError
			switch {
			case errors.As(err, &held):
				// Another replica subscribes for the org.
				retry = min(retry, held.Remaining+cdcRetrySlack)
				continue
			case err != nil:
				errs = append(errs, fmt.Errorf("org %s: %w", id, err))
				continue
			}
			o = c.take(ctx, id, lease)
			c.orgs[id] = o
		}
		c.subscribeOrg(id, o, kinds)
	}
	return retry, errors.Join(errs...)
}

// take starts holding the org's watch lease.
func (c *cdc) take(ctx context.Context, orgID string, lease *store.Lease) *cdcOrg {
	held, stopHold := lease.Hold(ctx)
	o := &cdcOrg{lease: lease, held: held, stopHold: stopHold, subs: map[tandemv1.RecordKind]*cdcSub{}}
	log := c.log.With(slog.String("org_id", orgID))
	// Said when it happens: the subscriptions end with the lease, before the next pass notices.
	context.AfterFunc(held, func() {
		if cause := context.Cause(held); errors.Is(cause, store.ErrLeaseLost) {
			log.InfoContext(ctx, "CDC: gave up the org's subscriptions: its watch lease was lost", slog.Any("error", cause))
		}
	})
	log.InfoContext(ctx, "CDC: took over the org's subscriptions", slog.Int64("lease_token", lease.Token()))
	return o
}

// subscribeOrg starts and stops the org's subscriptions to match the kinds wanted, with their
// owners, on the lease's context.
func (c *cdc) subscribeOrg(orgID string, o *cdcOrg, kinds map[tandemv1.RecordKind]map[string]bool) {
	for kind, sub := range o.subs {
		if _, ok := kinds[kind]; !ok {
			sub.cancel()
			delete(o.subs, kind)
		}
	}
	for kind, owners := range kinds {
		sub := o.subs[kind]
		if sub == nil {
			topic, ok := salesforce.ChangeTopic(kind)
			if !ok {
				continue
			}
			sctx, cancel := context.WithCancel(o.held)
			sub = &cdcSub{key: cdcKey{org: orgID, kind: kind}, topic: topic, cancel: cancel}
			o.subs[kind] = sub
			o.wg.Go(func() { c.subscribe(sctx, sub) })
		}
		sub.owners.Store(&owners)
	}
}

// drop ends the org's subscriptions and waits for them, then releases its lease (why says why
// it is given up), in that order, so that the replica taking over never subscribes while this
// one still is. A lost lease (empty why) is not released: it is another replica's now.
func (c *cdc) drop(ctx context.Context, orgID string, o *cdcOrg, why string) {
	o.stopHold()
	o.wg.Wait()
	delete(c.orgs, orgID)
	c.closeClient(orgID)
	c.release(ctx, orgID, o, why)
}

// release gives up the lease of an org whose subscriptions have ended, unless it was lost.
func (c *cdc) release(ctx context.Context, orgID string, o *cdcOrg, why string) {
	if errors.Is(context.Cause(o.held), store.ErrLeaseLost) {
		return
	}
	// Release even when ctx is done (shutting down): another replica should take over at once,
	// not when the lease expires.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cdcReleaseTimeout)
	defer cancel()
	log := c.log.With(slog.String("org_id", orgID))
	if err := o.lease.Release(rctx); err != nil && !errors.Is(err, store.ErrLeaseLost) {
		log.WarnContext(ctx, "CDC: cannot release the org's watch lease; another replica takes over when it expires", slog.Any("error", err))
	}
	log.InfoContext(ctx, "CDC: gave up the org's subscriptions", slog.String("reason", why))
}

func (c *cdc) closeClient(orgID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients[orgID]; cl != nil {
		_ = cl.ps.Close()
		delete(c.clients, orgID)
	}
}

// stopAll ends every subscription, all at once, waits for them, releases the orgs' leases and
// closes the clients.
func (c *cdc) stopAll(ctx context.Context) {
	for _, o := range c.orgs {
		o.stopHold()
	}
	for id, o := range c.orgs {
		o.wg.Wait()
		c.release(ctx, id, o, "the component is stopping")
	}
	clear(c.orgs)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		_ = cl.ps.Close()
	}
	clear(c.clients)
}

// syncing returns, per kind synced in the org, its syncing users (the scheduler's rule: users
// with an active configuration that syncs the kind, and a mailbox no other org syncs).
func (c *cdc) syncing(ctx context.Context, orgID string) (map[tandemv1.RecordKind]map[string]bool, error) {
	assigned, err := c.w.st.ListAssignments(ctx, orgID)
	if err != nil {
		return nil, err
	}
	emails := make([]string, len(assigned))
	for i, a := range assigned {
		emails[i] = a.User.GetEmail()
	}
	// A user whose mailbox another org syncs is left out of the org's cycles: its records'
	// changes would wake the org for nothing.
	elsewhere, err := c.w.st.HeldElsewhere(ctx, orgID, emails)
	if err != nil {
		return nil, err
	}
	out := map[tandemv1.RecordKind]map[string]bool{}
	add := func(kind tandemv1.RecordKind, user string) {
		if out[kind] == nil {
			out[kind] = map[string]bool{}
		}
		out[kind][user] = true
	}
	for _, a := range assigned {
		if elsewhere[store.MailboxAddress(a.User.GetEmail())] {
			continue
		}
		for _, kind := range store.SyncedKinds(a.Config) {
			add(kind, a.User.GetUserId())
		}
	}
	return out, nil
}

// client returns the org's Pub/Sub client, built on the org's current connector.
func (c *cdc) client(ctx context.Context, orgID string) (*salesforce.PubSub, error) {
	conn, err := c.w.connector(ctx, orgID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients[orgID]; cl != nil {
		if cl.conn == conn {
			return cl.ps, nil
		}
		// The org's settings changed: subscriptions still on the old client end with it.
		_ = cl.ps.Close()
		delete(c.clients, orgID)
	}
	src, ok := conn.(pubsubSource)
	if !ok {
		return nil, retry.Permanent(fmt.Errorf("org %s: its Salesforce connector cannot subscribe to change events", orgID))
	}
	ps, err := src.PubSub(c.cfg.Endpoint, c.opts...)
	if err != nil {
		return nil, err
	}
	c.clients[orgID] = &cdcClient{conn: conn, ps: ps}
	return ps, nil
}

func replayKey(k cdcKey) store.CursorKey {
	return store.CursorKey{Org: k.org, Name: "salesforce-cdc-" + store.KindName(k.kind)}
}

// subscribe keeps one subscription up until ctx ends, reconnecting with back-off after failures.
func (c *cdc) subscribe(ctx context.Context, sub *cdcSub) {
	log := c.log.With(slog.String("org_id", sub.key.org), slog.String("topic", sub.topic))
	failures := 0
	for ctx.Err() == nil {
		progressed, err := c.once(ctx, sub, log)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			failures = 0
		}
		failures++
		delay := c.cfg.Backoff.DelayFor(err, failures)
		if retry.IsPermanent(err) {
			delay = c.cfg.Backoff.Max
		}
		log.WarnContext(ctx, "CDC subscription ended; reconnecting", slog.Any("error", err), slog.Duration("delay", delay))
		if retry.Sleep(ctx, delay) != nil {
			return
		}
	}
}

// once runs one subscription from the stored replay id; progressed reports whether anything
// arrived (a working connection resets the back-off).
//
// A subscription without a replay id to resume from starts at the latest event, and nothing
// before it is replayed. So that a replica taking over can tell whether that loses anything,
// such a subscription first stores an empty replay id (it stores a real one with the first
// event or keepalive): an empty one found later means someone subscribed before, and changes
// made since it stopped (or died) were seen by nobody; so does a replay id Salesforce no longer
// retains. Then the org is woken, so that a poll reads them instead of the poll interval. An
// org's very first subscription (nothing stored) has nothing to catch up on and does not wake
// it, nor does one that resumes from a replay id: the events it replays wake the org if they
// matter. The wake comes just before the subscription is made (Subscribe says nothing when it
// is): a change made in between waits for the poll only if the woken cycle read the org before
// it.
func (c *cdc) once(ctx context.Context, sub *cdcSub, log *slog.Logger) (progressed bool, err error) {
	ps, err := c.client(ctx, sub.key.org)
	if err != nil {
		return false, err
	}
	key := replayKey(sub.key)
	raw, stored, err := c.w.st.GetCursor(ctx, key)
	if err != nil {
		return false, err
	}
	var replay []byte
	if stored {
		if replay, err = base64.StdEncoding.DecodeString(raw); err != nil {
			log.WarnContext(ctx, "unreadable stored replay id; subscribing from the latest event and syncing the org now", slog.Any("error", err))
			replay = nil
		}
	}
	for {
		if len(replay) == 0 {
			if err := c.fromLatest(ctx, sub, key, stored, log); err != nil {
				return progressed, err
			}
			stored = true
		}
		err = ps.Subscribe(ctx, salesforce.Subscription{Topic: sub.topic, ReplayID: replay}, func(ctx context.Context, b salesforce.FetchBatch) error {
			progressed, sub.caughtUp = true, false
			return c.handle(ctx, sub, b)
		})
		if !errors.Is(err, salesforce.ErrReplayIDInvalid) || len(replay) == 0 {
			return progressed, err
		}
		// The stored position is gone (older than the bus keeps): start again from the tip, and
		// poll once, which covers whatever happened in between.
		log.WarnContext(ctx, "stored replay id refused; subscribing from the latest event and syncing the org now", slog.Any("error", err))
		replay = nil
	}
}

// fromLatest prepares a subscription from the latest event (see once): it wakes the org when
// the topic was subscribed to before (stored: a replay id, empty or not, was found) — once, not
// at every attempt of a subscription that keeps failing — and stores an empty replay id.
func (c *cdc) fromLatest(ctx context.Context, sub *cdcSub, key store.CursorKey, stored bool, log *slog.Logger) error {
	if stored && !sub.caughtUp {
		if err := c.wake.DueNow(ctx, sub.key.org); err != nil {
			return fmt.Errorf("wake org %s before subscribing from the latest event: %w", sub.key.org, err)
		}
		log.InfoContext(ctx, "CDC: subscribing from the latest event where an earlier subscription left no replay id; org due now")
	}
	sub.caughtUp = true
	return c.w.st.PutCursor(ctx, key, "")
}

// handle wakes the org when a batch holds a change that matters, then stores where the
// subscription stands. A failed wake stores nothing: the events come again on reconnection.
func (c *cdc) handle(ctx context.Context, sub *cdcSub, b salesforce.FetchBatch) error {
	owners := sub.owners.Load()
	relevant := 0
	for _, ev := range b.Events {
		if matters(ev, *owners, c.w.cfg.ClientName) {
			relevant++
		}
	}
	if relevant > 0 {
		// The cycle made due links to this span (store.DueNow): a trace leads from the change
		// events to the cycle that syncs them.
		wctx, span := c.tracer.Start(ctx, "salesforce-worker.cdcWake", trace.WithAttributes(
			attribute.String("tandem.org_id", sub.key.org), attribute.String("tandem.cdc_topic", sub.topic), attribute.Int("tandem.cdc_events", relevant)))
		err := c.wake.DueNow(wctx, sub.key.org)
		span.End()
		if err != nil {
			return fmt.Errorf("wake org %s: %w", sub.key.org, err)
		}
		c.log.DebugContext(ctx, "CDC: org due now", slog.String("org_id", sub.key.org), slog.String("topic", sub.topic), slog.Int("events", relevant))
	}
	replay := b.LatestReplayID
	if len(b.Events) > 0 {
		replay = b.Events[len(b.Events)-1].ReplayID
	}
	if len(replay) == 0 {
		return nil
	}
	return c.w.st.PutCursor(ctx, replayKey(sub.key), base64.StdEncoding.EncodeToString(replay))
}

// matters reports whether a change may concern a syncing user: a record created (or restored)
// for one of them, or any other change, since the event does not say whose record a delete or
// an update is (it carries the owner only when the owner changed, and then the old owner may be
// a syncing user whose record just left them). Tandem's own writes (changeOrigin names its
// client) do not matter: their results come back from the write itself, and polling for them
// would only cost an idle cycle; what a trigger changed in the same transaction waits for the
// next poll.
func matters(ev salesforce.ChangeEvent, owners map[string]bool, ownClient string) bool {
	switch {
	case ownClient != "" && ev.Client() == ownClient:
		return false
	case ev.OwnerID == "":
		return true
	case ev.ChangeType == salesforce.ChangeCreate || ev.ChangeType == salesforce.ChangeUndelete:
		return owners[ev.OwnerID]
	}
	return true
}
