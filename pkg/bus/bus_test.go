package bus_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestDeclareIsIdempotent(t *testing.T) {
	env := newEnv(t, bus.Config{}) // declares once
	if err := env.bus.Declare(t.Context()); err != nil {
		t.Fatalf("second Declare: %v", err)
	}

	top := env.bus.Topology()
	var streams []string
	for name := range env.js.StreamNames(t.Context()).Name() {
		streams = append(streams, name)
	}
	wantStreams := []string{bus.StreamApply, bus.StreamChanges, bus.StreamDead, bus.StreamJobs, bus.StreamResults}
	slices.Sort(streams)
	if !slices.Equal(streams, wantStreams) {
		t.Fatalf("streams %v, want %v", streams, wantStreams)
	}
	for _, want := range top.Streams {
		s, err := env.js.Stream(t.Context(), want.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", want.Name, err)
		}
		got := s.CachedInfo().Config
		if got.Retention != want.Retention || got.Storage != jetstream.FileStorage || got.Duplicates != want.Duplicates ||
			got.MaxAge != want.MaxAge || !slices.Equal(got.Subjects, want.Subjects) {
			t.Errorf("stream %s config %+v, want %+v", want.Name, got, want)
		}
	}
	for _, want := range top.Consumers {
		info := env.consumerInfo(t, want.Stream, want.Config.Durable)
		got := info.Config
		if got.FilterSubject != want.Config.FilterSubject || got.AckPolicy != jetstream.AckExplicitPolicy ||
			got.AckWait != bus.DefaultAckWait || got.MaxDeliver != bus.DefaultMaxDeliver || got.MaxAckPending != want.Config.MaxAckPending {
			t.Errorf("consumer %s config %+v, want %+v", want.Config.Durable, got, want.Config)
		}
	}
	if n := len(top.Consumers); n != 3 {
		t.Errorf("%d consumers in the topology, want 3", n)
	}
	if n := len(top.Pooled); n != 4 {
		t.Errorf("%d pooled consumer roles in the topology, want 4", n)
	}

	jobs, _ := env.js.Stream(t.Context(), bus.StreamJobs)
	if got := jobs.CachedInfo().Config; got.Retention != jetstream.WorkQueuePolicy || got.Duplicates != 10*time.Minute {
		t.Errorf("jobs stream retention %v duplicates %s", got.Retention, got.Duplicates)
	}
	dead, _ := env.js.Stream(t.Context(), bus.StreamDead)
	if got := dead.CachedInfo().Config; got.Retention != jetstream.LimitsPolicy || got.MaxAge != 14*24*time.Hour {
		t.Errorf("dead stream retention %v max age %s", got.Retention, got.MaxAge)
	}
	apply, _ := top.Consumer(bus.PoolConsumer(bus.ConsumerExchangeApply, testPool))
	jobsConsumer, _ := top.Consumer(bus.PoolConsumer(bus.ConsumerExchangeJobs, testPool))
	if !apply.DoubleAck || jobsConsumer.DoubleAck {
		t.Errorf("DoubleAck: apply %v, jobs %v; want apply only", apply.DoubleAck, jobsConsumer.DoubleAck)
	}
}

