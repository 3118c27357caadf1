package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// A pool's consumers are created by its workers (Consume), as nothing else knows the pools in
// advance; nothing removes them when the pool's last org moves elsewhere. PoolConsumers and
// DeletePoolConsumer let a caller that knows which pools are still in use (the scheduler, from
// the orgs' worker_pool) retire the others' consumers once they are idle.

// PoolConsumerState is what the server says of one pool's consumer of one role.
type PoolConsumerState struct {
	// Stream and Name are the consumer's stream and durable name (PoolConsumer(Role, Pool)).
	Stream, Name string
	// Role is the pooled role (ConsumerExchangeJobs, ...); Pool the worker pool.
	Role, Pool string
	// Pending counts the messages on the pool's subjects not yet delivered.
	Pending uint64
	// AckPending counts the messages delivered and not yet acknowledged.
	AckPending int
	// Waiting counts the pull requests waiting for messages: workers of the pool fetching
	// (Consume keeps one waiting while it has a free handler slot).
	Waiting int
	// PushBound says a push subscriber is bound (Tandem's workers pull; an operator's tool
	// might not).
	PushBound bool
}

// Idle reports whether the consumer holds nothing and no worker reads it: no message waits
// for it or for an acknowledgement, and no pull request or subscriber is bound.
func (c PoolConsumerState) Idle() bool {
	return c.Pending == 0 && c.AckPending == 0 && c.Waiting == 0 && !c.PushBound
}

// PoolConsumers lists the pools' consumers of the pooled roles as the server has them, on the
// streams they read. Consumers of no pooled role are left out.
func (b *Bus) PoolConsumers(ctx context.Context) ([]PoolConsumerState, error) {
	var streams []string
	for _, spec := range b.topology.Pooled {
		if !slices.Contains(streams, spec.Stream) {
			streams = append(streams, spec.Stream)
		}
	}
	var out []PoolConsumerState
	for _, name := range streams {
		s, err := b.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // no stream, no consumers: the workers' Consume declares it again
		}
		if err != nil {
			return nil, fmt.Errorf("bus: list the pools' consumers of %s: %w", name, err)
		}
		list := s.ListConsumers(ctx)
		for info := range list.Info() {
			if st, ok := b.poolConsumerState(name, info); ok {
				out = append(out, st)
			}
		}
		if err := list.Err(); err != nil {
			return nil, fmt.Errorf("bus: list the pools' consumers of %s: %w", name, err)
		}
	}
	return out, nil
}

// poolConsumerState returns the state of info, a consumer of stream, if it is a pool's
// consumer of a pooled role on its role's stream.
func (b *Bus) poolConsumerState(stream string, info *jetstream.ConsumerInfo) (PoolConsumerState, bool) {
	spec, ok := b.topology.Consumer(info.Name)
	if !ok || spec.Pool == "" || spec.Stream != stream {
		return PoolConsumerState{}, false
	}
	return PoolConsumerState{
		Stream: stream, Name: info.Name, Role: strings.TrimSuffix(info.Name, "-"+spec.Pool), Pool: spec.Pool,
		Pending: info.NumPending, AckPending: info.NumAckPending, Waiting: info.NumWaiting, PushBound: info.PushBound,
	}, true
}

// DeletePoolConsumer deletes a pool's consumer (as PoolConsumers lists it) and reports whether
// it did: one already gone (another replica of the caller deleted it) is not an error. The
// caller, which knows why it deletes it, logs it. It refuses any other consumer. Messages published for the
// pool later wait in their stream: a worker of the pool that starts again creates the consumer
// anew and takes them, and one still running recreates it at its next pull (recreate.go).
func (b *Bus) DeletePoolConsumer(ctx context.Context, c PoolConsumerState) (bool, error) {
	spec, ok := b.topology.Consumer(c.Name)
	if !ok || spec.Pool == "" || spec.Stream != c.Stream {
		return false, fmt.Errorf("bus: delete consumer %s on %s: not a worker pool's consumer", c.Name, c.Stream)
	}
	err := b.js.DeleteConsumer(ctx, c.Stream, c.Name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bus: delete consumer %s on %s: %w", c.Name, c.Stream, err)
	}
	return true, nil
}
