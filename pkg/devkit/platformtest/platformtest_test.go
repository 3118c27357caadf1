package platformtest_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testOrg  = "00Dorg000000001"
	testUser = "005user00000001"
)

func newChangeBatch() *tandemv1.ChangeBatch { return &tandemv1.ChangeBatch{} }

// TestPlatformPublishesAndReadsBack checks that the bus's streams are declared, that Published
// reads back what was published in order and only what is new since the position given, and
// that the store seals credentials.
func TestPlatformPublishesAndReadsBack(t *testing.T) {
	p := platformtest.New(t)
	ctx := t.Context()
	subject, err := bus.ChangesSubject(testOrg, testUser)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(cycle uint64) {
		t.Helper()
		b := &tandemv1.ChangeBatch{OrgId: testOrg, UserId: testUser, Cycle: cycle}
		if err := p.Bus.Publish(ctx, subject, b, bus.MsgID(subject, fmt.Sprint(cycle))); err != nil {
			t.Fatal(err)
		}
	}
	cycles := func(batches []*tandemv1.ChangeBatch) []uint64 {
		var out []uint64
		for _, b := range batches {
			out = append(out, b.GetCycle())
		}
		return out
	}

	publish(1)
	publish(2)
	msgs, subjects, last := platformtest.Published(t, p.JetStream, bus.StreamChanges, 0, newChangeBatch)
	if !slices.Equal(cycles(msgs), []uint64{1, 2}) || !slices.Equal(subjects, []string{subject, subject}) || last != 2 {
		t.Fatalf("Published from 0 = cycles %v on %v up to %d, want cycles [1 2] on %s up to 2", cycles(msgs), subjects, last, subject)
	}
	if msgs, _, again := platformtest.Published(t, p.JetStream, bus.StreamChanges, last, newChangeBatch); len(msgs) != 0 || again != last {
		t.Fatalf("Published with nothing new = %v up to %d, want none up to %d", msgs, again, last)
	}
	publish(3)
	if msgs, _, next := platformtest.Published(t, p.JetStream, bus.StreamChanges, last, newChangeBatch); !slices.Equal(cycles(msgs), []uint64{3}) || next != 3 {
		t.Fatalf("Published since %d = cycles %v up to %d, want [3] up to 3", last, cycles(msgs), next)
	}
	if n := platformtest.Stored(t, p.JetStream, bus.StreamChanges); n != 3 {
		t.Fatalf("Stored = %d, want 3", n)
	}

	// A store without a keyring refuses credentials: this one seals them.
	org := &tandemv1.Org{OrgId: testOrg, Exchange: &tandemv1.ExchangeConnection{ServiceAccount: "svc@acme.example", Password: "secret"}}
	if _, err := p.Store.PutOrg(ctx, org); err != nil {
		t.Fatalf("PutOrg with a password: %v", err)
	}
	if got, err := p.Store.GetOrg(ctx, testOrg); err != nil || got.GetExchange().GetPassword() != "secret" {
		t.Fatalf("GetOrg = %v, %v", got, err)
	}
}

func TestPublishedSkipsAckedMessages(t *testing.T) {
	p := platformtest.New(t)
	ctx := t.Context()
	subject, err := bus.SalesforceJobSubject(testOrg, store.DefaultWorkerPool)
	if err != nil {
		t.Fatal(err)
	}
	for cycle := range uint64(3) {
		if err := p.Bus.Publish(ctx, subject, &tandemv1.SyncJob{OrgId: testOrg, Cycle: cycle + 1}, bus.MsgID(subject, fmt.Sprint(cycle))); err != nil {
			t.Fatal(err)
		}
	}
	// The first job is taken off the work queue by its consumer, which a worker of the pool
	// would have created.
	spec, _ := p.Bus.Topology().Consumer(bus.PoolConsumer(bus.ConsumerSalesforceJobs, store.DefaultWorkerPool))
	cons, err := p.JetStream.CreateOrUpdateConsumer(ctx, bus.StreamJobs, spec.Config)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the acked job removed", func() bool {
		return platformtest.Stored(t, p.JetStream, bus.StreamJobs) == 2
	})
	jobs, _, last := platformtest.Published(t, p.JetStream, bus.StreamJobs, 0, func() *tandemv1.SyncJob { return &tandemv1.SyncJob{} })
	if len(jobs) != 2 || jobs[0].GetCycle() != 2 || jobs[1].GetCycle() != 3 || last != 3 {
		t.Fatalf("Published = %v up to %d, want cycles 2 and 3 up to 3", jobs, last)
	}
}