func TestDeclareAppliesTunables(t *testing.T) {
	env := newEnv(t, bus.Config{DuplicateWindow: time.Minute, DeadLetterMaxAge: time.Hour, AckWait: 2 * time.Second, MaxDeliver: 3})
	s, err := env.js.Stream(t.Context(), bus.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.Duplicates != time.Minute || got.MaxAge != time.Hour {
		t.Errorf("dead stream duplicates %s max age %s", got.Duplicates, got.MaxAge)
	}
	info := env.consumerInfo(t, bus.StreamResults, bus.ConsumerReconcilerResults)
	if info.Config.AckWait != 2*time.Second || info.Config.MaxDeliver != 3 {
		t.Errorf("consumer ack wait %s max deliver %d", info.Config.AckWait, info.Config.MaxDeliver)
	}
	// A pool's consumer, created when a worker of the pool first consumes, gets them too.
	big := bus.PoolConsumer(bus.ConsumerSalesforceApply, "big")
	env.consume(t, big, func(context.Context, *bus.Message) error { return nil })
	poll.Until(t, "the pool's consumer to be created", func() bool {
		_, err := env.js.Consumer(t.Context(), bus.StreamApply, big)
		return err == nil
	})
	info = env.consumerInfo(t, bus.StreamApply, big)
	if info.Config.AckWait != 2*time.Second || info.Config.MaxDeliver != 3 || info.Config.FilterSubject != "tandem.apply.*.salesforce.big.*" {
		t.Errorf("pool consumer ack wait %s max deliver %d filter %s", info.Config.AckWait, info.Config.MaxDeliver, info.Config.FilterSubject)
	}
}

func TestExchangeJobsStoredCountsEachUsersJobsOfTheOrgAndPool(t *testing.T) {
	env := newEnv(t, bus.Config{})
	const otherUser, otherOrg = "0055g00000A1bCeAAJ", "00D5g000004SBduEAG"
	publish := func(org, pool, user, id string) {
		t.Helper()
		subject, err := bus.ExchangeJobSubject(org, pool, user)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.bus.Publish(t.Context(), subject, &tandemv1.SyncJob{OrgId: org, UserId: user, System: exchange}, bus.MsgID(org, pool, user, id)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := env.bus.ExchangeJobsStored(t.Context(), testOrg, testPool)
	if err != nil || len(got) != 0 {
		t.Fatalf("ExchangeJobsStored of an empty stream = %v, %v; want none", got, err)
	}
	publish(testOrg, testPool, testUser, "1")
	publish(testOrg, testPool, testUser, "2")
	publish(testOrg, testPool, otherUser, "1")
	publish(testOrg, "big", testUser, "1")      // another pool's
	publish(otherOrg, testPool, otherUser, "1") // another org's
	salesforce, err := bus.SalesforceJobSubject(testOrg, testPool)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.bus.Publish(t.Context(), salesforce, &tandemv1.SyncJob{OrgId: testOrg}, "sf"); err != nil {
		t.Fatal(err)
	}
	got, err = env.bus.ExchangeJobsStored(t.Context(), testOrg, testPool)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint64{testUser: 2, otherUser: 1}; !maps.Equal(got, want) {
		t.Errorf("ExchangeJobsStored = %v, want %v", got, want)
	}
	if _, err := env.bus.ExchangeJobsStored(t.Context(), testOrg, "no.pool"); err == nil {
		t.Error("ExchangeJobsStored accepted a pool that is not a subject token")
	}
}

func TestPublishDeduplicatesByMsgID(t *testing.T) {
	env := newEnv(t, bus.Config{})
	subject, err := bus.ExchangeJobSubject(testOrg, testPool, testUser)
	if err != nil {
		t.Fatal(err)
	}
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: testUser, System: exchange, Cycle: 7}
	id := bus.MsgID("job", testOrg, testUser, "7")
	for range 3 {
		if err := env.bus.Publish(t.Context(), subject, job, id); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	if n := env.streamMsgs(t, bus.StreamJobs); n != 1 {
		t.Fatalf("%d messages stored after publishing one id three times, want 1", n)
	}
	if err := env.bus.Publish(t.Context(), subject, job, bus.MsgID("job", testOrg, testUser, "8")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if n := env.streamMsgs(t, bus.StreamJobs); n != 2 {
		t.Fatalf("%d messages stored after a second id, want 2", n)
	}

	s, _ := env.js.Stream(t.Context(), bus.StreamJobs)
	raw, err := s.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		bus.HeaderContentType: bus.ContentTypeProtobuf,
		bus.HeaderMessageType: "tandem.v1.SyncJob",
		jetstream.MsgIDHeader: id,
	} {
		if got := raw.Header.Get(key); got != want {
			t.Errorf("header %s = %q, want %q", key, got, want)
		}
	}
	got := &tandemv1.SyncJob{}
	if err := proto.Unmarshal(raw.Data, got); err != nil || !proto.Equal(got, job) {
		t.Errorf("stored %v (%v), want %v", got, err, job)
	}
}

func TestPublishRejects(t *testing.T) {
	env := newEnv(t, bus.Config{})
	changes, _ := bus.ChangesSubject(testOrg, testUser)
	huge := changeBatch(testOrg, testUser, 1)
	huge.Changes = []*tandemv1.Change{{Record: &tandemv1.Record{Id: strings.Repeat("x", int(env.nc.MaxPayload()))}}}
	tests := []struct {
		name    string
		subject string
		msg     proto.Message
		id      string
		is      error
	}{
		{"foreign subject", "orders.created", changeBatch(testOrg, testUser, 1), "id", bus.ErrInvalidSubject},
		{"email in subject", "tandem.changes." + testOrg + ".jane@example.com", changeBatch(testOrg, testUser, 1), "id", bus.ErrInvalidSubject},
		{"wildcard subject", "tandem.changes." + testOrg + ".*", changeBatch(testOrg, testUser, 1), "id", bus.ErrInvalidSubject},
		{"no message id", changes, changeBatch(testOrg, testUser, 1), "", bus.ErrNoMsgID},
		{"larger than max payload", changes, huge, "id", bus.ErrPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := env.bus.Publish(t.Context(), tt.subject, tt.msg, tt.id); !errors.Is(err, tt.is) {
				t.Fatalf("Publish = %v, want %v", err, tt.is)
			}
		})
	}
	if n := env.streamMsgs(t, bus.StreamChanges); n != 0 {
		t.Fatalf("%d messages stored by rejected publishes", n)
	}
	if limit := env.bus.MaxPayload(); limit <= 0 || limit >= int(env.nc.MaxPayload()) {
		t.Fatalf("MaxPayload() = %d with server limit %d", limit, env.nc.MaxPayload())
	}
}

// A stream missing under a running service (deleted, or lost with a NATS server restarted
// without its store) is put back from the topology by the first publish that needs it.
func TestPublishRecreatesAMissingStream(t *testing.T) {
	nc := servertest.NATSConn(t)
	b, err := bus.New(nc, bus.Config{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := bus.DeadSubject(testOrg)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := b.Publish(ctx, subject, &tandemv1.DeadLetter{}, "id"); err != nil {
		t.Fatalf("publish to a missing stream: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, bus.StreamDead)
	if err != nil {
		t.Fatalf("the stream was not recreated: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.Config.MaxAge != bus.DefaultDeadLetterMaxAge {
		t.Fatalf("recreated stream holds %d messages with max age %s, want 1 and the topology's %s",
			info.State.Msgs, info.Config.MaxAge, bus.DefaultDeadLetterMaxAge)
	}
}

func TestMsgID(t *testing.T) {
	a := bus.MsgID("ab", "c")
	if a != bus.MsgID("ab", "c") {
		t.Fatal("MsgID is not deterministic")
	}
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("MsgID = %q, want 64 hex digits", a)
	}
	for _, other := range [][]string{{"a", "bc"}, {"abc"}, {"ab", "c", ""}, {"c", "ab"}} {
		if bus.MsgID(other...) == a {
			t.Errorf("MsgID(%q) collides with MsgID(ab, c)", other)
		}
	}
}

func TestReady(t *testing.T) {
	env := newEnv(t, bus.Config{})
	if err := env.bus.Ready(t.Context()); err != nil {
		t.Fatalf("Ready on a live connection: %v", err)
	}
	env.nc.Close()
	if err := env.bus.Ready(t.Context()); err == nil {
		t.Fatal("Ready on a closed connection succeeded")
	}
}

func TestConnectPublishClose(t *testing.T) {
	srv := servertest.NATS(t)
	b, err := bus.Connect(t.Context(), bus.Config{URL: srv.ClientURL(), Name: "bus-test"}, testLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if err := b.Declare(t.Context()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	subject, _ := bus.SalesforceJobSubject(testOrg, testPool)
	if err := b.Publish(t.Context(), subject, &tandemv1.SyncJob{OrgId: testOrg, System: salesforce}, "job-1"); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := b.Ready(t.Context()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Ready(t.Context()); err == nil {
		t.Fatal("Ready after Close succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConnectGivesUpWithContext(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err = bus.Connect(ctx, bus.Config{URL: url}, testLogger(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v, want deadline exceeded", err)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := bus.New(nil, bus.Config{}, nil); err == nil {
		t.Error("New(nil conn) succeeded")
	}
	nc := servertest.NATSConn(t)
	if _, err := bus.New(nc, bus.Config{Replicas: 9}, nil); err == nil {
		t.Error("New with 9 replicas succeeded")
	}
	if _, err := bus.New(nc, bus.Config{DeclareAttemptTimeout: -time.Second}, nil); err == nil {
		t.Error("New with a negative declare attempt timeout succeeded")
	}
	if _, err := bus.Connect(t.Context(), bus.Config{}, nil); err == nil {
		t.Error("Connect without URL succeeded")
	}
}

func BenchmarkPublish(b *testing.B) {
	env := newEnv(b, bus.Config{})
	subject, _ := bus.ChangesSubject(testOrg, testUser)
	batch := changeBatch(testOrg, testUser, 1)
	for i := range 50 {
		batch.Changes = append(batch.Changes, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT,
			Record: &tandemv1.Record{Id: fmt.Sprintf("AAMkAD%04d", i)}})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := env.bus.Publish(b.Context(), subject, batch, strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgID(b *testing.B) {
	for b.Loop() {
		bus.MsgID("changes", testOrg, testUser, "exchange", "contact", "42", "0")
	}
}
