package scheduler_test

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	"github.com/tandem-sync/tandem/services/scheduler"
)

// newTracedEnv is newEnv with the platform's telemetry and bus recording spans in exp.
func newTracedEnv(t *testing.T, cfg scheduler.Config) (*env, *tracetest.InMemoryExporter, trace.TracerProvider) {
	t.Helper()
	p := platformtest.New(t)
	exp := tracetest.NewInMemoryExporter()
	tel := telemetry.Noop()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tel.TracerProvider = tp
	p.Telemetry = tel
	b, err := bus.New(p.JetStream.Conn(), bus.Config{}, p.Logger, bus.WithTracerProvider(tp), bus.WithPropagator(tel.Propagator))
	if err != nil {
		t.Fatal(err)
	}
	p.Bus = b
	s, err := scheduler.New(cfg, p.Platform)
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, st: p.Store, status: status.New(p.Store), sched: s, reconciler: engine.New(p.Store, p.Bus, engine.Options{Logger: p.Logger})}, exp, tp
}

// cycleSpans returns the ended spans of cycle n.
func cycleSpans(exp *tracetest.InMemoryExporter, n int64) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		attrs := attribute.NewSet(s.Attributes...)
		if v, ok := attrs.Value(telemetry.KeyCycle); s.Name == "scheduler.Cycle" && ok && v.AsInt64() == n {
			out = append(out, s)
		}
	}
	return out
}

// TestDueNowLinksTheCycleSpan: a cycle that an API call made due (store.DueNow under the
// call's span) starts a span that links to the call's and records its trace id; the cycle's
// job publishes are children of the cycle's span. A cycle due by its interval links to nothing.
func TestDueNowLinksTheCycleSpan(t *testing.T) {
	cfg := testConfig()
	cfg.Tick = 20 * time.Millisecond
	e, exp, tp := newTracedEnv(t, cfg)
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsOnly(user1))
	e.p.Run(t, "scheduler", e.sched.Components()...)

	// The first cycle, due because the org never had one.
	var first []tracetest.SpanStub
	poll.Until(t, "the first cycle's span", func() bool { first = cycleSpans(exp, 1); return len(first) > 0 })
	if len(first) != 1 || len(first[0].Links) != 0 {
		t.Fatalf("first cycle spans %+v, want one without links", first)
	}
	// Done with, as workers would be: the next cycle publishes both jobs again.
	if jobs := e.newJobs(t); len(jobs) != 2 {
		t.Fatalf("first cycle published %d jobs, want 2", len(jobs))
	}

	// An admin's call, as status-api serves it: DueNow under the call's span.
	ctx, call := tp.Tracer("test").Start(t.Context(), "tandem.v1.AdminService/ResetUserSync", trace.WithSpanKind(trace.SpanKindServer))
	if err := e.st.DueNow(ctx, orgA); err != nil {
		t.Fatal(err)
	}
	call.End()

	var spans []tracetest.SpanStub
	poll.Until(t, "the second cycle's span", func() bool { spans = cycleSpans(exp, 2); return len(spans) > 0 })
	if len(spans) != 1 {
		t.Fatalf("%d spans of cycle 2, want 1", len(spans))
	}
	cycle := spans[0]
	want := call.SpanContext()
	if len(cycle.Links) != 1 || cycle.Links[0].SpanContext.TraceID() != want.TraceID() || cycle.Links[0].SpanContext.SpanID() != want.SpanID() {
		t.Fatalf("cycle span links %+v, want one to the call's span %v", cycle.Links, want)
	}
	if cycle.SpanContext.TraceID() == want.TraceID() {
		t.Error("the cycle's span is in the call's trace; want a trace of its own, linked")
	}
	attrs := attribute.NewSet(cycle.Attributes...)
	if v, _ := attrs.Value("tandem.due_by.trace_ids"); !slices.Equal(v.AsStringSlice(), []string{want.TraceID().String()}) {
		t.Errorf("tandem.due_by.trace_ids = %v, want [%s]", v.AsStringSlice(), want.TraceID())
	}
	if v, _ := attrs.Value(telemetry.KeyOrg); v.AsString() != orgA {
		t.Errorf("org = %q, want %s", v.AsString(), orgA)
	}

	// The cycle's jobs are published under its span, so their handling and the writes it leads
	// to are in the cycle's trace.
	var sends []string
	for _, s := range exp.GetSpans() {
		if s.Name == "send tandem.jobs" && s.Parent.SpanID() == cycle.SpanContext.SpanID() {
			sends = append(sends, s.Name)
		}
	}
	if len(sends) != 2 {
		t.Errorf("%d job publishes under the cycle's span, want the Salesforce and the Exchange job", len(sends))
	}

	// The link is taken with the cycle: the next one, due by a DueNow without a span, has none.
	e.dueNow(t, orgA)
	poll.Until(t, "the third cycle's span", func() bool { spans = cycleSpans(exp, 3); return len(spans) > 0 })
	if len(spans[0].Links) != 0 {
		t.Errorf("cycle 3 links %+v, want none", spans[0].Links)
	}
}
