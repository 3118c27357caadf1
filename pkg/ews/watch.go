package ews

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/retry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Watching mailboxes for changes with streaming notifications.
//
// A Watcher keeps one streaming subscription per watched mailbox, to the folders of the kinds
// it syncs (Salesforce_Sync, the calendar), and reads them on as few GetStreamingEvents
// connections as Exchange allows: subscriptions are grouped by the mailbox server they live on
// (the X-BackEndOverrideCookie their Subscribe was answered with, within one EWS URL), at most
// 200 to a connection, each connection anchored at (and impersonating) the first mailbox of
// its group, as Microsoft describes for notifications across many mailboxes. It only says that
// a mailbox changed; the sync cycle it triggers reads what changed.
//
// Subscriptions that Exchange loses (expired after 30 minutes without a connection, dropped by
// a restarted server, fallen behind) are made again, and since what happened in between was
// not reported, the mailbox counts as changed once its new subscription is made. Connections
// that fail are opened again with back-off (their mailboxes count as changed, if the connection
// had worked: events on their way were lost with it); connections that reach their timeout
// are opened again right away.

// Defaults of WatchConfig.
const (
	DefaultWatchConcurrency = 8
	// watchCleanupTimeout bounds the unsubscribes after a Watcher stops.
	watchCleanupTimeout = 5 * time.Second
)

// DefaultWatchBackoff spaces attempts after failures.
var DefaultWatchBackoff = retry.Policy{Base: time.Second, Max: 5 * time.Minute, Jitter: retry.DefaultJitter}

// Watch is a mailbox to watch, for the record kinds whose folders to watch.
type Watch struct {
	Mailbox exchange.Mailbox
	Kinds   []tandemv1.RecordKind
}

// WatchConfig configures a Watcher.
type WatchConfig struct {
	// OnChange is told that a watched mailbox changed (or may have: see above). It is called
	// from the watcher's goroutines, must be safe for concurrent use and must not block.
	OnChange func(exchange.Mailbox)
	// ConnectionTimeout is how long each GetStreamingEvents connection stays open (whole
	// minutes, at most 30); zero means MaxConnectionTimeout.
	ConnectionTimeout time.Duration
	// IdleTimeout is how long a connection may send nothing at all before it is given up and
	// opened again; zero means DefaultStreamIdleTimeout.
	IdleTimeout time.Duration
	// Backoff spaces the attempts to subscribe a mailbox, or to open a connection, after
	// failures; the zero Policy means DefaultWatchBackoff. A delay Exchange asks for wins.
	Backoff retry.Policy
	// MaxPerConnection caps the subscriptions of one connection; zero or more than
	// MaxStreamingSubscriptions means MaxStreamingSubscriptions.
	MaxPerConnection int
	// Concurrency caps the Subscribe and Unsubscribe requests in flight; zero means
	// DefaultWatchConcurrency.
	Concurrency int
	// Logger receives diagnostics (with the user and mailbox concerned, not the org: a
	// connector serves one org, which the logger should name); nil means the connector's.
	Logger *slog.Logger
	// CatchUp makes every mailbox count as changed once its first subscription is made, as
	// after a lost one: for a watcher that takes over mailboxes nobody watched for a while
	// (another watcher stopped or died), whose changes in the meantime nobody reported. A
	// subscription reports only what happens after it is made.
	CatchUp bool
	// OnWatching is told when a mailbox starts being watched (true: its subscription was made,
	// or a connection that carries it delivers again after one failed, so every change from now
	// on reaches OnChange) and when it stops (false: its subscription was lost or dropped, its
	// connection failed, or the watcher stopped). A change while a mailbox is not watched is
	// reported by OnChange once it is watched again, except when the watcher stops or the
	// mailbox is dropped. Called like OnChange; nil means nobody asks.
	OnWatching func(mb exchange.Mailbox, watching bool)
	// OnItems, when set, is told of the changes a notification reports when they all create
	// or modify items: which items, at the change keys they are at now; they are not reported
	// to OnChange, and a notification that only changes folders' counts is not reported. A
	// caller that knows which versions it wrote itself can then tell the echo of its own
	// writes from other changes. Called like OnChange.
	OnItems func(mb exchange.Mailbox, items []ItemID)
}

// Watcher watches mailboxes of one connector's Exchange. Set says which; Run does the work.
type Watcher struct {
	c   *Connector
	cfg WatchConfig
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	want map[string]Watch // by lower-cased address
	kick chan struct{}

	// watchMu orders the calls to OnWatching: a connection's goroutine tells that its
	// mailboxes are watched while Run's may be dropping one of them.
	watchMu sync.Mutex

	reports chan connReport

	// The state below belongs to Run's goroutine.
	subs  map[string]*watchSub // by lower-cased address
	conns map[*watchConn]bool
}

