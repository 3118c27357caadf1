package bus

import (
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

// Durable consumer names. Renaming one is a migration: a new durable starts from the first
// message still in the stream, and the old one keeps its unacked messages.
const (
	ConsumerExchangeJobs      = "exchange-worker-jobs"
	ConsumerSalesforceJobs    = "salesforce-worker-jobs"
	ConsumerExchangeApply     = "exchange-worker-apply"
	ConsumerSalesforceApply   = "salesforce-worker-apply"
	ConsumerReconcilerChanges = "reconciler-changes"
	ConsumerReconcilerResults = "reconciler-results"
	ConsumerStatusDead        = "status-api-dead"
)

// Subject filters. Consumers of one work-queue stream must not overlap: JetStream refuses a
// second consumer whose filter matches messages another one already takes.
const (
	filterJobs            = "tandem.jobs.>"
	filterExchangeJobs    = "tandem.jobs.*.exchange.>"
	filterSalesforceJobs  = "tandem.jobs.*.salesforce"
	filterChanges         = "tandem.changes.>"
	filterApply           = "tandem.apply.>"
	filterExchangeApply   = "tandem.apply.*.exchange.>"
	filterSalesforceApply = "tandem.apply.*.salesforce.>"
	filterResults         = "tandem.results.>"
	filterDead            = "tandem.dead.>"
)

// descriptionStreamSuffix tells an operator browsing the server where a stream comes from.
const descriptionStreamSuffix = " (declared by tandem/pkg/bus)"

// Topology is every stream and durable consumer Tandem uses, as data. Bus.Declare applies it;
// no service creates streams or consumers of its own.
type Topology struct {
	Streams   []jetstream.StreamConfig
	Consumers []ConsumerSpec
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
}

// Consumer returns the spec of the named durable consumer.
func (t Topology) Consumer(name string) (ConsumerSpec, bool) {
	for _, c := range t.Consumers {
		if c.Config.Durable == name {
			return c, true
		}
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
		Consumers: []ConsumerSpec{
			consumer(StreamJobs, ConsumerExchangeJobs, filterExchangeJobs,
				"exchange-worker: per-user Exchange sync jobs", 4096, false),
			consumer(StreamJobs, ConsumerSalesforceJobs, filterSalesforceJobs,
				"salesforce-worker: per-org Salesforce sync jobs", 256, false),
			consumer(StreamApply, ConsumerExchangeApply, filterExchangeApply,
				"exchange-worker: writes to Exchange", 2048, true),
			consumer(StreamApply, ConsumerSalesforceApply, filterSalesforceApply,
				"salesforce-worker: writes to Salesforce", 1024, true),
			consumer(StreamChanges, ConsumerReconcilerChanges, filterChanges,
				"reconciler: changes to reconcile", 8192, false),
			consumer(StreamResults, ConsumerReconcilerResults, filterResults,
				"reconciler: write results to commit", 8192, false),
			consumer(StreamDead, ConsumerStatusDead, filterDead,
				"status-api: dead letters for the sync error report", 256, false),
		},
	}
}
