package exchangeworker

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testOrg = "00Dacme000000001"
	contact = tandemv1.RecordKind_RECORD_KIND_CONTACT
	event   = tandemv1.RecordKind_RECORD_KIND_EVENT
	passed  = tandemv1.CheckResult_CHECK_RESULT_PASSED
	failed  = tandemv1.CheckResult_CHECK_RESULT_FAILED
)

// env is a worker on a real NATS JetStream and a real Redis.
type env struct {
	t     *testing.T
	p     *platformtest.Platform
	st    *store.Store
	w     *Worker
	clock *platformtest.Clock
	// read is the last stream sequence read per stream by published.
	read map[string]uint64
}

func testConfig() Config {
	return Config{JobConcurrency: 2, ApplyConcurrency: 2, AllowHTTP: true, BackoffBase: time.Minute, BackoffMax: 10 * time.Minute}
}

func newEnv(t *testing.T, cfg Config, factory func(p *platform.Platform) ConnectorFactory) *env {
	t.Helper()
	p := platformtest.New(t)
	w, err := NewWithConnectors(cfg, p.Platform, factory(p.Platform))
	if err != nil {
		t.Fatal(err)
	}
	clk := platformtest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	w.now = clk.Now
	return &env{t: t, p: p, st: p.Store, w: w, clock: clk, read: map[string]uint64{}}
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

func jobMessage(t *testing.T, job *tandemv1.SyncJob) *bus.Message {
	t.Helper()
	subject, err := bus.ExchangeJobSubject(job.GetOrgId(), store.DefaultWorkerPool, job.GetUserId())
	if err != nil {
		t.Fatal(err)
	}
	return platformtest.Message(t, subject, job, 1)
}

// published returns the messages stored in stream since the last call, with their subjects.
func published[M proto.Message](e *env, stream string, newM func() M) ([]M, []string) {
	e.t.Helper()
	msgs, subjects, last := platformtest.Published(e.t, e.p.JetStream, stream, e.read[stream], newM)
	e.read[stream] = last
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
	return platformtest.Stored(e.t, e.p.JetStream, stream)
}

// storedCursor returns the worker's stored cursor of a user's kind.
func (e *env) storedCursor(userID string, kind tandemv1.RecordKind) (cursor, bool) {
	e.t.Helper()
	c, err := e.w.loadCursor(e.t.Context(), exchange.Mailbox{OrgID: testOrg, UserID: userID}, kind)
	if err != nil {
		e.t.Fatal(err)
	}
	_, ok, err := e.st.GetCursor(e.t.Context(), store.CursorKey{Org: testOrg, User: userID, Name: "exchange-" + store.KindName(kind)})
	if err != nil {
		e.t.Fatal(err)
	}
	return c, ok
}

func (e *env) exchangeStatus(userID string) *tandemv1.UserStatus {
	e.t.Helper()
	us, err := status.New(e.st).GetPart(e.t.Context(), store.UserKey{OrgID: testOrg, UserID: userID}, status.PartExchange)
	if err != nil {
		e.t.Fatal(err)
	}
	return us
}

// errorReport returns the user's error-report entries.
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
	platformtest.PutInFlight(e.t, e.st, store.UserKey{OrgID: testOrg, UserID: userID}, kind, target, e.clock.Now(), cmds...)
}

// putLedger commits mirror entries and links to the user's ledger, as the reconciler does when
// it records write results.
func (e *env) putLedger(userID string, kind tandemv1.RecordKind, mirror []*tandemv1.MirrorRecord, links ...*tandemv1.Mapping) {
	e.t.Helper()
	ctx := e.t.Context()
	uk := store.UserKey{OrgID: testOrg, UserID: userID}
	lease, err := e.st.AcquireLease(ctx, uk, "reconcile", time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	led := ledger.New(e.st)
	snap, err := led.Load(ctx, uk, kind)
	if err != nil {
		e.t.Fatal(err)
	}
	w := snap.NewWrites()
	for _, m := range mirror {
		w.PutMirror(tandemv1.System_SYSTEM_EXCHANGE, m)
	}
	for _, l := range links {
		w.PutMapping(l)
	}
	if err := led.Commit(ctx, lease, w); err != nil {
		e.t.Fatal(err)
	}
}