// watchSub is the subscription of one watched mailbox.
type watchSub struct {
	watch   Watch
	target  Target
	folders []string
	// id and cookie are the subscription's, empty while there is none.
	id, cookie string
	conn       *watchConn
	failures   int
	retryAt    time.Time
	// losses counts the subscriptions lost in a row, so that one that keeps being lost is
	// made again with back-off.
	losses int
	// lost says an earlier subscription of the mailbox was lost (or, with CatchUp, that the
	// mailbox went unwatched before its first): the mailbox counts as changed once the next
	// one is made.
	lost bool
	// watching says OnWatching was last told true, dropped that the watcher no longer watches
	// the mailbox with this sub; both under the Watcher's watchMu (see watched).
	watching, dropped bool
}

// watchConn is one GetStreamingEvents connection and the subscriptions it carries.
type watchConn struct {
	// group is the server the subscriptions live on: their cookie, or, when Exchange handed
	// out none, their one mailbox (a connection each, routed by its anchor).
	url, group, cookie string
	subs               map[string]*watchSub // by subscription id
	// stale says the subscriptions changed since the connection opened.
	stale    bool
	running  bool
	gen      int
	cancel   context.CancelFunc
	done     chan struct{}
	healthy  *atomic.Bool // a message arrived on the current connection
	failures int
	retryAt  time.Time
}

// connReport is what a connection's goroutine tells Run.
type connReport struct {
	conn *watchConn
	gen  int
	// lost are subscriptions the open connection reports it no longer carries.
	lost    []string
	lostErr error
	// ended says the connection ended, with err (nil: closed at its timeout).
	ended bool
	err   error
}

// NewWatcher returns a watcher of this connector's mailboxes.
func (c *Connector) NewWatcher(cfg WatchConfig) *Watcher {
	if cfg.OnChange == nil {
		cfg.OnChange = func(exchange.Mailbox) {}
	}
	if cfg.OnWatching == nil {
		cfg.OnWatching = func(exchange.Mailbox, bool) {}
	}
	if cfg.Backoff.Base <= 0 {
		cfg.Backoff = DefaultWatchBackoff
	}
	if cfg.MaxPerConnection <= 0 || cfg.MaxPerConnection > MaxStreamingSubscriptions {
		cfg.MaxPerConnection = MaxStreamingSubscriptions
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultWatchConcurrency
	}
	logger := cfg.Logger
	if logger == nil {
		logger = c.log
	}
	return &Watcher{
		c: c, cfg: cfg, log: logger, now: time.Now,
		want: map[string]Watch{}, kick: make(chan struct{}, 1), reports: make(chan connReport),
		subs: map[string]*watchSub{}, conns: map[*watchConn]bool{},
	}
}

// Set replaces the mailboxes to watch. It may be called at any time, before or during Run.
func (w *Watcher) Set(watches []Watch) {
	want := make(map[string]Watch, len(watches))
	for _, wt := range watches {
		kinds := slices.Clone(wt.Kinds)
		slices.Sort(kinds)
		wt.Kinds = slices.Compact(kinds)
		want[strings.ToLower(strings.TrimSpace(wt.Mailbox.Address))] = wt
	}
	w.mu.Lock()
	w.want = want
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends, then closes the connections and ends the subscriptions (within a
// few seconds of its own). It returns nil: failures are retried, not returned.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.stop(ctx)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := w.reconcile(ctx)
		if ctx.Err() != nil {
			return nil
		}
		timer.Reset(time.Hour)
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		case r := <-w.reports:
			w.handle(r)
		case <-timer.C:
		}
	}
}

