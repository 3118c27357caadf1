package bus_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// testEnv is a bus over a fresh embedded server with the topology declared.
type testEnv struct {
	bus *bus.Bus
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(t testing.TB, cfg bus.Config, opts ...bus.Option) *testEnv {
	t.Helper()
	nc := servertest.NATSConn(t)
	b, err := bus.New(nc, cfg, testLogger(t), opts...)
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	if err := b.Declare(t.Context()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return &testEnv{bus: b, nc: nc, js: js}
}

// connect opens a connection to url and JetStream over it, closed when the test ends.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// consume runs Consume in the background. The returned stop cancels it and returns its error;
// it also runs at cleanup, so no handler outlives the test.
func (e *testEnv) consume(t *testing.T, consumer string, h bus.Handler, opts ...bus.ConsumeOption) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- e.bus.Consume(ctx, consumer, h, opts...) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Consume(%s): %v", consumer, err)
		}
	})
	return stop
}

func (e *testEnv) streamMsgs(t *testing.T, stream string) uint64 {
	t.Helper()
	s, err := e.js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}

func (e *testEnv) consumerInfo(t *testing.T, stream, consumer string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(t.Context(), stream, consumer)
	if err != nil {
		t.Fatalf("consumer %s: %v", consumer, err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatalf("consumer %s info: %v", consumer, err)
	}
	return info
}

// settled reports whether the consumer has nothing pending, unacked or waiting for redelivery.
func (e *testEnv) settled(t *testing.T, stream, consumer string) bool {
	info := e.consumerInfo(t, stream, consumer)
	return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
}

// deadLetter waits for the dead letter of the org and returns it.
func (e *testEnv) deadLetter(t *testing.T, org string) *tandemv1.DeadLetter {
	t.Helper()
	subject, err := bus.DeadSubject(org)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.js.Stream(t.Context(), bus.StreamDead)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	var raw *jetstream.RawStreamMsg
	poll.Until(t, "a dead letter on "+subject, func() bool {
		raw, err = s.GetLastMsgForSubject(t.Context(), subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return false
		}
		if err != nil {
			t.Fatalf("get dead letter: %v", err)
		}
		return true
	})
	dl := &tandemv1.DeadLetter{}
	if err := proto.Unmarshal(raw.Data, dl); err != nil {
		t.Fatalf("decode dead letter: %v", err)
	}
	return dl
}

// recorder records the deliveries a handler sees.
type recorder struct {
	mu         sync.Mutex
	deliveries []uint64
}

func (r *recorder) add(m *bus.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, m.NumDelivered)
	return len(r.deliveries)
}

func (r *recorder) seen() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.deliveries...)
}

func changeBatch(org, user string, cycle uint64) *tandemv1.ChangeBatch {
	return &tandemv1.ChangeBatch{
		OrgId:  org,
		UserId: user,
		Source: tandemv1.System_SYSTEM_EXCHANGE,
		Kind:   tandemv1.RecordKind_RECORD_KIND_CONTACT,
		Cycle:  cycle,
		Last:   true,
	}
}

func (e *testEnv) publishChanges(t *testing.T, org, user string, cycle uint64) (subject string, msg *tandemv1.ChangeBatch) {
	t.Helper()
	subject, err := bus.ChangesSubject(org, user)
	if err != nil {
		t.Fatal(err)
	}
	msg = changeBatch(org, user, cycle)
	if err := e.bus.Publish(t.Context(), subject, msg, bus.MsgID("changes", org, user, strconv.FormatUint(cycle, 10))); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return subject, msg
}
