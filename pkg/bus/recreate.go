package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/retry"
)

// The topology is data, so the bus can put back what was taken from under it: a NATS server
// restarted without its store, a stream or a consumer deleted by an operator. Redis is the
// record and the messages that went with the stream are recovered by reading again (the
// scheduler notices lost reads); what must not happen is a service that keeps failing because
// a stream or consumer it relies on no longer exists.

// missing reports whether err says a stream or a consumer does not exist.
func missing(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// streamRecreateDelay is how long redeclareStream waits before creating a stream it found
// missing. nats-server (2.15) finishes removing a deleted stream's files after answering the
// delete; a stream of the same name created within that moment has its message files taken
// away, logs "Critical write error" and never acknowledges a publish again. A deleted stream is
// an operator's act or a server that lost its store, both rare, so the wait costs little.
const streamRecreateDelay = 500 * time.Millisecond

// redeclareStream creates the named stream from the topology if it does not exist.
func (b *Bus) redeclareStream(ctx context.Context, name string) error {
	b.redeclaring.Lock()
	defer b.redeclaring.Unlock()
	for _, sc := range b.topology.Streams {
		if sc.Name != name {
			continue
		}
		if _, err := b.js.Stream(ctx, name); err == nil {
			return nil
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("bus: look up stream %s: %w", name, err)
		}
		if err := retry.Sleep(ctx, streamRecreateDelay); err != nil {
			return fmt.Errorf("bus: recreate stream %s: %w", name, err)
		}
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: recreate stream %s: %w", name, err)
		}
		b.logger.WarnContext(ctx, "bus: stream was missing; recreated it from the topology", slog.String(logKeyStream, name))
		return nil
	}
	return fmt.Errorf("bus: stream %s is not in the topology", name)
}

// redeclareConsumer makes sure the consumer of spec and its stream exist, recreating them
// from the topology if not, and returns a handle on the consumer.
func (b *Bus) redeclareConsumer(ctx context.Context, spec ConsumerSpec) (jetstream.Consumer, error) {
	cons, err := b.js.Consumer(ctx, spec.Stream, spec.Config.Durable)
	if err == nil {
		return cons, nil
	}
	if !missing(err) {
		return nil, fmt.Errorf("bus: look up consumer %s on %s: %w", spec.Config.Durable, spec.Stream, err)
	}
	if err := b.redeclareStream(ctx, spec.Stream); err != nil {
		return nil, err
	}
	cons, err = b.js.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config)
	if err != nil {
		return nil, fmt.Errorf("bus: recreate consumer %s on %s: %w", spec.Config.Durable, spec.Stream, err)
	}
	b.logger.WarnContext(ctx, "bus: consumer was missing; recreated it from the topology",
		slog.String(logKeyConsumer, spec.Config.Durable), slog.String(logKeyStream, spec.Stream))
	return cons, nil
}

// recreate is called after a failed pull request: if the loop's consumer (or its stream) is
// gone, it recreates it and reports true. Any other cause (the server away) is left to the
// loop's backoff.
func (l *consumeLoop) recreate(ctx context.Context) bool {
	if _, err := l.bus.js.Consumer(ctx, l.spec.Stream, l.name); err == nil || !missing(err) {
		return false
	}
	cons, err := l.bus.redeclareConsumer(ctx, l.spec)
	if err != nil {
		l.logger.WarnContext(ctx, "bus: cannot recreate a missing consumer", slog.Any("error", err))
		return false
	}
	l.cons = cons
	return true
}
