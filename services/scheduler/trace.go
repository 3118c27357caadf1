package scheduler

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// instrumentationName names the scheduler's tracer.
const instrumentationName = "github.com/tandem-sync/tandem/services/scheduler"

// newTracer returns the scheduler's tracer on tel's provider; one that records nothing
// without telemetry.
func newTracer(tel *telemetry.Telemetry) trace.Tracer {
	if tel == nil {
		return tracenoop.NewTracerProvider().Tracer(instrumentationName)
	}
	return tel.Tracer(instrumentationName)
}

// Attributes of a cycle's span beyond the org and the cycle.
const (
	// attrDueBy lists the trace ids of the calls that made the cycle due (the span's links).
	attrDueBy = attribute.Key("tandem.due_by.trace_ids")
	// attrResumed marks a cycle published again from the outbox.
	attrResumed = attribute.Key("tandem.cycle.resumed")
)

// cycleSpan starts the span of a claimed cycle: its jobs' publishes are its children, and
// through their messages so is every read and write the jobs lead to. A cycle made due by API
// calls (store.DueNow under the call's span) links to those calls' spans, so that the trace of
// a reset or a configuration change leads to the cycle that carried it out.
func (s *Scheduler) cycleSpan(ctx context.Context, orgID string, c store.Schedule, resumed bool) (context.Context, trace.Span) {
	links := make([]trace.Link, 0, len(c.DueBy))
	traceIDs := make([]string, 0, len(c.DueBy))
	for _, sc := range c.DueBy {
		links = append(links, trace.Link{SpanContext: sc})
		traceIDs = append(traceIDs, sc.TraceID().String())
	}
	attrs := []attribute.KeyValue{attribute.String(telemetry.KeyOrg, orgID), attribute.Int64(telemetry.KeyCycle, int64(c.Cycle)), attrResumed.Bool(resumed)}
	if len(traceIDs) > 0 {
		attrs = append(attrs, attrDueBy.StringSlice(traceIDs))
	}
	return s.tracer.Start(ctx, "scheduler.Cycle", trace.WithLinks(links...), trace.WithAttributes(attrs...))
}

// endSpan records err on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "cycle not fully started")
	}
	span.End()
}