func TestMessage(t *testing.T) {
	applySubject, err := bus.ApplySubject(testOrg, tandemv1.System_SYSTEM_SALESFORCE, store.DefaultWorkerPool, testUser)
	if err != nil {
		t.Fatal(err)
	}
	batch := &tandemv1.WriteBatch{
		BatchId: "b1", OrgId: testOrg, UserId: testUser, Target: tandemv1.System_SYSTEM_SALESFORCE,
		Commands: []*tandemv1.WriteCommand{{CommandId: "c1", Op: tandemv1.WriteOp_WRITE_OP_CREATE}},
	}
	for _, tc := range []struct {
		name      string
		m         *bus.Message
		subject   string
		delivered uint64
		route     bus.Subject
	}{
		{"a write batch", platformtest.Message(t, applySubject, batch, 1), applySubject, 1,
			bus.Subject{Kind: bus.KindApply, OrgID: testOrg, System: tandemv1.System_SYSTEM_SALESFORCE, Pool: store.DefaultWorkerPool, UserID: testUser}},
		{"a redelivered write batch", platformtest.ApplyMessage(t, batch, 3), applySubject, 3,
			bus.Subject{Kind: bus.KindApply, OrgID: testOrg, System: tandemv1.System_SYSTEM_SALESFORCE, Pool: store.DefaultWorkerPool, UserID: testUser}},
		{"on a foreign subject", platformtest.Message(t, "other.subject", batch, 1), "other.subject", 1, bus.Subject{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.m.Subject != tc.subject || tc.m.NumDelivered != tc.delivered || tc.m.Route != tc.route {
				t.Fatalf("message on %s (route %+v), delivery %d; want %s (%+v), %d", tc.m.Subject, tc.m.Route, tc.m.NumDelivered, tc.subject, tc.route, tc.delivered)
			}
			got := &tandemv1.WriteBatch{}
			if err := tc.m.Decode(got); err != nil || !proto.Equal(got, batch) {
				t.Fatalf("Decode = %v, %v; want %v", got, err, batch)
			}
			// The headers name the type, as the bus's: the handler's Decode tells a message of
			// another type from a corrupt one.
			if err := tc.m.Decode(&tandemv1.SyncJob{}); err == nil {
				t.Fatal("a write batch decoded as a sync job")
			}
		})
	}
}

func TestPutInFlight(t *testing.T) {
	p := platformtest.New(t)
	uk := store.UserKey{OrgID: testOrg, UserID: testUser}
	issued := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	cmds := []*tandemv1.WriteCommand{
		{CommandId: "c1", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk1"},
		{CommandId: "c2", Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: "sk2", TargetId: "003A"},
	}
	platformtest.PutInFlight(t, p.Store, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.System_SYSTEM_SALESFORCE, issued, cmds...)
	snap, err := ledger.New(p.Store).Load(t.Context(), uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != len(cmds) {
		t.Fatalf("%d writes in flight, want %d", len(snap.Pending), len(cmds))
	}
	for _, c := range cmds {
		want := &tandemv1.PendingWrite{Command: c, Target: tandemv1.System_SYSTEM_SALESFORCE, IssuedAt: timestamppb.New(issued), Cycle: 1}
		if got := snap.Pending[planner.PendingKey(tandemv1.System_SYSTEM_SALESFORCE, c.GetSyncKey())]; !proto.Equal(got, want) {
			t.Errorf("in flight for %s: %v, want %v", c.GetSyncKey(), got, want)
		}
	}
	// Events are another ledger.
	if snap, err := ledger.New(p.Store).Load(t.Context(), uk, tandemv1.RecordKind_RECORD_KIND_EVENT); err != nil || len(snap.Pending) != 0 {
		t.Fatalf("event ledger: %d in flight, %v", len(snap.Pending), err)
	}
}

func TestRun(t *testing.T) {
	p := platformtest.New(t)
	var running, stopped atomic.Bool
	stop := p.Run(t, "platformtest", lifecycle.Component{Name: "worker", Run: func(ctx context.Context) error {
		running.Store(true)
		<-ctx.Done()
		stopped.Store(true)
		return nil
	}})
	poll.Until(t, "the component running and the service ready", func() bool {
		ready, _ := p.Health.Ready(t.Context())
		return running.Load() && ready
	})
	if err := stop(); err != nil || !stopped.Load() {
		t.Fatalf("stop = %v, component stopped %v", err, stopped.Load())
	}
	if ready, _ := p.Health.Ready(t.Context()); ready {
		t.Fatal("ready after stop")
	}
	// stop may be called again (the test's cleanup does).
	if err := stop(); err != nil {
		t.Fatalf("second stop = %v", err)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := platformtest.NewClock(start)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = c.Now()
		}
	}()
	for range 60 {
		c.Advance(time.Second)
	}
	<-done
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("Now = %v, want %v", got, start.Add(time.Minute))
	}
}

func TestEventually(t *testing.T) {
	var calls atomic.Int32
	poll.Until(t, "the third call", func() bool { return calls.Add(1) >= 3 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("cond called %d times, want 3: Eventually polls until it holds and no more", n)
	}
}