// reconcile makes the subscriptions and connections match what is wanted, as far as back-offs
// allow, and returns when it should run again (zero: when something happens).
func (w *Watcher) reconcile(ctx context.Context) time.Time {
	w.mu.Lock()
	want := maps.Clone(w.want)
	w.mu.Unlock()

	// Mailboxes no longer watched, or watched for other kinds or folders, lose their
	// subscription.
	var gone []*watchSub
	for addr, sub := range w.subs {
		wt, ok := want[addr]
		changed := ok && sub.id != "" && (!slices.Equal(wt.Kinds, sub.watch.Kinds) || w.foldersMoved(sub))
		if ok && !changed {
			// Same address and kinds; the ids may have been corrected. Under watchMu: a
			// connection's goroutine reads the mailbox in watched.
			w.watchMu.Lock()
			sub.watch = wt
			w.watchMu.Unlock()
			continue
		}
		w.detach(sub)
		w.unwatched(sub, true)
		if sub.id != "" {
			gone = append(gone, sub)
		}
		delete(w.subs, addr)
	}
	w.unsubscribe(ctx, gone)

	// Mailboxes without a subscription get one.
	now := w.now()
	var due []*watchSub
	for addr, wt := range want {
		sub := w.subs[addr]
		if sub == nil {
			sub = &watchSub{watch: wt, lost: w.cfg.CatchUp}
			w.subs[addr] = sub
		}
		if sub.id == "" && !now.Before(sub.retryAt) {
			due = append(due, sub)
		}
	}
	w.subscribe(ctx, due)

	// Subscriptions go to a connection of their server with room, and connections whose
	// subscriptions changed, or that ended, are opened (again).
	for _, sub := range w.subs {
		if sub.id != "" && sub.conn == nil {
			w.assign(sub)
		}
	}
	now = w.now()
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for conn := range w.conns {
		if len(conn.subs) == 0 {
			w.close(conn)
			delete(w.conns, conn)
			continue
		}
		if conn.running && !conn.stale {
			continue
		}
		if now.Before(conn.retryAt) {
			later(conn.retryAt)
			continue
		}
		if ctx.Err() == nil {
			w.open(ctx, conn)
		}
	}
	for _, sub := range w.subs {
		if sub.id == "" {
			later(sub.retryAt)
		}
	}
	return next
}

// foldersMoved reports whether the connector now knows other folders for the mailbox than the
// subscription watches (the user deleted Salesforce_Sync and Tandem made it again).
func (w *Watcher) foldersMoved(sub *watchSub) bool {
	w.c.mu.Lock()
	e, ok := w.c.folders[strings.ToLower(sub.watch.Mailbox.Address)]
	w.c.mu.Unlock()
	if !ok {
		return false
	}
	ids, err := watchedFolders(e.folders, sub.watch.Kinds)
	return err == nil && !slices.Equal(folderStrings(ids), sub.folders)
}

func watchedFolders(f exchange.Folders, kinds []tandemv1.RecordKind) ([]FolderID, error) {
	var out []FolderID
	for _, k := range kinds {
		id, err := folderOf(f, k)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

func folderStrings(ids []FolderID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// subscribe makes the subscriptions of subs, a few at a time.
func (w *Watcher) subscribe(ctx context.Context, subs []*watchSub) {
	w.each(ctx, subs, func(ctx context.Context, sub *watchSub) {
		mb := sub.watch.Mailbox
		err := w.subscribeOne(ctx, sub)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			sub.failures++
			delay := w.cfg.Backoff.DelayFor(err, sub.failures)
			sub.retryAt = w.now().Add(delay)
			w.c.failed(mb, err)
			level := slog.LevelWarn
			if sub.failures > 1 {
				level = slog.LevelDebug
			}
			w.log.Log(ctx, level, "cannot subscribe to the mailbox's changes; polling goes on", "user", mb.UserID,
				"mailbox", mb.Address, "failures", sub.failures, "retry_in", delay, "error", err)
			return
		}
		sub.failures = 0
		// Exchange keeps the subscription's events until a connection takes them.
		w.watched(sub)
		if sub.lost {
			sub.lost = false
			w.cfg.OnChange(mb)
		}
	})
}

func (w *Watcher) subscribeOne(ctx context.Context, sub *watchSub) error {
	e, _, err := w.c.mailbox(ctx, sub.watch.Mailbox)
	if err != nil {
		return err
	}
	t := e.target
	ids, err := watchedFolders(e.folders, sub.watch.Kinds)
	if err != nil {
		return err
	}
	// Anchored at its own mailbox, the request reaches that mailbox's server, whose cookie
	// the answer brings: the subscription's group.
	s, err := w.c.client.Subscribe(ctx, t, ids, ChangeEvents, Affinity{Anchor: t.Address})
	if err != nil {
		return err
	}
	sub.target, sub.folders, sub.id, sub.cookie = t, folderStrings(ids), s.ID, s.Cookie
	return nil
}

// unsubscribe ends subscriptions no longer wanted; failures only cost a subscription that
// expires on its own.
func (w *Watcher) unsubscribe(ctx context.Context, subs []*watchSub) {
	w.each(ctx, subs, func(ctx context.Context, sub *watchSub) {
		err := w.c.client.Unsubscribe(ctx, sub.target, sub.id, Affinity{Anchor: sub.target.Address, Cookie: sub.cookie})
		if err != nil && ctx.Err() == nil {
			w.log.DebugContext(ctx, "unsubscribe failed; the subscription will expire", "mailbox", sub.target.Address, "error", err)
		}
	})
}

// each runs f for every sub, Concurrency at a time, and waits for them all.
func (w *Watcher) each(ctx context.Context, subs []*watchSub, f func(context.Context, *watchSub)) {
	if len(subs) == 0 {
		return
	}
	sem := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, sub := range subs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(ctx, sub)
		})
	}
	wg.Wait()
}

