package exchangeworker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The notifier: near-real-time Exchange changes. It watches the mailboxes of every syncing
// user with EWS streaming notifications (ews.Watcher, one per org's connector) and, when a
// mailbox reports a change, wakes the user's org: its next cycle becomes due at once, or a
// short gap after the last one started (store.WakeAfter), instead of at the end of the poll
// interval. Polling stays as it is, so a notification that never comes costs latency, never a
// change.

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
}

// RegisterFlags registers the notifier's flags.
func (c *NotifyConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "notify", true, "watch mailboxes with EWS streaming notifications and start a cycle as soon as one changes (polling stays the fallback)")
	fs.DurationVar(&c.Refresh, "notify-refresh", time.Minute, "how often the notifier reads the syncing users again")
	fs.DurationVar(&c.MinGap, "notify-min-gap", store.DefaultWakeGap, "least time between the start of an org's cycle and one a notification starts")
	fs.DurationVar(&c.ConnectionTimeout, "notify-connection-timeout", ews.MaxConnectionTimeout, "how long each GetStreamingEvents connection stays open (1m to 30m)")
	fs.DurationVar(&c.IdleTimeout, "notify-idle-timeout", ews.DefaultStreamIdleTimeout, "reopen a notification connection that sends nothing, not even a keep-alive, for this long")
}

// Validate checks the settings.
func (c NotifyConfig) Validate() error {
	var errs []error
	if c.Refresh < 0 || c.MinGap < 0 || c.IdleTimeout < 0 {
		errs = append(errs, errors.New("--notify-refresh, --notify-min-gap and --notify-idle-timeout must not be negative"))
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
	return c
}

// notifyComponents is the notifier, when it is enabled.
func (w *Worker) notifyComponents() []lifecycle.Component {
	if !w.cfg.Notify.Enabled {
		return nil
	}
	n := newNotifier(w.cfg.Notify, w.st, w.conns, w.log)
	return []lifecycle.Component{{Name: "exchange-notify", Run: n.Run}}
}

// watchable is a connector that can watch mailboxes (EWS; Microsoft Graph will have its own
// change notifications).
type watchable interface {
	NewWatcher(ews.WatchConfig) *ews.Watcher
}

// notifier watches the syncing users' mailboxes and wakes their orgs.
type notifier struct {
	cfg   NotifyConfig
	st    *store.Store
	conns *store.OrgCache[exchange.Connector]
	log   *slog.Logger
	// watchConfig adjusts each org's watcher (tests shorten its back-off).
	watchConfig func(*ews.WatchConfig)

	// changed orgs wait in dirty for wakeLoop; signal tells it there are some.
	mu     sync.Mutex
	dirty  map[string]bool
	signal chan struct{}

	// orgs are the watched orgs; they belong to Run's goroutine.
	orgs map[string]*orgWatch
}

// orgWatch is one org's watcher, on the connector it was made from.
type orgWatch struct {
	conn   exchange.Connector
	w      *ews.Watcher
	cancel context.CancelFunc
	done   chan struct{}
}

func newNotifier(cfg NotifyConfig, st *store.Store, conns *store.OrgCache[exchange.Connector], logger *slog.Logger) *notifier {
	return &notifier{
		cfg: cfg.withDefaults(), st: st, conns: conns, log: logger.With(slog.String("part", "notify")),
		dirty: map[string]bool{}, signal: make(chan struct{}, 1), orgs: map[string]*orgWatch{},
	}
}

// Run watches until ctx ends. Every goroutine it starts has ended when it returns, and every
// subscription it made is ended (see ews.Watcher.Run).
func (n *notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { n.wakeLoop(ctx) })
	defer wg.Wait()
	defer n.stopAll()
	return lifecycle.Every(ctx, n.cfg.Refresh, n.refresh, func(err error) {
		n.log.WarnContext(ctx, "reading the users to watch", slog.Any("error", err))
	})
}

