package bus_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
)

// levels records the level of every log record whose message contains a word.
type levels struct {
	mu   sync.Mutex
	word string
	seen []slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *levels) WithGroup(string) slog.Handler            { return l }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, l.word) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Level)
		l.mu.Unlock()
	}
	return nil
}

func (l *levels) get() []slog.Level {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]slog.Level(nil), l.seen...)
}

// TestConsumeLogsContentionQuietly checks that waiting one's turn (bus.Contended) is retried
// like a transient failure but logged at debug level, while a real failure warns.
func TestConsumeLogsContentionQuietly(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want slog.Level
	}{
		{"contention", bus.Contended(errors.New("user held elsewhere")), slog.LevelDebug},
		{"failure", errors.New("upstream down"), slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &levels{word: "will be redelivered"}
			nc := servertest.NATSConn(t)
			b, err := bus.New(nc, bus.Config{}, slog.New(rec))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Declare(t.Context()); err != nil {
				t.Fatal(err)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			e := &testEnv{bus: b, nc: nc, js: js}
			e.publishChanges(t, testOrg, testUser, 1)
			var calls sync.Map
			e.consume(t, bus.ConsumerReconcilerChanges, func(_ context.Context, m *bus.Message) error {
				if _, again := calls.LoadOrStore(m.StreamSequence, true); again {
					return nil
				}
				return tc.err
			}, bus.WithBackoff(10*time.Millisecond, 10*time.Millisecond))
			poll.Until(t, "the message retried and acked", func() bool {
				return e.settled(t, bus.StreamChanges, bus.ConsumerReconcilerChanges) && e.streamMsgs(t, bus.StreamChanges) == 0
			})
			if got := rec.get(); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("redelivery logged at %v, want once at %v", got, tc.want)
			}
		})
	}
	if bus.Contended(nil) != nil || bus.IsContended(errors.New("x")) || !bus.IsContended(bus.Contended(errors.New("x"))) {
		t.Fatal("Contended and IsContended disagree")
	}
}
