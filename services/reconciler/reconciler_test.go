package reconciler_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
	"github.com/tandem-sync/tandem/services/reconciler"
)

const (
	testOrg  = "00Dorg000000001"
	testUser = "005user00000001"
)

var uk = store.UserKey{OrgID: testOrg, UserID: testUser}

func testConfig() reconciler.Config {
	return reconciler.Config{Concurrency: 4, LeaseTTL: 10 * time.Second, PendingTimeout: time.Minute}
}

// env is a running reconciler on real NATS and Redis.
type env struct {
	p   *platformtest.Platform
	led *ledger.Ledger
}

func start(t *testing.T) *env {
	t.Helper()
	p := platformtest.New(t)
	st := p.Store
	if err := st.PutUsers(t.Context(), testOrg, []*tandemv1.SyncUser{{UserId: testUser, Email: "rep@acme.example", Active: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutConfiguration(t.Context(), testOrg, &tandemv1.SyncConfiguration{
		Name: "reps", Active: true, UserIds: []string{testUser},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
	}); err != nil {
		t.Fatal(err)
	}
	// The scheduler has started the cycle the tests' batches belong to.
	platformtest.ClaimCycles(t, st, testOrg, 1)

	r, err := reconciler.New(testConfig(), p.Platform)
	if err != nil {
		t.Fatal(err)
	}
	p.Run(t, "reconciler", r.Components()...)
	return &env{p: p, led: ledger.New(st)}
}

func (e *env) snapshot(t *testing.T) *ledger.Snapshot {
	t.Helper()
	snap, err := e.led.Load(t.Context(), uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func (e *env) publish(t *testing.T, subject string, msg proto.Message, id string) {
	t.Helper()
	if err := e.p.Bus.Publish(t.Context(), subject, msg, id); err != nil {
		t.Fatal(err)
	}
}

// published returns the messages of stream published on subject, in order.
func published[M proto.Message](t *testing.T, e *env, stream, subject string, newM func() M) []M {
	t.Helper()
	msgs, subjects, _ := platformtest.Published(t, e.p.JetStream, stream, 0, newM)
	var out []M
	for i, m := range msgs {
		if subjects[i] == subject {
			out = append(out, m)
		}
	}
	return out
}

func changes(side tandemv1.System, cycle uint64, records ...*tandemv1.Record) *tandemv1.ChangeBatch {
	b := &tandemv1.ChangeBatch{
		OrgId: testOrg, UserId: testUser, Source: side, Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT,
		Cycle: cycle, Last: true, PageCount: 1, FullSnapshot: true, ReadAt: timestamppb.Now(),
	}
	for _, r := range records {
		b.Changes = append(b.Changes, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: r})
	}
	return b
}

func TestChangesAndResultsReachTheSyncer(t *testing.T) {
	e := start(t)
	subject, err := bus.ChangesSubject(testOrg, testUser)
	if err != nil {
		t.Fatal(err)
	}
	ada := &tandemv1.Record{Id: "AAMkAda", Version: "v1", Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: "Ada", Surname: "Lovelace", EmailAddress1: "ada@example.com",
	}}}
	e.publish(t, subject, changes(tandemv1.System_SYSTEM_EXCHANGE, 1, ada), "exchange-1")
	poll.Until(t, "the Exchange read observed", func() bool {
		snap := e.snapshot(t)
		return snap.Exchange["AAMkAda"] != nil && snap.Cycle.Ready["exchange"] == 1
	})
	if snap := e.snapshot(t); snap.Cycle.Reconciled != 0 || len(snap.Pending) != 0 {
		t.Fatalf("reconciled %d with %d writes before Salesforce reported", snap.Cycle.Reconciled, len(snap.Pending))
	}

	// Salesforce reports the cycle: the reconciler plans it and sends a create to Salesforce.
	e.publish(t, subject, changes(tandemv1.System_SYSTEM_SALESFORCE, 1), "salesforce-1")
	poll.Until(t, "cycle 1 reconciled", func() bool {
		snap := e.snapshot(t)
		return snap.Cycle.Reconciled == 1 && len(snap.Pending) == 1
	})
	applySubject, err := bus.ApplySubject(testOrg, tandemv1.System_SYSTEM_SALESFORCE, store.DefaultWorkerPool, testUser)
	if err != nil {
		t.Fatal(err)
	}
	var batch *tandemv1.WriteBatch
	poll.Until(t, "the write batch sent", func() bool {
		batches := published(t, e, bus.StreamApply, applySubject, func() *tandemv1.WriteBatch { return &tandemv1.WriteBatch{} })
		if len(batches) != 1 {
			return false
		}
		batch = batches[0]
		return true
	})
	if len(batch.GetCommands()) != 1 || batch.GetCommands()[0].GetOp() != tandemv1.WriteOp_WRITE_OP_CREATE {
		t.Fatalf("write batch = %v, want one create", batch)
	}
	cmd := batch.GetCommands()[0]

	// The salesforce-worker's result comes back: the link is committed.
	resultsSubject, err := bus.ResultsSubject(testOrg, testUser)
	if err != nil {
		t.Fatal(err)
	}
	created := proto.Clone(cmd.GetRecord()).(*tandemv1.Record)
	created.Id = "003000000000001AAA"
	e.publish(t, resultsSubject, &tandemv1.WriteResultBatch{
		BatchId: batch.GetBatchId(), OrgId: testOrg, UserId: testUser, Target: tandemv1.System_SYSTEM_SALESFORCE,
		Kind: batch.GetKind(), Cycle: batch.GetCycle(), CompletedAt: timestamppb.Now(),
		Results: []*tandemv1.WriteResult{{CommandId: cmd.GetCommandId(), SyncKey: cmd.GetSyncKey(), Op: cmd.GetOp(), Ok: true, Record: created}},
	}, "results-1")
	poll.Until(t, "the link committed", func() bool {
		snap := e.snapshot(t)
		m := snap.Mappings[cmd.GetSyncKey()]
		return len(snap.Pending) == 0 && m.GetSalesforceId() == created.GetId() && m.GetExchangeId() == "AAMkAda"
	})
}

func TestMalformedMessagesAreDeadLettered(t *testing.T) {
	e := start(t)
	changesSubject, _ := bus.ChangesSubject(testOrg, testUser)
	resultsSubject, _ := bus.ResultsSubject(testOrg, testUser)
	wrongType := nats.NewMsg(changesSubject)
	wrongType.Header.Set(bus.HeaderContentType, bus.ContentTypeProtobuf)
	wrongType.Header.Set(bus.HeaderMessageType, "tandem.v1.SyncJob")
	wrongType.Data, _ = proto.Marshal(&tandemv1.SyncJob{OrgId: testOrg})

	for _, tc := range []struct {
		name     string
		subject  string
		consumer string
		send     func(t *testing.T)
	}{
		{"change batch of garbage", changesSubject, bus.ConsumerReconcilerChanges, func(t *testing.T) {
			if _, err := e.p.JetStream.Publish(t.Context(), changesSubject, []byte{0xff, 0xff, 0xff}); err != nil {
				t.Fatal(err)
			}
		}},
		{"results of garbage", resultsSubject, bus.ConsumerReconcilerResults, func(t *testing.T) {
			if _, err := e.p.JetStream.Publish(t.Context(), resultsSubject, []byte{0x0a, 0xff}); err != nil {
				t.Fatal(err)
			}
		}},
		{"a message of another type", changesSubject, bus.ConsumerReconcilerChanges, func(t *testing.T) {
			if _, err := e.p.JetStream.PublishMsg(t.Context(), wrongType); err != nil {
				t.Fatal(err)
			}
		}},
		{"a change batch from no side", changesSubject, bus.ConsumerReconcilerChanges, func(t *testing.T) {
			e.publish(t, changesSubject, changes(tandemv1.System_SYSTEM_UNSPECIFIED, 1), "no-side")
		}},
		{"results of no kind", resultsSubject, bus.ConsumerReconcilerResults, func(t *testing.T) {
			e.publish(t, resultsSubject, &tandemv1.WriteResultBatch{OrgId: testOrg, UserId: testUser, Target: tandemv1.System_SYSTEM_EXCHANGE}, "no-kind")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deadSubject, _ := bus.DeadSubject(testOrg)
			deadLetters := func() []*tandemv1.DeadLetter {
				return published(t, e, bus.StreamDead, deadSubject, func() *tandemv1.DeadLetter { return &tandemv1.DeadLetter{} })
			}
			before := len(deadLetters())
			tc.send(t)
			var dl *tandemv1.DeadLetter
			poll.Until(t, "the dead letter", func() bool {
				letters := deadLetters()
				if len(letters) <= before {
					return false
				}
				dl = letters[len(letters)-1]
				return true
			})
			if dl.GetSubject() != tc.subject || dl.GetConsumer() != tc.consumer || dl.GetOrgId() != testOrg || dl.GetUserId() != testUser {
				t.Fatalf("dead letter %v, want one from %s on %s", dl, tc.consumer, tc.subject)
			}
			if dl.GetError().GetCode() != string(syncerr.SyncMalformedMessage) || dl.GetDeliveries() != 1 {
				t.Fatalf("dead letter error %v after %d deliveries, want %s at once", dl.GetError(), dl.GetDeliveries(), syncerr.SyncMalformedMessage)
			}
		})
	}
	// Nothing reached the ledger.
	if snap := e.snapshot(t); len(snap.Exchange)+len(snap.Salesforce) != 0 || len(snap.Cycle.Ready) != 0 {
		t.Fatalf("malformed messages changed the ledger: %+v", snap.Cycle)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*reconciler.Config)
		ok     bool
	}{
		{"valid", func(*reconciler.Config) {}, true},
		{"no concurrency", func(c *reconciler.Config) { c.Concurrency = 0 }, false},
		{"lease under a second", func(c *reconciler.Config) { c.LeaseTTL = 500 * time.Millisecond }, false},
		{"lease of a second", func(c *reconciler.Config) { c.LeaseTTL = time.Second }, true},
		{"no pending timeout", func(c *reconciler.Config) { c.PendingTimeout = 0 }, false},
		{"negative pending timeout", func(c *reconciler.Config) { c.PendingTimeout = -time.Minute }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mutate(&cfg)
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if _, err := reconciler.New(cfg, &platform.Platform{Logger: slog.New(slog.DiscardHandler), Telemetry: telemetry.Noop()}); (err == nil) != tc.ok {
				t.Fatalf("New() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