// refresh starts, updates and stops the orgs' watchers to match the syncing users.
func (n *notifier) refresh(ctx context.Context) error {
	orgs, err := n.st.ListOrgs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	watched := map[string]bool{}
	for _, org := range orgs {
		id := org.GetOrgId()
		if !org.GetEnabled() || org.GetExchange() == nil {
			continue
		}
		watches, err := n.watches(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", id, err))
			watched[id] = n.orgs[id] != nil // keep what it watches until it can be read again
			continue
		}
		if len(watches) == 0 {
			continue
		}
		conn, _, err := n.conns.Get(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", id, err))
			watched[id] = n.orgs[id] != nil
			continue
		}
		wc, ok := conn.(watchable)
		if !ok {
			continue
		}
		ow := n.orgs[id]
		if ow != nil && ow.conn != conn {
			// The org's settings changed: its connector was built again.
			ow.stop()
			ow = nil
		}
		if ow == nil {
			ow = n.start(ctx, id, conn, wc)
			n.orgs[id] = ow
		}
		ow.w.Set(watches)
		watched[id] = true
	}
	for id, ow := range n.orgs {
		if !watched[id] {
			ow.stop()
			delete(n.orgs, id)
		}
	}
	return errors.Join(errs...)
}

// watches lists the org's syncing users' mailboxes, with the kinds each syncs, as the scheduler
// decides who syncs.
func (n *notifier) watches(ctx context.Context, orgID string) ([]ews.Watch, error) {
	users, err := n.st.ListUsers(ctx, orgID)
	if err != nil {
		return nil, err
	}
	cfgs, err := n.st.ListConfigurations(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var out []ews.Watch
	for _, u := range users {
		cfg, ok := store.SelectConfiguration(cfgs, u)
		kinds := syncedKinds(cfg)
		if !ok || len(kinds) == 0 || u.GetEmail() == "" {
			continue
		}
		out = append(out, ews.Watch{Mailbox: exchange.Mailbox{OrgID: orgID, UserID: u.GetUserId(), Address: u.GetEmail()}, Kinds: kinds})
	}
	return out, nil
}

// syncedKinds lists the record kinds a configuration syncs.
func syncedKinds(cfg *tandemv1.SyncConfiguration) []tandemv1.RecordKind {
	var kinds []tandemv1.RecordKind
	if cfg.GetContacts().GetDirection() != tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
		kinds = append(kinds, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	}
	if cfg.GetEvents().GetDirection() != tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
		kinds = append(kinds, tandemv1.RecordKind_RECORD_KIND_EVENT)
	}
	return kinds
}

// start runs a watcher for the org.
func (n *notifier) start(ctx context.Context, orgID string, conn exchange.Connector, wc watchable) *orgWatch {
	cfg := ews.WatchConfig{
		OnChange:          n.changed,
		ConnectionTimeout: n.cfg.ConnectionTimeout,
		IdleTimeout:       n.cfg.IdleTimeout,
		Logger:            n.log.With(slog.String(telemetry.KeyOrg, orgID)),
	}
	if n.watchConfig != nil {
		n.watchConfig(&cfg)
	}
	wctx, cancel := context.WithCancel(ctx)
	ow := &orgWatch{conn: conn, w: wc.NewWatcher(cfg), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ow.done)
		// Run returns nil: the watcher retries whatever fails.
		_ = ow.w.Run(wctx)
	}()
	n.log.InfoContext(ctx, "watching the org's mailboxes for changes", slog.String(telemetry.KeyOrg, orgID))
	return ow
}

// stop ends the watcher and waits for it (it ends its subscriptions).
func (ow *orgWatch) stop() {
	ow.cancel()
	<-ow.done
}

func (n *notifier) stopAll() {
	for _, ow := range n.orgs {
		ow.cancel()
	}
	for _, ow := range n.orgs {
		<-ow.done
	}
	clear(n.orgs)
}

// changed is told that a mailbox changed. It only marks the org: wakeLoop wakes it, once for
// however many changes came in the meantime.
func (n *notifier) changed(mb exchange.Mailbox) {
	n.mu.Lock()
	n.dirty[mb.OrgID] = true
	n.mu.Unlock()
	select {
	case n.signal <- struct{}{}:
	default:
	}
}

// wakeLoop wakes the orgs whose mailboxes changed. Every change is followed by a wake that
// starts after it, so none is missed, and a burst of changes makes few.
func (n *notifier) wakeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.signal:
		}
		n.mu.Lock()
		orgs := n.dirty
		n.dirty = map[string]bool{}
		n.mu.Unlock()
		for org := range orgs {
			due, err := n.st.WakeAfter(ctx, org, n.cfg.MinGap)
			if err != nil {
				if ctx.Err() == nil {
					n.log.WarnContext(ctx, "cannot wake the org; its cycle runs at the poll interval", slog.String(telemetry.KeyOrg, org), slog.Any("error", err))
				}
				continue
			}
			n.log.DebugContext(ctx, "org woken by a mailbox change", slog.String(telemetry.KeyOrg, org), slog.Time("due", due))
		}
	}
}
