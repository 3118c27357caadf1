package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// fastRetry keeps redelivery backoff short in tests.
var fastRetry = bus.WithBackoff(10*time.Millisecond, 50*time.Millisecond)

func TestConsumeRedeliversTransientFailures(t *testing.T) {
	tests := []struct {
		name string
		fail func() error // what the first two deliveries do
	}{
		{"plain error", func() error { return errors.New("exchange went away") }},
		{"retryable catalogue error", func() error { return syncerr.New(syncerr.ExchangeUnavailable, "503") }},
		{"reclassified as retryable", func() error {
			return syncerr.Wrap(syncerr.SyncInternal, bus.Permanent(errors.New("x")))
		}},
		{"panic", func() error { panic("handler bug") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, bus.Config{})
			env.publishChanges(t, testOrg, testUser, 1)
			var rec recorder
			env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
				var batch tandemv1.ChangeBatch
				if err := m.Decode(&batch); err != nil {
					return err
				}
				if rec.add(m) < 3 {
					return tt.fail()
				}
				return nil
			}, fastRetry)

			poll.Until(t, "three deliveries", func() bool { return len(rec.seen()) == 3 })
			poll.Until(t, "the message to be acked", func() bool {
				return env.settled(t, bus.StreamChanges, bus.ConsumerReconcilerChanges) && env.streamMsgs(t, bus.StreamChanges) == 0
			})
			if got := rec.seen(); !slices.Equal(got, []uint64{1, 2, 3}) {
				t.Fatalf("deliveries %v, want [1 2 3]", got)
			}
			if n := env.streamMsgs(t, bus.StreamDead); n != 0 {
				t.Fatalf("%d dead letters for a message that succeeded", n)
			}
		})
	}
}