// assign puts a subscription on a connection of its server that has room, or a new one.
func (w *Watcher) assign(sub *watchSub) {
	group := sub.cookie
	if group == "" {
		group = "mailbox:" + strings.ToLower(sub.target.Address)
	}
	for conn := range w.conns {
		if conn.url == sub.target.URL && conn.group == group && len(conn.subs) < w.cfg.MaxPerConnection {
			w.attach(conn, sub)
			return
		}
	}
	conn := &watchConn{url: sub.target.URL, group: group, cookie: sub.cookie, subs: map[string]*watchSub{}}
	w.conns[conn] = true
	w.attach(conn, sub)
}

func (w *Watcher) attach(conn *watchConn, sub *watchSub) {
	conn.subs[sub.id] = sub
	conn.stale = true
	sub.conn = conn
}

// detach takes a subscription off its connection. The connection goes on carrying it until
// it opens again; whatever it reports for it then is ignored.
func (w *Watcher) detach(sub *watchSub) {
	if sub.conn != nil {
		delete(sub.conn.subs, sub.id)
		sub.conn = nil
	}
}

// notify reports a notification's events: to OnItems when it is set and they only create or
// modify items (with the change keys they left) and change folders' counts, to OnChange
// otherwise.
func (w *Watcher) notify(mb exchange.Mailbox, events []Event) {
	if w.cfg.OnItems == nil {
		w.cfg.OnChange(mb)
		return
	}
	var items []ItemID
	for _, e := range events {
		switch {
		case e.Type == EventStatus:
		case e.Type == EventModified && e.ItemID.ID == "" && e.FolderID.ID != "":
			// A folder's counts changed, with the items whose events come with it.
		case (e.Type == EventCreated || e.Type == EventModified) && e.ItemID.ID != "" && e.ItemID.ChangeKey != "":
			items = append(items, e.ItemID)
		default:
			w.cfg.OnChange(mb)
			return
		}
	}
	if len(items) > 0 {
		w.cfg.OnItems(mb, items)
	}
}

// watched tells OnWatching that the mailbox of sub is watched, unless it was told already or
// the sub was dropped (a connection goes on carrying a dropped sub until it opens again).
func (w *Watcher) watched(sub *watchSub) {
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	if !sub.watching && !sub.dropped {
		sub.watching = true
		w.cfg.OnWatching(sub.watch.Mailbox, true)
	}
}

// unwatched tells OnWatching that the mailbox of sub is no longer watched, unless it was not;
// drop also makes it the last word on sub.
func (w *Watcher) unwatched(sub *watchSub, drop bool) {
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	sub.dropped = sub.dropped || drop
	if sub.watching {
		sub.watching = false
		w.cfg.OnWatching(sub.watch.Mailbox, false)
	}
}

// lose forgets a subscription Exchange no longer has; the mailbox subscribes again.
func (w *Watcher) lose(sub *watchSub, why error) {
	mb := sub.watch.Mailbox
	sub.losses++
	var delay time.Duration
	if sub.losses > 1 {
		delay = w.cfg.Backoff.Delay(sub.losses - 1)
	}
	w.log.Info("subscription lost; subscribing again", "user", mb.UserID, "mailbox", mb.Address, "reason", why, "in", delay)
	w.detach(sub)
	w.unwatched(sub, false)
	sub.id, sub.cookie, sub.lost, sub.retryAt = "", "", true, w.now().Add(delay)
}

