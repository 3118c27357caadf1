// Package telemetry sets up Tandem's observability: OpenTelemetry traces and metrics configured
// from the standard OTEL_* environment variables (and entirely no-op when none is set), and
// log/slog JSON logs that carry the org, the user and the trace of the work at hand.
//
// Nothing here touches OpenTelemetry's global providers: a *Telemetry is built once per process
// and passed to whoever needs a tracer, a meter or the propagator.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
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

// Telemetry holds a process's tracer and meter providers and the propagator used to carry trace
// context across NATS and gRPC.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator

	// TracesEnabled and MetricsEnabled say whether anything is exported.
	TracesEnabled  bool
	MetricsEnabled bool

	shutdown []func(context.Context) error
}

// Noop returns telemetry that records nothing, for tests and tools.
func Noop() *Telemetry {
	return &Telemetry{
		TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider:  metricnoop.NewMeterProvider(),
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// Setup builds the providers from the OTEL_* environment. A signal is exported only when the
// environment asks for it: OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER name an exporter other
// than "none", or an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or the per-signal variable) is set.
// OTEL_SDK_DISABLED=true turns everything off. With nothing set, Setup returns no-op providers.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	// The exporters read the OTEL_* variables themselves, so the decision is made from the same
	// process environment.
	getenv := os.Getenv
	t := Noop()
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return t, nil
	}
	tracesOn := signalRequested(getenv, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	metricsOn := signalRequested(getenv, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
	if !tracesOn && !metricsOn {
		return t, nil
	}

	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceVersion(cfg.ServiceVersion),
	))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	// Environment attributes (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) win over defaults.
	envRes, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry resource from environment: %w", err)
	}
	if res, err = resource.Merge(res, envRes); err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	if tracesOn {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter from OTEL_* environment: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.TracerProvider = tp
		t.TracesEnabled = true
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	if metricsOn {
		reader, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("metric reader from OTEL_* environment: %w", err), t.Shutdown(ctx))
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
		t.MeterProvider = mp
		t.MetricsEnabled = true
		t.shutdown = append(t.shutdown, mp.Shutdown)
	}
	return t, nil
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
