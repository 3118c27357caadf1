package salesforce

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

const instrumentationName = "github.com/tandem-sync/tandem/pkg/salesforce"

// attrOrg is the org's attribute on every measurement and span of the connector.
const attrOrg = "tandem.org_id"

// metrics are the connector's OpenTelemetry instruments. Every measurement carries the org id.
type metrics struct {
	org      attribute.KeyValue
	calls    metric.Int64Counter
	duration metric.Float64Histogram
	tokens   metric.Int64Counter
	used     metric.Int64Gauge
	max      metric.Int64Gauge
}

func newMetrics(mp metric.MeterProvider, orgID string) (*metrics, error) {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	out := &metrics{org: attribute.String(attrOrg, orgID)}
	var err error
	if out.calls, err = m.Int64Counter("tandem.salesforce.requests",
		metric.WithDescription("Salesforce REST requests sent, by operation and outcome."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if out.duration, err = m.Float64Histogram("tandem.salesforce.request.duration",
		metric.WithDescription("Duration of Salesforce REST requests."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(telemetry.DurationBuckets()...)); err != nil {
		return nil, err
	}
	if out.tokens, err = m.Int64Counter("tandem.salesforce.token.requests",
		metric.WithDescription("OAuth token requests, by kind (new or renewal) and outcome."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if out.used, err = m.Int64Gauge("tandem.salesforce.api.used",
		metric.WithDescription("The org's daily API requests used, from Sforce-Limit-Info."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if out.max, err = m.Int64Gauge("tandem.salesforce.api.max",
		metric.WithDescription("The org's daily API request allocation, from Sforce-Limit-Info."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	return out, nil
}

// outcome names an error's class for metric attributes.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(syncerr.As(err).Code)
}

func (m *metrics) request(ctx context.Context, op string, took time.Duration, err error) {
	attrs := metric.WithAttributes(m.org, attribute.String("operation", op), attribute.String("outcome", outcome(err)))
	m.calls.Add(ctx, 1, attrs)
	m.duration.Record(ctx, took.Seconds(), attrs)
}

func (m *metrics) token(ctx context.Context, renewal bool, err error) {
	kind := "new"
	if renewal {
		kind = "renewal"
	}
	m.tokens.Add(ctx, 1, metric.WithAttributes(m.org, attribute.String("kind", kind), attribute.String("outcome", outcome(err))))
}

func (m *metrics) usage(ctx context.Context, used, allocation int64) {
	m.used.Record(ctx, used, metric.WithAttributes(m.org))
	m.max.Record(ctx, allocation, metric.WithAttributes(m.org))
}

// newTracer returns the connector's tracer.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	return tp.Tracer(instrumentationName)
}

// endSpan records err on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, outcome(err))
	}
	span.End()
}
