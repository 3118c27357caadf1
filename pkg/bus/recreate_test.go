package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

// TestTopologyRemovedUnderTheBusIsRecreated takes the changes stream or its consumer away from
// a running consumer, as an operator or a NATS server restarted without its store would, and
// checks that publishing and consuming carry on without a restart.
func TestTopologyRemovedUnderTheBusIsRecreated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(t *testing.T, e *testEnv)
	}{
		{"stream purged", func(t *testing.T, e *testEnv) {
			s, err := e.js.Stream(t.Context(), bus.StreamChanges)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
		{"consumer deleted", func(t *testing.T, e *testEnv) {
			if err := e.js.DeleteConsumer(t.Context(), bus.StreamChanges, bus.ConsumerReconcilerChanges); err != nil {
				t.Fatal(err)
			}
		}},
		{"stream deleted", func(t *testing.T, e *testEnv) {
			if err := e.js.DeleteStream(t.Context(), bus.StreamChanges); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, bus.Config{})
			handled := make(chan uint64, 16)
			e.consume(t, bus.ConsumerReconcilerChanges, func(_ context.Context, m *bus.Message) error {
				handled <- m.StreamSequence
				return nil
			})
			e.publishChanges(t, "00Dorg000000001", "005user00000001", 1)
			select {
			case <-handled:
			case <-time.After(10 * time.Second):
				t.Fatal("the first message was not handled")
			}

			tc.remove(t, e)

			// Publishing goes on (the stream comes back if it went), and so does consuming.
			e.publishChanges(t, "00Dorg000000001", "005user00000001", 2)
			var got bool
			poll.Within(t, 45*time.Second, "the message published after the removal handled", func() bool {
				select {
				case <-handled:
					got = true
				default:
				}
				return got
			})
			e.consumerInfo(t, bus.StreamChanges, bus.ConsumerReconcilerChanges)
		})
	}
}
