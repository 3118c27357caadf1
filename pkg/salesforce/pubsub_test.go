package salesforce

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// newPubSubEnv is a simulated org with its Pub/Sub API on an in-memory transport.
func newPubSubEnv(t *testing.T, o simOptions) (*simEnv, *PubSub) {
	t.Helper()
	return newPubSubEnvWith(t, o, sfsim.PubSubConfig{})
}

func newPubSubEnvWith(t *testing.T, o simOptions, cfg sfsim.PubSubConfig) (*simEnv, *PubSub) {
	t.Helper()
	o.pubsub = &cfg
	env := newSimEnv(t, o)
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.sim.ServePubSub(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServePubSub: %v", err)
		}
	})
	ps, err := env.conn.PubSub("passthrough:///sfsim", PubSubPlaintext(), PubSubDialOptions(
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	return env, ps
}

// collector runs a subscription in the background and gathers its batches.
type collector struct {
	mu      sync.Mutex
	batches []FetchBatch
	events  []ChangeEvent
	done    chan error
	cancel  context.CancelFunc
}

func subscribeInBackground(t *testing.T, ps *PubSub, sub Subscription) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c := &collector{done: make(chan error, 1), cancel: cancel}
	go func() {
		c.done <- ps.Subscribe(ctx, sub, func(_ context.Context, b FetchBatch) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.batches = append(c.batches, b)
			c.events = append(c.events, b.Events...)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-c.done; !errors.Is(err, context.Canceled) {
			t.Logf("subscription ended with %v", err) // a failure the test checked itself
		}
	})
	return c
}

