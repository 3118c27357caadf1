// Package telemetry sets up Tandem's observability: OpenTelemetry traces and metrics, and
// log/slog JSON logs that carry the org, the user and the trace of the work at hand.
//
// Metrics are always recorded and served in the Prometheus text format by MetricsHandler (the
// platform mounts it at /metrics on each service's health port), together with the Go runtime
// and process metrics and target_info, which carries the resource (service.name,
// service.version). Traces, and a push of the metrics, are exported only when the standard
// OpenTelemetry environment asks for them:
//
//   - OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
//     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT for one signal) turns on OTLP export of traces and
//     metrics; OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf by default, or grpc),
//     OTEL_EXPORTER_OTLP_HEADERS and the other OTEL_EXPORTER_OTLP_* variables configure it.
//   - OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER name the exporter ("otlp", "console",
//     "none"); "none" turns that signal's export off ("none" for metrics leaves /metrics on).
//     OTEL_METRICS_EXPORTER=prometheus is redundant: it starts a second endpoint on
//     OTEL_EXPORTER_PROMETHEUS_HOST:PORT.
//   - OTEL_SERVICE_NAME overrides the service name (tandem-<service>), and
//     OTEL_RESOURCE_ATTRIBUTES adds resource attributes or overrides ours (service.version
//     included).
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose the sampler (parentbased_always_on
//     by default); OTEL_METRIC_EXPORT_INTERVAL sets how often metrics are pushed.
//   - OTEL_SDK_DISABLED=true turns everything off, /metrics included.
//
// With none of them set, traces are not recorded and metrics are only served on /metrics.
//
// InstrumentHTTPClient makes an HTTP client's requests client spans (named by
// WithHTTPOperation, with url.full redacted) and HTTP client metrics on a Telemetry's
// providers: the EWS and Salesforce connectors' calls.
//
// Nothing here touches global state: neither OpenTelemetry's global providers nor
// Prometheus's default registry. A *Telemetry is built once per process and passed to whoever
// needs a tracer, a meter, the propagator or the metrics handler; two of them in one process
// (tests, tools) are independent.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	otelprometheus "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Config names the process for its telemetry.
type Config struct {
	// ServiceName is the default service.name; OTEL_SERVICE_NAME overrides it.
	ServiceName string
	// ServiceVersion is service.version.
	ServiceVersion string
}

// Telemetry holds a process's tracer and meter providers, the propagator used to carry trace
// context across NATS and gRPC, and the handler that serves its metrics to Prometheus.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator

	// TracesEnabled says whether traces are recorded and exported.
	TracesEnabled bool
	// MetricsEnabled says whether metrics are recorded and served by MetricsHandler: always,
	// unless OTEL_SDK_DISABLED=true.
	MetricsEnabled bool
	// MetricsPushed says whether metrics are also pushed by the exporter the OTEL_*
	// environment asks for (OTLP, console).
	MetricsPushed bool

	metrics  http.Handler
	shutdown []func(context.Context) error
}

// Noop returns telemetry that records nothing, for tests and tools. Its MetricsHandler is nil.
func Noop() *Telemetry {
	return &Telemetry{
		TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider:  metricnoop.NewMeterProvider(),
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// Setup builds the providers from cfg and the OTEL_* environment (see the package doc). The
// meter provider always has a Prometheus reader, on a registry of this Telemetry's own that
// also collects the Go runtime and process metrics; a push exporter is added when
// OTEL_METRICS_EXPORTER names one other than "none" or an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set. Traces are
// recorded only when OTEL_TRACES_EXPORTER or an OTLP endpoint asks for them. With
// OTEL_SDK_DISABLED=true, Setup returns Noop().
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	// The exporters read the OTEL_* variables themselves, so the decision is made from the same
	// process environment.
	getenv := os.Getenv
	t := Noop()
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return t, nil
	}
	tracesOn := signalRequested(getenv, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	pushMetrics := signalRequested(getenv, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")

	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	if tracesOn {
		// The provider reads OTEL_TRACES_SAMPLER(_ARG) and the OTEL_SPAN_* limits itself.
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter from OTEL_* environment: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.TracerProvider = tp
		t.TracesEnabled = true
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}

	// A registry of our own, not prometheus.DefaultRegisterer: two Telemetry in one process
	// (tests, `tandem dev` beside a tool) must not collide or see each other's metrics.
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, errors.Join(fmt.Errorf("register Go runtime metrics: %w", err), t.Shutdown(ctx))
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, errors.Join(fmt.Errorf("register process metrics: %w", err), t.Shutdown(ctx))
	}
	// The exporter adds target_info, which carries the resource (service.name, service.version).
	promReader, err := otelprometheus.New(otelprometheus.WithRegisterer(reg))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("prometheus exporter: %w", err), t.Shutdown(ctx))
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(promReader), sdkmetric.WithResource(res)}
	if pushMetrics {
		reader, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("metric reader from OTEL_* environment: %w", err), promReader.Shutdown(ctx), t.Shutdown(ctx))
		}
		opts = append(opts, sdkmetric.WithReader(reader))
		t.MetricsPushed = true
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	t.MeterProvider = mp
	t.MetricsEnabled = true
	t.shutdown = append(t.shutdown, mp.Shutdown)
	t.metrics = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A collector that fails leaves the others' metrics served, and is counted in
		// promhttp_metric_handler_errors_total.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	}))
	return t, nil
}

// newResource describes the process: our defaults, then the environment's
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) over them.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceVersion(cfg.ServiceVersion),
	))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	envRes, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry resource from environment: %w", err)
	}
	if res, err = resource.Merge(res, envRes); err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	return res, nil
}

func signalRequested(getenv func(string) string, exporterVar, signalEndpointVar string) bool {
	if v := strings.TrimSpace(getenv(exporterVar)); v != "" {
		return !strings.EqualFold(v, "none")
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv(signalEndpointVar) != ""
}

// Tracer returns a named tracer.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// Meter returns a named meter.
func (t *Telemetry) Meter(name string) metric.Meter { return t.MeterProvider.Meter(name) }

// MetricsHandler serves every metric recorded through MeterProvider, with target_info and the
// Go runtime (go_*) and process (process_*) metrics, in the Prometheus exposition format. It is
// nil when metrics are not recorded (Noop, OTEL_SDK_DISABLED=true).
func (t *Telemetry) MetricsHandler() http.Handler { return t.metrics }

// Shutdown flushes and stops the exporters. Call it last, after every service has stopped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		if err := t.shutdown[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	t.shutdown = nil
	return errors.Join(errs...)
}

// DurationBuckets are the bucket boundaries, in seconds, of Tandem's duration histograms: from a
// few milliseconds (a Redis round trip, a small handler) to a minute (a slow Exchange or
// Salesforce call near its timeout). The SDK's defaults are sized for milliseconds and would
// put every call in the first buckets.
func DurationBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}
