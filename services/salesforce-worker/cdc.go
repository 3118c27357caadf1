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
}

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

// cdc runs the subscriptions of every org this worker sees.
type cdc struct {
	w    *Worker
	cfg  CDCConfig
	wake waker
	log  *slog.Logger
	opts []salesforce.PubSubOption

	mu   sync.Mutex
	subs map[cdcKey]*cdcSub
	// clients are the orgs' Pub/Sub clients, rebuilt when the org's connector is.
	clients map[string]*cdcClient
	wg      sync.WaitGroup
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
	c := &cdc{w: w, cfg: cfg, wake: w.st, log: w.log.With(slog.String("part", "cdc")),
		subs: map[cdcKey]*cdcSub{}, clients: map[string]*cdcClient{}}
	if cfg.Plaintext {
		c.opts = append(c.opts, salesforce.PubSubPlaintext())
	}
	return c
}

// run keeps the subscriptions in line with the orgs until ctx ends, then stops them all and
// waits for them.
func (c *cdc) run(ctx context.Context) error {
	defer c.stopAll()
	return lifecycle.Every(ctx, c.cfg.Refresh, c.refresh, func(err error) {
		c.log.WarnContext(ctx, "CDC: reading the orgs failed", slog.Any("error", err))
	})
}

func (c *cdc) stopAll() {
	c.mu.Lock()
	for _, s := range c.subs {
		s.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		_ = cl.ps.Close()
	}
	c.subs, c.clients = map[cdcKey]*cdcSub{}, map[string]*cdcClient{}
}

// refresh works out which subscriptions are wanted — per enabled org, each kind a syncing user
// syncs, with the users who own the records that matter — and starts and stops them to match.
func (c *cdc) refresh(ctx context.Context) error {
	orgs, err := c.w.st.ListOrgs(ctx)
	if err != nil {
		return err
	}
	want := map[cdcKey]map[string]bool{}
	// unknown are the orgs whose users could not be read this time: their subscriptions stay.
	unknown := map[string]bool{}
	var errs []error
	for _, org := range orgs {
		if !org.GetEnabled() || org.GetSalesforce() == nil {
			continue
		}
		owners, err := c.syncing(ctx, org.GetOrgId())
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", org.GetOrgId(), err))
			unknown[org.GetOrgId()] = true
			continue
		}
		for kind, users := range owners {
			want[cdcKey{org: org.GetOrgId(), kind: kind}] = users
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, sub := range c.subs {
		if _, ok := want[key]; !ok && !unknown[key.org] {
			sub.cancel()
			delete(c.subs, key)
		}
	}
	for key, owners := range want {
		sub := c.subs[key]
		if sub == nil {
			topic, ok := salesforce.ChangeTopic(key.kind)
			if !ok {
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			sub = &cdcSub{key: key, topic: topic, cancel: cancel}
			c.subs[key] = sub
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.subscribe(sctx, sub)
			}()
		}
		sub.owners.Store(&owners)
	}
	return errors.Join(errs...)
}

// syncing returns, per kind synced in the org, its syncing users (the scheduler's rule: users
// with an active configuration that syncs the kind).
func (c *cdc) syncing(ctx context.Context, orgID string) (map[tandemv1.RecordKind]map[string]bool, error) {
	users, err := c.w.st.ListUsers(ctx, orgID)
	if err != nil {
		return nil, err
	}
	cfgs, err := c.w.st.ListConfigurations(ctx, orgID)
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
	for _, u := range users {
		cfg, ok := store.SelectConfiguration(cfgs, u)
		if !ok {
			continue
		}
		if cfg.GetContacts().GetDirection() != tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
			add(tandemv1.RecordKind_RECORD_KIND_CONTACT, u.GetUserId())
		}
		if cfg.GetEvents().GetDirection() != tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
			add(tandemv1.RecordKind_RECORD_KIND_EVENT, u.GetUserId())
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
func (c *cdc) once(ctx context.Context, sub *cdcSub, log *slog.Logger) (progressed bool, err error) {
	ps, err := c.client(ctx, sub.key.org)
	if err != nil {
		return false, err
	}
	key := replayKey(sub.key)
	var replay []byte
	if raw, ok, err := c.w.st.GetCursor(ctx, key); err != nil {
		return false, err
	} else if ok {
		if replay, err = base64.StdEncoding.DecodeString(raw); err != nil {
			log.WarnContext(ctx, "unreadable stored replay id; subscribing from the latest event", slog.Any("error", err))
			replay = nil
		}
	}
	err = ps.Subscribe(ctx, salesforce.Subscription{Topic: sub.topic, ReplayID: replay}, func(ctx context.Context, b salesforce.FetchBatch) error {
		progressed = true
		return c.handle(ctx, sub, b)
	})
	if errors.Is(err, salesforce.ErrReplayIDInvalid) && len(replay) > 0 {
		// The stored position is gone (older than the bus keeps): start again from the tip and
		// poll once, which covers whatever happened in between.
		log.WarnContext(ctx, "stored replay id refused; subscribing from the latest event and syncing the org now", slog.Any("error", err))
		if err := c.w.st.DeleteCursor(ctx, key); err != nil {
			return false, err
		}
		if err := c.wake.DueNow(ctx, sub.key.org); err != nil {
			return false, err
		}
		return true, err
	}
	return progressed, err
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
		if err := c.wake.DueNow(ctx, sub.key.org); err != nil {
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
