package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// instrumentationName names the tracer and meter of this package.
const instrumentationName = "github.com/tandem-sync/tandem/pkg/bus"

// headerCarrier lets an OpenTelemetry propagator read and write NATS headers. NATS header keys
// are case-sensitive (unlike HTTP's), so keys are used exactly as the propagator spells them:
// canonicalising "traceparent" would make it invisible to the other side.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[key] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Span attributes beyond the semantic conventions, which have none for JetStream sequences.
const (
	attrStreamSequence = attribute.Key("messaging.nats.stream.sequence")
	attrDeliveryCount  = attribute.Key("messaging.nats.message.delivery_count")
	attrDuplicate      = attribute.Key("messaging.nats.duplicate")
)

// messagingSystem is the messaging.system attribute value for every span of the bus.
var messagingSystem = semconv.MessagingSystemKey.String("nats")

// Outcomes of handling a message, as recorded in metrics.
const (
	outcomeAck  = "ack"
	outcomeNak  = "nak"
	outcomeTerm = "term"
)

// Outcomes of a publish, as recorded in metrics.
const (
	publishStored    = "stored"
	publishDuplicate = "duplicate"
	publishError     = "error"
)

// metrics are the bus's OpenTelemetry instruments.
type metrics struct {
	handled   metric.Int64Counter
	duration  metric.Float64Histogram
	published metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	meter := mp.Meter(instrumentationName)
	handled, err := meter.Int64Counter("tandem.bus.messages.handled",
		metric.WithDescription("Messages handled, by consumer and outcome (ack, nak, term)."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("create handled counter: %w", err)
	}
	duration, err := meter.Float64Histogram("tandem.bus.handler.duration",
		metric.WithDescription("Time a handler took to process a message, by consumer and outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(telemetry.DurationBuckets()...))
	if err != nil {
		return nil, fmt.Errorf("create handler duration histogram: %w", err)
	}
	published, err := meter.Int64Counter("tandem.bus.messages.published",
		metric.WithDescription("Messages published, by stream and outcome (stored, duplicate, error)."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("create published counter: %w", err)
	}
	return &metrics{handled: handled, duration: duration, published: published}, nil
}

func (m *metrics) recordHandled(ctx context.Context, consumer, outcome string, took time.Duration) {
	attrs := metric.WithAttributes(attribute.String("consumer", consumer), attribute.String("outcome", outcome))
	m.handled.Add(ctx, 1, attrs)
	m.duration.Record(ctx, took.Seconds(), attrs)
}

func (m *metrics) recordPublished(ctx context.Context, stream, outcome string) {
	m.published.Add(ctx, 1, metric.WithAttributes(attribute.String("stream", stream), attribute.String("outcome", outcome)))
}

// Log attribute keys, shared by every log line of the bus so that logs can be filtered by
// org and user across services.
const (
	logKeyOrg      = "org"
	logKeyUser     = "user"
	logKeySubject  = "subject"
	logKeyConsumer = "consumer"
	logKeyStream   = "stream"
	logKeySeq      = "stream_seq"
	logKeyDelivery = "deliveries"
)

func routeAttrs(s Subject) []any {
	attrs := make([]any, 0, 2)
	if s.OrgID != "" {
		attrs = append(attrs, slog.String(logKeyOrg, s.OrgID))
	}
	if s.UserID != "" {
		attrs = append(attrs, slog.String(logKeyUser, s.UserID))
	}
	return attrs
}
