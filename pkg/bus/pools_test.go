package bus_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// subjectLog records the subjects each consumer was handed.
type subjectLog struct {
	mu   sync.Mutex
	seen map[string][]string // consumer -> subjects
}

func (l *subjectLog) handler(consumer string) bus.Handler {
	return func(_ context.Context, m *bus.Message) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.seen == nil {
			l.seen = map[string][]string{}
		}
		l.seen[consumer] = append(l.seen[consumer], m.Subject)
		return nil
	}
}

func (l *subjectLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		n += len(s)
	}
	return n
}

func (l *subjectLog) of(consumer string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.seen[consumer])
	slices.Sort(s)
	return s
}

// TestPoolConsumersTakeOnlyTheirPool: the workers' messages of an org in pool "big" go to the
// consumers of pool "big" only, those of an org in the shared pool to the shared consumers
// only — jobs and write batches, for both systems, including messages published before the
// pool's consumers existed.
func TestPoolConsumersTakeOnlyTheirPool(t *testing.T) {
	env := newEnv(t, bus.Config{})
	ctx := t.Context()
	const bigOrg, sharedOrg = "00Dbig", "00Dshared"
	pools := map[string]string{bigOrg: "big", sharedOrg: testPool}

	want := map[string][]string{} // consumer -> subjects
	publish := func(org string) {
		pool := pools[org]
		job := &tandemv1.SyncJob{OrgId: org, UserId: testUser, System: exchange}
		s := must(bus.ExchangeJobSubject(org, pool, testUser))
		if err := env.bus.Publish(ctx, s, job, bus.MsgID(s)); err != nil {
			t.Fatal(err)
		}
		want[bus.PoolConsumer(bus.ConsumerExchangeJobs, pool)] = append(want[bus.PoolConsumer(bus.ConsumerExchangeJobs, pool)], s)

		s = must(bus.SalesforceJobSubject(org, pool))
		if err := env.bus.Publish(ctx, s, &tandemv1.SyncJob{OrgId: org, System: salesforce}, bus.MsgID(s)); err != nil {
			t.Fatal(err)
		}
		want[bus.PoolConsumer(bus.ConsumerSalesforceJobs, pool)] = append(want[bus.PoolConsumer(bus.ConsumerSalesforceJobs, pool)], s)

		for role, target := range map[string]tandemv1.System{bus.ConsumerExchangeApply: exchange, bus.ConsumerSalesforceApply: salesforce} {
			s = must(bus.ApplySubject(org, target, pool, testUser))
			batch := &tandemv1.WriteBatch{BatchId: bus.MsgID(s), OrgId: org, UserId: testUser, Target: target}
			if err := env.bus.Publish(ctx, s, batch, batch.GetBatchId()); err != nil {
				t.Fatal(err)
			}
			want[bus.PoolConsumer(role, pool)] = append(want[bus.PoolConsumer(role, pool)], s)
		}
	}
	publish(bigOrg) // before any consumer of pool big exists

	var log subjectLog
	var consumers []string
	for _, pool := range []string{testPool, "big"} {
		for _, role := range []string{bus.ConsumerExchangeJobs, bus.ConsumerSalesforceJobs, bus.ConsumerExchangeApply, bus.ConsumerSalesforceApply} {
			name := bus.PoolConsumer(role, pool)
			consumers = append(consumers, name)
			env.consume(t, name, log.handler(name))
		}
	}
	publish(sharedOrg)

	poll.Until(t, "all eight messages to be handled", func() bool { return log.total() == 8 })
	poll.Until(t, "the work streams to be empty", func() bool {
		return env.streamMsgs(t, bus.StreamJobs) == 0 && env.streamMsgs(t, bus.StreamApply) == 0
	})
	for _, c := range consumers {
		w := slices.Clone(want[c])
		slices.Sort(w)
		if got := log.of(c); !slices.Equal(got, w) {
			t.Errorf("consumer %s handled %v, want %v", c, got, w)
		}
	}
}

// TestDeclareRetiresThePoolLessConsumers: a server declared by a Tandem without pools has one
// consumer per worker role over every org, which would keep the pools' consumers from being
// created; Declare deletes them and purges the messages only they would have read.
func TestDeclareRetiresThePoolLessConsumers(t *testing.T) {
	env := newEnv(t, bus.Config{})
	ctx := t.Context()
	old := []struct{ stream, durable, filter, subject string }{
		{bus.StreamJobs, "exchange-worker-jobs", "tandem.jobs.*.exchange.>", "tandem.jobs." + testOrg + ".exchange." + testUser},
		{bus.StreamJobs, "salesforce-worker-jobs", "tandem.jobs.*.salesforce", "tandem.jobs." + testOrg + ".salesforce"},
		{bus.StreamApply, "exchange-worker-apply", "tandem.apply.*.exchange.>", "tandem.apply." + testOrg + ".exchange." + testUser},
		{bus.StreamApply, "salesforce-worker-apply", "tandem.apply.*.salesforce.>", "tandem.apply." + testOrg + ".salesforce." + testUser},
	}
	for _, o := range old {
		if _, err := env.js.CreateOrUpdateConsumer(ctx, o.stream, jetstream.ConsumerConfig{
			Durable: o.durable, FilterSubject: o.filter, AckPolicy: jetstream.AckExplicitPolicy,
		}); err != nil {
			t.Fatalf("old consumer %s: %v", o.durable, err)
		}
		if _, err := env.js.Publish(ctx, o.subject, []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	// A message of the new grammar stays.
	keep := must(bus.ExchangeJobSubject(testOrg, testPool, testUser))
	if err := env.bus.Publish(ctx, keep, &tandemv1.SyncJob{OrgId: testOrg, UserId: testUser, System: exchange}, "keep"); err != nil {
		t.Fatal(err)
	}

	if err := env.bus.Declare(ctx); err != nil {
		t.Fatalf("Declare over the old topology: %v", err)
	}
	for _, o := range old {
		if _, err := env.js.Consumer(ctx, o.stream, o.durable); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("old consumer %s after Declare: %v, want not found", o.durable, err)
		}
	}
	if n := env.streamMsgs(t, bus.StreamApply); n != 0 {
		t.Errorf("apply stream holds %d messages of the old grammar, want 0", n)
	}
	if n := env.streamMsgs(t, bus.StreamJobs); n != 1 {
		t.Errorf("jobs stream holds %d messages, want only the new one", n)
	}

	var log subjectLog
	name := bus.PoolConsumer(bus.ConsumerExchangeJobs, testPool)
	env.consume(t, name, log.handler(name))
	poll.Until(t, "the new job to be handled", func() bool { return log.total() == 1 })
	if got := log.of(name); !slices.Equal(got, []string{keep}) {
		t.Errorf("handled %v, want [%s]", got, keep)
	}
}