func TestConsumeHonoursRetryAfter(t *testing.T) {
	const asked = 1500 * time.Millisecond
	env := newEnv(t, bus.Config{}) // AckWait 30s: a redelivery before that comes from the nak delay
	env.publishChanges(t, testOrg, testUser, 1)

	var rec recorder
	var failedAt, redeliveredAt time.Time
	var mu sync.Mutex
	env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if rec.add(m) == 1 {
			failedAt = time.Now()
			return fmt.Errorf("find items: %w", &syncerr.Error{Code: syncerr.ExchangeServerBusy, Delay: asked})
		}
		redeliveredAt = time.Now()
		return nil
	}, bus.WithBackoff(time.Millisecond, time.Millisecond)) // the backoff alone would redeliver at once

	poll.Until(t, "the redelivery", func() bool { return len(rec.seen()) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if gap := redeliveredAt.Sub(failedAt); gap < asked {
		t.Fatalf("redelivered %s after the failure, the error asked for %s", gap, asked)
	}
	if got := rec.seen(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("deliveries %v, want [1 2]", got)
	}
}

func TestConsumeDeadLetters(t *testing.T) {
	changes, _ := bus.ChangesSubject(testOrg, testUser)
	valid, _ := proto.Marshal(changeBatch(testOrg, testUser, 1))
	job, _ := proto.Marshal(&tandemv1.SyncJob{OrgId: testOrg, UserId: testUser, System: exchange})

	tests := []struct {
		name       string
		cfg        bus.Config
		data       []byte
		header     nats.Header
		fail       func(decodeErr error) error
		deliveries uint64
		code       syncerr.Code
		message    string
	}{
		{
			name: "non-retryable catalogue error",
			data: valid,
			fail: func(error) error {
				return fmt.Errorf("create contact: %w", &syncerr.Error{Code: syncerr.SalesforceValidationFailed, Detail: "Email: invalid", RecordID: "003xx"})
			},
			deliveries: 1, code: syncerr.SalesforceValidationFailed, message: "Email: invalid",
		},
		{
			name:       "bus.Permanent",
			data:       valid,
			fail:       func(error) error { return bus.Permanent(errors.New("mapping references a missing org")) },
			deliveries: 1, code: syncerr.SyncInternal, message: "mapping references a missing org",
		},
		{
			name:       "max deliver exhausted",
			cfg:        bus.Config{MaxDeliver: 3},
			data:       valid,
			fail:       func(error) error { return syncerr.New(syncerr.ExchangeUnavailable, "503 Service Unavailable") },
			deliveries: 3, code: syncerr.ExchangeUnavailable, message: "gave up after 3 deliveries: 503 Service Unavailable",
		},
		{
			name:       "malformed payload",
			data:       []byte{0x0a, 0x05, 'a'}, // field 1 claims 5 bytes, has 1
			fail:       func(decodeErr error) error { return fmt.Errorf("read batch: %w", decodeErr) },
			deliveries: 1, code: syncerr.SyncMalformedMessage, message: "decode TANDEM_CHANGES seq 1",
		},
		{
			name:       "malformed payload reported as transient",
			data:       []byte{0xff},
			fail:       func(error) error { return errors.New("could not read the batch") },
			deliveries: 1, code: syncerr.SyncMalformedMessage, message: "as tandem.v1.ChangeBatch",
		},
		{
			name:       "message of the wrong type",
			data:       job,
			header:     nats.Header{bus.HeaderMessageType: []string{"tandem.v1.SyncJob"}},
			fail:       func(decodeErr error) error { return decodeErr },
			deliveries: 1, code: syncerr.SyncMalformedMessage, message: "message type tandem.v1.SyncJob",
		},
		{
			name:       "foreign content type",
			data:       []byte(`{"org_id":"x"}`),
			header:     nats.Header{bus.HeaderContentType: []string{"application/json"}},
			fail:       func(decodeErr error) error { return decodeErr },
			deliveries: 1, code: syncerr.SyncMalformedMessage, message: `content type "application/json"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, tt.cfg)
			msg := nats.NewMsg(changes)
			msg.Data = tt.data
			for k, v := range tt.header {
				msg.Header[k] = v
			}
			if _, err := env.js.PublishMsg(t.Context(), msg); err != nil {
				t.Fatalf("publish: %v", err)
			}
			var rec recorder
			env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
				rec.add(m)
				var batch tandemv1.ChangeBatch
				err := m.Decode(&batch)
				return tt.fail(err)
			}, fastRetry)

			dl := env.deadLetter(t, testOrg)
			poll.Until(t, "the message to be terminated", func() bool {
				return env.settled(t, bus.StreamChanges, bus.ConsumerReconcilerChanges) && env.streamMsgs(t, bus.StreamChanges) == 0
			})
			if got := rec.seen(); uint64(len(got)) != tt.deliveries {
				t.Fatalf("handler saw deliveries %v, want %d", got, tt.deliveries)
			}
			want := &tandemv1.DeadLetter{
				Stream:         bus.StreamChanges,
				Consumer:       bus.ConsumerReconcilerChanges,
				Subject:        changes,
				StreamSequence: 1,
				Deliveries:     tt.deliveries,
				Data:           tt.data,
				OrgId:          testOrg,
				UserId:         testUser,
			}
			got := proto.Clone(dl).(*tandemv1.DeadLetter)
			got.Error, got.FailedAt = nil, nil
			if !proto.Equal(got, want) {
				t.Errorf("dead letter\n got %v\nwant %v", got, want)
			}
			if dl.GetFailedAt() == nil {
				t.Error("dead letter has no failed_at")
			}
			entry, _ := syncerr.Lookup(tt.code)
			if dl.GetError().GetCode() != string(tt.code) || dl.GetError().GetSuggestion() != entry.Suggestion ||
				!strings.Contains(dl.GetError().GetMessage(), tt.message) {
				t.Errorf("dead letter error %v, want code %s with message containing %q", dl.GetError(), tt.code, tt.message)
			}
			if n := env.streamMsgs(t, bus.StreamDead); n != 1 {
				t.Errorf("%d dead letters, want 1", n)
			}
		})
	}
}

func TestConsumeDeadLetterFailuresDoNotLoop(t *testing.T) {
	env := newEnv(t, bus.Config{})
	subject, _ := bus.DeadSubject(testOrg)
	if err := env.bus.Publish(t.Context(), subject, &tandemv1.DeadLetter{OrgId: testOrg, Stream: bus.StreamJobs, StreamSequence: 9}, "dl-9"); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	env.consume(t, bus.ConsumerStatusDead, func(ctx context.Context, m *bus.Message) error {
		rec.add(m)
		return bus.Permanent(errors.New("status store refuses the entry"))
	})
	poll.Until(t, "the dead letter to be terminated", func() bool {
		return len(rec.seen()) == 1 && env.settled(t, bus.StreamDead, bus.ConsumerStatusDead)
	})
	if n := env.streamMsgs(t, bus.StreamDead); n != 1 {
		t.Fatalf("%d messages on the dead-letter stream, want the original 1", n)
	}
}

func TestConsumeLongHandlerIsNotRedelivered(t *testing.T) {
	env := newEnv(t, bus.Config{AckWait: time.Second})
	env.publishChanges(t, testOrg, testUser, 1)
	var rec recorder
	var done atomic.Int32
	env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		rec.add(m)
		defer done.Add(1)
		// Three AckWaits of work: without InProgress heartbeats the server would redeliver
		// the message to the second handler slot meanwhile.
		select {
		case <-time.After(3 * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, bus.WithConcurrency(2))

	poll.Until(t, "the message to be acked", func() bool {
		return done.Load() > 0 && env.settled(t, bus.StreamChanges, bus.ConsumerReconcilerChanges) &&
			env.streamMsgs(t, bus.StreamChanges) == 0
	})
	info := env.consumerInfo(t, bus.StreamChanges, bus.ConsumerReconcilerChanges)
	if info.Delivered.Consumer != 1 {
		t.Fatalf("the server delivered %d times, want 1", info.Delivered.Consumer)
	}
	if got := rec.seen(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("deliveries %v, want [1]", got)
	}
}

func TestConsumePropagatesTraceContext(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	env := newEnv(t, bus.Config{}, bus.WithTracerProvider(tp), bus.WithPropagator(propagation.TraceContext{}))

	ctx, detect := tp.Tracer("test").Start(t.Context(), "detect change")
	subject, _ := bus.ChangesSubject(testOrg, testUser)
	if err := env.bus.Publish(ctx, subject, changeBatch(testOrg, testUser, 1), "trace-1"); err != nil {
		t.Fatal(err)
	}
	detect.End()

	seen := make(chan trace.SpanContext, 1)
	env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		seen <- trace.SpanContextFromContext(ctx)
		return nil
	})
	var handlerSpan trace.SpanContext
	select {
	case handlerSpan = <-seen:
	case <-time.After(20 * time.Second):
		t.Fatal("handler not called")
	}

	find := func(name string) sdktrace.ReadOnlySpan {
		for _, s := range spans.Ended() {
			if s.Name() == name {
				return s
			}
		}
		return nil
	}
	poll.Until(t, "the process span to end", func() bool { return find("process tandem.changes") != nil })
	send, process := find("send tandem.changes"), find("process tandem.changes")
	if send == nil {
		t.Fatal("no producer span")
	}
	if send.SpanKind() != trace.SpanKindProducer || process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("span kinds %v, %v", send.SpanKind(), process.SpanKind())
	}
	if send.Parent().SpanID() != detect.SpanContext().SpanID() {
		t.Errorf("producer span's parent %s, want the publisher's span %s", send.Parent().SpanID(), detect.SpanContext().SpanID())
	}
	if process.SpanContext().TraceID() != detect.SpanContext().TraceID() ||
		process.Parent().SpanID() != send.SpanContext().SpanID() || !process.Parent().IsRemote() {
		t.Errorf("process span %v has parent %v, want a child of the producer span %v", process.SpanContext(), process.Parent(), send.SpanContext())
	}
	if !handlerSpan.Equal(process.SpanContext()) {
		t.Errorf("handler ran in span %v, want the process span %v", handlerSpan, process.SpanContext())
	}
	attrs := attribute.NewSet(process.Attributes()...)
	for key, want := range map[attribute.Key]attribute.Value{
		"messaging.destination.name":            attribute.StringValue(subject),
		"messaging.nats.stream.sequence":        attribute.Int64Value(1),
		"messaging.nats.message.delivery_count": attribute.Int64Value(1),
		"messaging.consumer.group.name":         attribute.StringValue(bus.ConsumerReconcilerChanges),
	} {
		if got, ok := attrs.Value(key); !ok || got != want {
			t.Errorf("process span attribute %s = %v, want %v", key, got.String(), want.String())
		}
	}
}

func TestConsumeGracefulShutdown(t *testing.T) {
	env := newEnv(t, bus.Config{})
	subject, _ := bus.ApplySubject(testOrg, exchange, testPool, testUser)
	batch := &tandemv1.WriteBatch{BatchId: "b1", OrgId: testOrg, UserId: testUser, Target: exchange}
	if err := env.bus.Publish(t.Context(), subject, batch, batch.BatchId); err != nil {
		t.Fatal(err)
	}

	started, release := make(chan struct{}), make(chan struct{})
	var calls, finished atomic.Int32
	stop := env.consume(t, bus.PoolConsumer(bus.ConsumerExchangeApply, testPool), func(ctx context.Context, m *bus.Message) error {
		calls.Add(1)
		close(started)
		<-release // the write in flight when shutdown begins
		if ctx.Err() != nil {
			return ctx.Err()
		}
		finished.Add(1)
		return nil
	})
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Consume returned (%v) while its handler was still running", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if finished.Load() != 1 {
		t.Fatal("Consume returned before the in-flight handler finished")
	}
	// Consume flushed the ack before returning: nothing is left to redeliver.
	info := env.consumerInfo(t, bus.StreamApply, bus.PoolConsumer(bus.ConsumerExchangeApply, testPool))
	if info.Delivered.Consumer != 1 || info.AckFloor.Stream != 1 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("consumer state after shutdown: delivered %d, ack floor %d, ack pending %d, redelivered %d",
			info.Delivered.Consumer, info.AckFloor.Stream, info.NumAckPending, info.NumRedelivered)
	}
	if n := env.streamMsgs(t, bus.StreamApply); n != 0 {
		t.Fatalf("%d messages left in the work queue", n)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times", calls.Load())
	}
}

func TestConsumeDrainTimeoutCancelsHandlers(t *testing.T) {
	env := newEnv(t, bus.Config{})
	env.publishChanges(t, testOrg, testUser, 1)
	started := make(chan struct{})
	stop := env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		close(started)
		<-ctx.Done() // a handler that only stops when told to
		return ctx.Err()
	}, bus.WithDrainTimeout(100*time.Millisecond))
	<-started
	if err := stop(); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	// The interrupted message was handed back at once, not acked: the next consumer gets it.
	var rec recorder
	env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		rec.add(m)
		return nil
	})
	poll.Until(t, "the redelivery", func() bool { return len(rec.seen()) == 1 })
	if got := rec.seen(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("deliveries %v, want [2]", got)
	}
}

func TestConsumeRunsHandlersConcurrently(t *testing.T) {
	const n = 3
	env := newEnv(t, bus.Config{})
	for i := range n {
		env.publishChanges(t, testOrg, fmt.Sprintf("user%d", i), 1)
	}
	var inFlight atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		if inFlight.Add(1) == n {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, bus.WithConcurrency(n))
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d of %d handlers ran at once", inFlight.Load(), n)
	}
	poll.Until(t, "all messages acked", func() bool { return env.streamMsgs(t, bus.StreamChanges) == 0 })
}

func TestConsumeRecordsMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	env := newEnv(t, bus.Config{}, bus.WithMeterProvider(mp))
	env.publishChanges(t, testOrg, "good", 1)
	env.publishChanges(t, testOrg, "bad", 1)
	var rec recorder
	env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		rec.add(m)
		if m.Route.UserID == "bad" {
			return bus.Permanent(errors.New("rejected"))
		}
		return nil
	})
	poll.Until(t, "both messages settled", func() bool {
		return len(rec.seen()) == 2 && env.settled(t, bus.StreamChanges, bus.ConsumerReconcilerChanges) &&
			env.streamMsgs(t, bus.StreamDead) == 1
	})

	// The metrics of a message are recorded just after it is settled.
	counts := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(t.Context(), &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch data := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, dp := range data.DataPoints {
						got[m.Name+label(dp.Attributes)] += dp.Value
					}
				case metricdata.Histogram[float64]:
					for _, dp := range data.DataPoints {
						got[m.Name+label(dp.Attributes)] += int64(dp.Count)
						if !slices.Equal(dp.Bounds, telemetry.DurationBuckets()) {
							t.Errorf("%s has buckets %v, want telemetry.DurationBuckets (seconds)", m.Name, dp.Bounds)
						}
					}
				}
			}
		}
		return got
	}
	want := map[string]int64{
		"tandem.bus.messages.handled{consumer=reconciler-changes,outcome=ack}":  1,
		"tandem.bus.messages.handled{consumer=reconciler-changes,outcome=term}": 1,
		"tandem.bus.handler.duration{consumer=reconciler-changes,outcome=ack}":  1,
		"tandem.bus.handler.duration{consumer=reconciler-changes,outcome=term}": 1,
		"tandem.bus.messages.published{outcome=stored,stream=TANDEM_CHANGES}":   2,
		"tandem.bus.messages.published{outcome=stored,stream=TANDEM_DEAD}":      1,
	}
	var got map[string]int64
	poll.Until(t, "metrics of both messages", func() bool {
		got = counts()
		return got["tandem.bus.handler.duration{consumer=reconciler-changes,outcome=term}"] == 1 &&
			got["tandem.bus.handler.duration{consumer=reconciler-changes,outcome=ack}"] == 1
	})
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

func label(set attribute.Set) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestConsumeRejects(t *testing.T) {
	env := newEnv(t, bus.Config{})
	ok := func(context.Context, *bus.Message) error { return nil }
	tests := []struct {
		name     string
		consumer string
		handler  bus.Handler
		opts     []bus.ConsumeOption
		is       error
	}{
		{"unknown consumer", "orders", ok, nil, bus.ErrUnknownConsumer},
		{"nil handler", bus.ConsumerReconcilerChanges, nil, nil, nil},
		{"zero concurrency", bus.ConsumerReconcilerChanges, ok, []bus.ConsumeOption{bus.WithConcurrency(0)}, nil},
		{"inverted backoff", bus.ConsumerReconcilerChanges, ok, []bus.ConsumeOption{bus.WithBackoff(time.Minute, time.Second)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := env.bus.Consume(t.Context(), tt.consumer, tt.handler, tt.opts...)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Consume = %v, want an error (%v)", err, tt.is)
			}
		})
	}

	t.Run("consumer not declared", func(t *testing.T) {
		if err := env.js.DeleteConsumer(t.Context(), bus.StreamResults, bus.ConsumerReconcilerResults); err != nil {
			t.Fatal(err)
		}
		if err := env.bus.Consume(t.Context(), bus.ConsumerReconcilerResults, ok); err == nil {
			t.Fatal("Consume of a deleted consumer succeeded")
		}
	})
}

func TestConsumeStopsWhenConnectionCloses(t *testing.T) {
	env := newEnv(t, bus.Config{})
	errc := make(chan error, 1)
	go func() {
		errc <- env.bus.Consume(t.Context(), bus.ConsumerReconcilerChanges, func(context.Context, *bus.Message) error { return nil })
	}()
	// Let the loop reach its first pull request, then pull the connection away.
	poll.Until(t, "the pull request", func() bool {
		return env.consumerInfo(t, bus.StreamChanges, bus.ConsumerReconcilerChanges).NumWaiting > 0
	})
	env.nc.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Consume returned nil after its connection closed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Consume did not return after its connection closed")
	}
}

// TestConsumeKeepsMessageWhenDeadLetterFails checks that a message is never terminated
// without its dead letter: while the dead-letter stream is missing the message is kept and
// retried, and it is dead-lettered once the stream is back. (A stream that is merely missing
// is recreated by the publish, so the stream is made to refuse the subject instead.)
func TestConsumeKeepsMessageWhenDeadLetterFails(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	env := newEnv(t, bus.Config{}, bus.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	dead, err := env.js.Stream(t.Context(), bus.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dead.CachedInfo().Config
	cfg.Subjects = []string{"elsewhere.>"}
	if _, err := env.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	env.publishChanges(t, testOrg, testUser, 1)
	var rec recorder
	env.consume(t, bus.ConsumerReconcilerChanges, func(ctx context.Context, m *bus.Message) error {
		rec.add(m)
		return bus.Permanent(errors.New("rejected"))
	}, bus.WithBackoff(100*time.Millisecond, 100*time.Millisecond))

	poll.Until(t, "a nak for the failed dead letter", func() bool {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(t.Context(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "tandem.bus.messages.handled" {
					for _, dp := range sum.DataPoints {
						if v, _ := dp.Attributes.Value("outcome"); v.AsString() == "nak" && dp.Value > 0 {
							return true
						}
					}
				}
			}
		}
		return false
	})
	if n := env.streamMsgs(t, bus.StreamChanges); n != 1 {
		t.Fatalf("%d messages in the work queue after the dead letter failed, want the message kept", n)
	}

	if err := env.bus.Declare(t.Context()); err != nil {
		t.Fatal(err)
	}
	dl := env.deadLetter(t, testOrg)
	poll.Until(t, "the message to be terminated", func() bool {
		return env.settled(t, bus.StreamChanges, bus.ConsumerReconcilerChanges) && env.streamMsgs(t, bus.StreamChanges) == 0
	})
	if dl.GetDeliveries() < 2 || dl.GetStreamSequence() != 1 {
		t.Fatalf("dead letter after %d deliveries of seq %d, want a redelivery of seq 1", dl.GetDeliveries(), dl.GetStreamSequence())
	}
	if n := env.streamMsgs(t, bus.StreamDead); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
}
