package bus

import (
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names. Renaming one is a migration: the old stream and its messages stay behind.
const (
	StreamJobs    = "TANDEM_JOBS"
	StreamChanges = "TANDEM_CHANGES"
	StreamApply   = "TANDEM_APPLY"
	StreamResults = "TANDEM_RESULTS"
	StreamDead    = "TANDEM_DEAD"
)

// Pooled consumer roles. The workers' consumers are per worker pool, so that a large tenant
// (an org whose worker_pool names a pool of its own) is served only by the replicas started
// with that pool: each pool has one durable per role, named PoolConsumer(role, pool) (e.g.
// exchange-worker-jobs-shared), which the first replica of the pool to consume creates.
// Renaming a role is a migration, like renaming a durable consumer.
const (
	ConsumerExchangeJobs    = "exchange-worker-jobs"
	ConsumerSalesforceJobs  = "salesforce-worker-jobs"
	ConsumerExchangeApply   = "exchange-worker-apply"
	ConsumerSalesforceApply = "salesforce-worker-apply"
)

// Durable consumer names. Renaming one is a migration: a new durable starts from the first
// message still in the stream, and the old one keeps its unacked messages.
const (
	ConsumerReconcilerChanges = "reconciler-changes"
	ConsumerReconcilerResults = "reconciler-results"
	ConsumerStatusDead        = "status-api-dead"
)

// Subject filters. Consumers of one work-queue stream must not overlap: JetStream refuses a
// second consumer whose filter matches messages another one already takes.
// A pooled consumer's filter has its pool in place of poolPlaceholder, a literal token: pools'
// filters never overlap.
const (
	filterJobs            = "tandem.jobs.>"
	filterExchangeJobs    = "tandem.jobs.*.exchange." + poolPlaceholder + ".*"
	filterSalesforceJobs  = "tandem.jobs.*.salesforce." + poolPlaceholder
	filterChanges         = "tandem.changes.>"
	filterApply           = "tandem.apply.>"
	filterExchangeApply   = "tandem.apply.*.exchange." + poolPlaceholder + ".*"
	filterSalesforceApply = "tandem.apply.*.salesforce." + poolPlaceholder + ".*"
	filterResults         = "tandem.results.>"
	filterDead            = "tandem.dead.>"

	poolPlaceholder = "{pool}"
)

// Before worker pools, each worker role had one durable consumer over every org, on subjects
// without a pool token. Their filters overlap the pools' (JetStream would refuse the pools'
// consumers next to them), so Declare deletes them; the messages left on the old subjects
// (tandem.jobs.<org>.exchange.<user>, tandem.jobs.<org>.salesforce,
// tandem.apply.<org>.<system>.<user>) would never be delivered again, so Declare purges them
// too. They are recovered as any lost message is: the scheduler finds the lost reads and the
// reconciler resends writes left unanswered.
var (
	retiredConsumers = []RetiredConsumer{
		{Stream: StreamJobs, Durable: "exchange-worker-jobs"},
		{Stream: StreamJobs, Durable: "salesforce-worker-jobs"},
		{Stream: StreamApply, Durable: "exchange-worker-apply"},
		{Stream: StreamApply, Durable: "salesforce-worker-apply"},
	}
	retiredSubjects = []RetiredSubject{
		{Stream: StreamJobs, Filter: "tandem.jobs.*.exchange.*"},
		{Stream: StreamJobs, Filter: "tandem.jobs.*.salesforce"},
		{Stream: StreamApply, Filter: "tandem.apply.*.*.*"},
	}
)

// RetiredConsumer is a durable consumer an older Tandem declared and Declare deletes.
type RetiredConsumer struct {
	Stream, Durable string
}

// RetiredSubject is a subject filter no consumer reads any more; Declare purges its messages.
type RetiredSubject struct {
	Stream, Filter string
}

// descriptionStreamSuffix tells an operator browsing the server where a stream comes from.
const descriptionStreamSuffix = " (declared by tandem/pkg/bus)"

// Topology is every stream and durable consumer Tandem uses, as data. Bus.Declare applies it;
// no service creates streams or consumers of its own.
type Topology struct {
	Streams   []jetstream.StreamConfig
	Consumers []ConsumerSpec
	// Pooled are the workers' consumers, one per worker pool: each spec's durable name is its
	// role and its filter holds a placeholder for the pool. Consumer resolves a pool's name;
	// Consume creates a pool's consumer when it first runs.
	Pooled []ConsumerSpec
	// RetiredConsumers and RetiredSubjects are what older versions left behind.
	RetiredConsumers []RetiredConsumer
	RetiredSubjects  []RetiredSubject
}

// ConsumerSpec is a durable pull consumer and how the bus acknowledges its messages.
type ConsumerSpec struct {
	// Stream is the stream the consumer reads.
	Stream string
	// Config is the consumer's server-side configuration.
	Config jetstream.ConsumerConfig
	// DoubleAck makes the bus wait for the server to confirm each ack, for consumers where a
	// lost ack would repeat a costly write.
	DoubleAck bool
	// Pool is the worker pool of a pooled consumer; empty for the others.
	Pool string
}

// PoolConsumer is the name of the durable consumer of role (ConsumerExchangeJobs, ...) for
// the workers of pool: <role>-<pool>.
func PoolConsumer(role, pool string) string { return role + "-" + pool }

// Consumer returns the spec of the named durable consumer: one of Consumers, or a pool's
// consumer of one of the Pooled roles (PoolConsumer).
func (t Topology) Consumer(name string) (ConsumerSpec, bool) {
	for _, c := range t.Consumers {
		if c.Config.Durable == name {
			return c, true
		}
	}
	for _, c := range t.Pooled {
		pool, ok := strings.CutPrefix(name, c.Config.Durable+"-")
		if !ok || checkToken("worker pool", pool) != nil {
			continue
		}
		c.Pool = pool
		c.Config.Durable = name
		c.Config.Description += " (worker pool " + pool + ")"
		c.Config.FilterSubject = strings.ReplaceAll(c.Config.FilterSubject, poolPlaceholder, pool)
		return c, true
	}
	return ConsumerSpec{}, false
}

// streamOf returns the stream that stores subjects of kind k.
func streamOf(k Kind) string {
	switch k {
	case KindJob:
		return StreamJobs
	case KindChanges:
		return StreamChanges
	case KindApply:
		return StreamApply
	case KindResults:
		return StreamResults
	case KindDead:
		return StreamDead
	default:
		return ""
	}
}

// NewTopology returns Tandem's topology with cfg's tunables. cfg must have its defaults
// applied (New and Connect do that).
func NewTopology(cfg Config) Topology {
	// Work streams keep a message only until a worker acks it; the duplicates window makes
	// a retried publish (same message id) a no-op.
	work := func(name, subject, what string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: what + descriptionStreamSuffix,
			Subjects:    []string{subject},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		}
	}
	consumer := func(stream, name, filter, what string, maxAckPending int, doubleAck bool) ConsumerSpec {
		return ConsumerSpec{
			Stream:    stream,
			DoubleAck: doubleAck,
			Config: jetstream.ConsumerConfig{
				Durable:       name,
				Description:   what,
				FilterSubject: filter,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       cfg.AckWait,
				MaxDeliver:    cfg.MaxDeliver,
				MaxAckPending: maxAckPending,
				DeliverPolicy: jetstream.DeliverAllPolicy,
				// Replicas stays 0: a consumer inherits its stream's replicas.
			},
		}
	}
	return Topology{
		Streams: []jetstream.StreamConfig{
			work(StreamJobs, filterJobs, "sync jobs for the workers"),
			work(StreamChanges, filterChanges, "changes read from Exchange and Salesforce"),
			work(StreamApply, filterApply, "write batches for the workers"),
			work(StreamResults, filterResults, "results of write batches"),
			{
				// Dead letters are read by the status API for the error report and must
				// survive being read, so they age out instead of being consumed.
				Name:        StreamDead,
				Description: "messages Tandem gave up on" + descriptionStreamSuffix,
				Subjects:    []string{filterDead},
				Retention:   jetstream.LimitsPolicy,
				Storage:     jetstream.FileStorage,
				Replicas:    cfg.Replicas,
				Duplicates:  cfg.DuplicateWindow,
				MaxAge:      cfg.DeadLetterMaxAge,
			},
		},
		// MaxAckPending caps the messages handed out and not yet acked, across every replica
		// of the consuming service. It is sized to the work each message stands for: an
		// Exchange job is one user's sync, so thousands may run at once across workers; a
		// Salesforce job is a whole org's poll and spends its API budget, so few; apply
		// batches write to the upstream systems and are bounded by their throttling;
		// changes and results are cheap Redis work for the reconciler.
		// The caps of the pooled consumers hold per pool.
		Pooled: []ConsumerSpec{
			consumer(StreamJobs, ConsumerExchangeJobs, filterExchangeJobs,
				"exchange-worker: per-user Exchange sync jobs", 4096, false),
			consumer(StreamJobs, ConsumerSalesforceJobs, filterSalesforceJobs,
				"salesforce-worker: per-org Salesforce sync jobs", 256, false),
			consumer(StreamApply, ConsumerExchangeApply, filterExchangeApply,
				"exchange-worker: writes to Exchange", 2048, true),
			consumer(StreamApply, ConsumerSalesforceApply, filterSalesforceApply,
				"salesforce-worker: writes to Salesforce", 1024, true),
		},
		RetiredConsumers: retiredConsumers,
		RetiredSubjects:  retiredSubjects,
		Consumers: []ConsumerSpec{
			consumer(StreamChanges, ConsumerReconcilerChanges, filterChanges,
				"reconciler: changes to reconcile", 8192, false),
			consumer(StreamResults, ConsumerReconcilerResults, filterResults,
				"reconciler: write results to commit", 8192, false),
			consumer(StreamDead, ConsumerStatusDead, filterDead,
				"status-api: dead letters for the sync error report", 256, false),
		},
	}
}