// open (re)opens a connection with the subscriptions it carries now.
func (w *Watcher) open(ctx context.Context, conn *watchConn) {
	w.close(conn)
	conn.gen++
	conn.stale, conn.running = false, true
	conn.healthy = &atomic.Bool{}
	cctx, cancel := context.WithCancel(ctx)
	conn.cancel, conn.done = cancel, make(chan struct{})
	byID := make(map[string]exchange.Mailbox, len(conn.subs))
	carried := make([]*watchSub, 0, len(conn.subs))
	anchor := ""
	for id, sub := range conn.subs {
		byID[id] = sub.watch.Mailbox
		carried = append(carried, sub)
		if a := sub.target.Address; anchor == "" || strings.ToLower(a) < strings.ToLower(anchor) {
			anchor = a
		}
	}
	req := StreamRequest{
		SubscriptionIDs: slices.Sorted(maps.Keys(byID)), Timeout: w.cfg.ConnectionTimeout, IdleTimeout: w.cfg.IdleTimeout,
		Affinity: Affinity{Anchor: anchor, Cookie: conn.cookie},
	}
	gen, healthy, done := conn.gen, conn.healthy, conn.done
	go func() {
		defer close(done)
		err := w.c.client.GetStreamingEvents(cctx, Target{URL: conn.url, Address: anchor}, req, func(m StreamMessage) error {
			if !healthy.Swap(true) {
				// The connection delivers: its mailboxes are watched again if it failed before.
				for _, sub := range carried {
					w.watched(sub)
				}
			}
			for _, n := range m.Notifications {
				mb, ok := byID[n.SubscriptionID]
				if ok && slices.ContainsFunc(n.Events, func(e Event) bool { return e.Type != EventStatus }) {
					w.notify(mb, n.Events)
				}
			}
			if m.Err != nil {
				w.report(cctx, connReport{conn: conn, gen: gen, lost: m.Err.SubscriptionIDs, lostErr: m.Err})
			}
			return nil
		})
		if cctx.Err() != nil {
			return // closed by Run, which knows
		}
		w.report(cctx, connReport{conn: conn, gen: gen, ended: true, err: err})
	}()
}

// report hands a report to Run, unless the connection is being closed.
func (w *Watcher) report(ctx context.Context, r connReport) {
	select {
	case w.reports <- r:
	case <-ctx.Done():
	}
}

// close ends a connection's goroutine and waits for it.
func (w *Watcher) close(conn *watchConn) {
	if conn.cancel != nil {
		conn.cancel()
		<-conn.done
		conn.cancel = nil
	}
	conn.running = false
}

// handle acts on a connection's report.
func (w *Watcher) handle(r connReport) {
	conn := r.conn
	if !w.conns[conn] || r.gen != conn.gen {
		return // from a connection closed since
	}
	for _, id := range r.lost {
		if sub := conn.subs[id]; sub != nil {
			w.lose(sub, r.lostErr)
		}
	}
	if !r.ended {
		return
	}
	<-conn.done
	conn.cancel, conn.running = nil, false
	if r.err != nil {
		// Until a connection delivers again, changes wait in the subscriptions unreported.
		for _, sub := range conn.subs {
			w.unwatched(sub, false)
		}
	}
	if r.err == nil || conn.healthy.Load() {
		// The connection worked: its subscriptions are sound.
		for _, sub := range conn.subs {
			sub.losses = 0
		}
	}
	var se *SubscriptionError
	switch {
	case r.err == nil:
		conn.failures, conn.retryAt = 0, time.Time{}
	case errors.As(r.err, &se) && len(se.SubscriptionIDs) > 0:
		for _, id := range se.SubscriptionIDs {
			if sub := conn.subs[id]; sub != nil {
				w.lose(sub, r.err)
			}
		}
		conn.retryAt = time.Time{}
	case errors.Is(r.err, ErrSubscriptionNotFound), errors.Is(r.err, ErrInvalidSubscription):
		for _, sub := range conn.subs {
			w.lose(sub, r.err)
		}
	default:
		if conn.healthy.Load() {
			conn.failures = 0
			// Events on their way when a working connection broke are lost with it; what
			// happens from now on waits in the subscriptions for the next connection.
			for _, sub := range conn.subs {
				w.cfg.OnChange(sub.watch.Mailbox)
			}
		}
		conn.failures++
		delay := w.cfg.Backoff.DelayFor(r.err, conn.failures)
		conn.retryAt = w.now().Add(delay)
		level := slog.LevelWarn
		if conn.failures > 1 {
			level = slog.LevelDebug
		}
		w.log.Log(context.Background(), level, "notification connection failed; opening it again", "url", conn.url,
			"subscriptions", len(conn.subs), "failures", conn.failures, "retry_in", delay, "error", r.err)
	}
}

// stop closes every connection and ends every subscription.
func (w *Watcher) stop(ctx context.Context) {
	for conn := range w.conns {
		w.close(conn)
	}
	clear(w.conns)
	var live []*watchSub
	for _, sub := range w.subs {
		w.unwatched(sub, true)
		if sub.id != "" {
			live = append(live, sub)
		}
	}
	clear(w.subs)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), watchCleanupTimeout)
	defer cancel()
	w.unsubscribe(cctx, live)
}