// wait polls until the collector holds n events.
func (c *collector) wait(t *testing.T, n int) []ChangeEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := slices.Clone(c.events)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case err := <-c.done:
			t.Fatalf("subscription ended after %d of %d events: %v", len(got), n, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events after 10s", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitSubscribers(t *testing.T, sim *sfsim.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sim.PubSubSubscribers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", sim.PubSubSubscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPubSubDecodesChangeEvents(t *testing.T) {
	env, ps := newPubSubEnv(t, simOptions{users: 1})
	topic, _ := ChangeTopic(tandemv1.RecordKind_RECORD_KIND_CONTACT)
	c := subscribeInBackground(t, ps, Subscription{Topic: topic})
	waitSubscribers(t, env.sim, 1)

	rep := env.users[0].UserId
	id, err := env.sim.Insert("Contact", map[string]any{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.sim.Update("Contact", id, map[string]any{"FirstName": "Augusta", "Phone": "+44 20 7946 0000"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := env.sim.Delete("Contact", id); err != nil {
		t.Fatal(err)
	}
	got := c.wait(t, 3)
	want := []struct {
		typ, owner, user string
	}{
		{ChangeCreate, rep, rep},
		{ChangeUpdate, "", env.sim.AdminUserID()},
		{ChangeDelete, "", env.sim.AdminUserID()},
	}
	for i, w := range want {
		ev := got[i]
		if ev.Entity != "Contact" || ev.ChangeType != w.typ || !slices.Equal(ev.RecordIDs, []string{id}) || ev.OwnerID != w.owner || ev.CommitUser != w.user {
			t.Errorf("event %d: %+v, want %s of %s owned by %q by %s", i, ev, w.typ, id, w.owner, w.user)
		}
		if ev.CommitTime.IsZero() || len(ev.ReplayID) == 0 || ev.ID == "" {
			t.Errorf("event %d: no commit time, replay id or id: %+v", i, ev)
		}
	}
	for _, f := range []string{"Name.FirstName", "Phone", "LastModifiedDate"} {
		if !slices.Contains(got[1].ChangedFields, f) {
			t.Errorf("update: ChangedFields %v lacks %s", got[1].ChangedFields, f)
		}
	}
	// One GetSchema for the topic's schema, however many events: the decoder is cached.
	ps.mu.Lock()
	schemas := len(ps.schemas)
	ps.mu.Unlock()
	if schemas != 1 {
		t.Errorf("%d schemas cached, want 1", schemas)
	}
}

func TestPubSubResumesAfterReplayID(t *testing.T) {
	env, ps := newPubSubEnv(t, simOptions{users: 1})
	topic, _ := ChangeTopic(tandemv1.RecordKind_RECORD_KIND_CONTACT)
	var ids []string
	for _, name := range []string{"One", "Two", "Three"} {
		id, err := env.sim.Insert("Contact", map[string]any{"LastName": name}, env.users[0].UserId)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	all := subscribeInBackground(t, ps, Subscription{Topic: topic, Earliest: true}).wait(t, 3)
	resumed := subscribeInBackground(t, ps, Subscription{Topic: topic, ReplayID: all[0].ReplayID}).wait(t, 2)
	if resumed[0].RecordIDs[0] != ids[1] || resumed[1].RecordIDs[0] != ids[2] {
		t.Errorf("resumed with %v, %v; want %s, %s", resumed[0].RecordIDs, resumed[1].RecordIDs, ids[1], ids[2])
	}

	// A replay id the bus no longer has: a typed error, so the caller starts again from LATEST.
	err := ps.Subscribe(t.Context(), Subscription{Topic: topic, ReplayID: []byte("expired!")}, func(context.Context, FetchBatch) error { return nil })
	if !errors.Is(err, ErrReplayIDInvalid) {
		t.Fatalf("bad replay id: %v, want ErrReplayIDInvalid", err)
	}
	var pe *PubSubError
	if !errors.As(err, &pe) || pe.ErrorCode != sfsim.PubSubErrReplayCorrupted {
		t.Errorf("bad replay id: %v", err)
	}
	if se := syncerr.As(err); se.Code != syncerr.SalesforceRejected {
		t.Errorf("bad replay id classified %s", se.Code)
	}
}

func TestPubSubFlowControlKeepsEventsRequested(t *testing.T) {
	env, ps := newPubSubEnv(t, simOptions{users: 1})
	topic, _ := ChangeTopic(tandemv1.RecordKind_RECORD_KIND_CONTACT)
	for i := range 25 {
		if _, err := env.sim.Insert("Contact", map[string]any{"LastName": "Bulk", "Title": string(rune('A' + i))}, env.users[0].UserId); err != nil {
			t.Fatal(err)
		}
	}
	// Four at a time: the client asks for more as it goes and gets all 25, never more than
	// four in one response.
	c := subscribeInBackground(t, ps, Subscription{Topic: topic, Earliest: true, Fetch: 4})
	c.wait(t, 25)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.batches {
		if len(b.Events) > 4 {
			t.Fatalf("a response with %d events, more than the 4 requested", len(b.Events))
		}
	}
}

func TestPubSubErrors(t *testing.T) {
	// The connector renews a session before use once the org's session timeout has passed
	// (WithSessionTimeout); a longer timeout than the simulator's lets the session expire
	// under it, as when an admin shortens the org's timeout or revokes the session.
	env, ps := newPubSubEnv(t, simOptions{users: 1, opts: []Option{WithSessionTimeout(24 * time.Hour)}})
	ctx := t.Context()
	if _, err := ps.SchemaID(ctx, "/data/OpportunityChangeEvent"); syncerr.As(err).Code != syncerr.SalesforceNotFound {
		t.Errorf("unknown topic: %v", err)
	}
	topic, _ := ChangeTopic(tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if id, err := ps.SchemaID(ctx, topic); err != nil || id == "" {
		t.Fatalf("SchemaID: %q, %v", id, err)
	}

	// A session that expired: the call fails as an auth failure and the token is dropped, so
	// the next call logs in again and succeeds.
	env.clock.Advance(3 * time.Hour)
	_, err := ps.SchemaID(ctx, topic)
	if syncerr.As(err).Code != syncerr.SalesforceAuthFailed {
		t.Fatalf("expired session: %v", err)
	}
	var pe *PubSubError
	if !errors.As(err, &pe) || pe.ErrorCode != sfsim.PubSubErrAuth {
		t.Errorf("expired session: %v", err)
	}
	if _, err := ps.SchemaID(ctx, topic); err != nil {
		t.Errorf("after the failure: %v", err)
	}

	// The server dropping the stream is a retryable unavailability.
	c := subscribeInBackground(t, ps, Subscription{Topic: topic})
	waitSubscribers(t, env.sim, 1)
	env.sim.DropPubSubStreams()
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		if se := syncerr.As(err); se.Code != syncerr.SalesforceUnavailable || !se.Retryable() {
			t.Errorf("dropped stream: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription outlived the dropped stream")
	}
}

func TestChangeTopic(t *testing.T) {
	if topic, ok := ChangeTopic(tandemv1.RecordKind_RECORD_KIND_EVENT); !ok || topic != "/data/EventChangeEvent" {
		t.Errorf("event topic %q", topic)
	}
	if _, ok := ChangeTopic(tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED); ok {
		t.Error("a topic for no kind")
	}
}

func TestPubSubIdleSubscriptionEnds(t *testing.T) {
	// A server that sends nothing, not even keepalives (one an hour here), looks dead: the
	// subscription ends as unavailable and the caller reconnects.
	_, ps := newPubSubEnvWith(t, simOptions{users: 1}, sfsim.PubSubConfig{Keepalive: time.Hour})
	topic, _ := ChangeTopic(tandemv1.RecordKind_RECORD_KIND_CONTACT)
	start := time.Now()
	err := ps.Subscribe(t.Context(), Subscription{Topic: topic, IdleTimeout: 100 * time.Millisecond}, func(context.Context, FetchBatch) error { return nil })
	if se := syncerr.As(err); se.Code != syncerr.SalesforceUnavailable || time.Since(start) > 5*time.Second {
		t.Errorf("idle subscription: %v after %s", err, time.Since(start))
	}
}
