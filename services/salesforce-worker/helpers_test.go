package salesforceworker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/ledger"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile"
	"github.com/tandem-sync/tandem/pkg/seal"
	"github.com/tandem-sync/tandem/pkg/servertest"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncer"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testOrg = "00D000000000001EAA"
	contact = tandemv1.RecordKind_RECORD_KIND_CONTACT
	event   = tandemv1.RecordKind_RECORD_KIND_EVENT
)

// clock is a settable time source for the worker.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a salesforce-worker on a real NATS JetStream and a real Redis, with the platform
// built by hand.
type env struct {
	t     *testing.T
	nc    *nats.Conn
	js    jetstream.JetStream
	p     *platform.Platform
	st    *store.Store
	w     *Worker
	clock *clock
	// read is the last stream sequence read per stream by published.
	read map[string]uint64
}

func testConfig() Config {
	return Config{JobConcurrency: 2, ApplyConcurrency: 2, DirectoryRefresh: time.Hour, ClientName: "TandemTest"}
}

func newEnv(t *testing.T, cfg Config, factory func(p *platform.Platform) ConnectorFactory) *env {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	nc := servertest.NATSConn(t)
	b, err := bus.New(nc, bus.Config{Name: "salesforce-worker-test"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Declare(ctx); err != nil {
		t.Fatal(err)
	}
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := seal.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(servertest.Redis(t), keyring)
	p := &platform.Platform{Bus: b, Store: st, Telemetry: telemetry.Noop(), Logger: logger, Health: lifecycle.NewHealth()}
	w, err := NewWithConnectors(cfg, p, factory(p))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	w.now = clk.Now
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, p: p, st: st, w: w, clock: clk, read: map[string]uint64{}}
}

// putOrg stores the org (the fake connectors do not look at its connection).
func (e *env) putOrg(org *tandemv1.Org) {
	e.t.Helper()
	if _, err := e.st.PutOrg(e.t.Context(), org); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) putUsers(users ...*tandemv1.SyncUser) {
	e.t.Helper()
	if err := e.st.PutUsers(e.t.Context(), testOrg, users); err != nil {
		e.t.Fatal(err)
	}
}

// message is a delivery of msg as the bus hands it to a handler.
func message(t *testing.T, subject string, msg proto.Message, delivered uint64) *bus.Message {
	t.Helper()
	data, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Message{Subject: subject, Data: data, NumDelivered: delivered}
}

func jobMessage(t *testing.T, job *tandemv1.SyncJob) *bus.Message {
	t.Helper()
	subject, err := bus.SalesforceJobSubject(job.GetOrgId())
	if err != nil {
		t.Fatal(err)
	}
	return message(t, subject, job, 1)
}

func applyMessage(t *testing.T, batch *tandemv1.WriteBatch, delivered uint64) *bus.Message {
	t.Helper()
	subject, err := bus.ApplySubject(batch.GetOrgId(), batch.GetTarget(), batch.GetUserId())
	if err != nil {
		t.Fatal(err)
	}
	return message(t, subject, batch, delivered)
}

// published returns the messages stored in stream since the last call, with their subjects.
func published[M proto.Message](e *env, stream string, newM func() M) ([]M, []string) {
	e.t.Helper()
	ctx := e.t.Context()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var msgs []M
	var subjects []string
	for seq := max(e.read[stream]+1, info.State.FirstSeq); seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // consumed and removed from a work-queue stream
		}
		if err != nil {
			e.t.Fatal(err)
		}
		m := newM()
		if err := proto.Unmarshal(raw.Data, m); err != nil {
			e.t.Fatal(err)
		}
		msgs = append(msgs, m)
		subjects = append(subjects, raw.Subject)
	}
	e.read[stream] = max(e.read[stream], info.State.LastSeq)
	return msgs, subjects
}

func (e *env) changes() ([]*tandemv1.ChangeBatch, []string) {
	e.t.Helper()
	return published(e, bus.StreamChanges, func() *tandemv1.ChangeBatch { return &tandemv1.ChangeBatch{} })
}

func (e *env) results() ([]*tandemv1.WriteResultBatch, []string) {
	e.t.Helper()
	return published(e, bus.StreamResults, func() *tandemv1.WriteResultBatch { return &tandemv1.WriteResultBatch{} })
}

// streamMsgs is how many messages stream holds.
func (e *env) streamMsgs(stream string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(e.t.Context(), stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// storedCursor returns the org's stored poll cursor of a kind.
func (e *env) storedCursor(kind tandemv1.RecordKind) (cursor, bool) {
	e.t.Helper()
	raw, ok, err := e.st.GetCursor(e.t.Context(), cursorKey(testOrg, kind))
	if err != nil {
		e.t.Fatal(err)
	}
	var c cursor
	if ok {
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			e.t.Fatal(err)
		}
	}
	return c, ok
}

func (e *env) usage() *tandemv1.SalesforceApiUsage {
	e.t.Helper()
	u, err := status.New(e.st).SalesforceUsage(e.t.Context(), testOrg)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// errorReport returns the user's error-report entries; every entry of the org for "".
func (e *env) errorReport(userID string) []*tandemv1.SyncErrorEntry {
	e.t.Helper()
	entries, _, err := e.st.ListErrors(e.t.Context(), testOrg, userID, 0, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return entries
}

// putInFlight records commands as in flight in the user's ledger, as the reconciler does
// before it sends them.
func (e *env) putInFlight(userID string, kind tandemv1.RecordKind, target tandemv1.System, cmds ...*tandemv1.WriteCommand) {
	e.t.Helper()
	ctx := e.t.Context()
	uk := store.UserKey{OrgID: testOrg, UserID: userID}
	led := ledger.New(e.st)
	snap, err := led.Load(ctx, uk, kind)
	if err != nil {
		e.t.Fatal(err)
	}
	w := snap.NewWrites()
	for _, c := range cmds {
		w.PutPending(reconcile.PendingKey(target, c.GetSyncKey()), &tandemv1.PendingWrite{
			Command: c, Target: target, IssuedAt: timestamppb.New(e.clock.Now()), Cycle: 1,
		})
	}
	err = e.st.WithLease(ctx, uk, syncer.LeaseRole, time.Minute, func(ctx context.Context, lease *store.Lease) error {
		return led.Commit(ctx, lease, w)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// run runs the worker's components until the test ends.
func (e *env) run() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(e.t.Context()))
	var wg sync.WaitGroup
	for _, c := range e.w.Components() {
		wg.Go(func() {
			if err := c.Run(ctx); err != nil {
				e.t.Errorf("component %s: %v", c.Name, err)
			}
		})
	}
	e.t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
