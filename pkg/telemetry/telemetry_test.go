package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

// setEnv replaces the OTEL_* environment for one test (t.Setenv restores it afterwards).
func setEnv(t *testing.T, m map[string]string) {
	for _, k := range otelVars {
		t.Setenv(k, m[k])
	}
}

func TestSetupFromEnvironment(t *testing.T) {
	tests := []struct {
		name                    string
		env                     map[string]string
		traces, metrics, pushed bool
	}{
		{"nothing set serves metrics only", nil, false, true, false},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, false, false, false},
		{"exporter none leaves metrics served", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, false, true, false},
		{"console traces only", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true, true, false},
		{"otlp endpoint enables both", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, true, true, true},
		{"per-signal endpoint", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:9"}, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			tel, err := Setup(t.Context(), Config{ServiceName: "test"})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if tel.TracesEnabled != tt.traces || tel.MetricsEnabled != tt.metrics || tel.MetricsPushed != tt.pushed {
				t.Errorf("traces=%v metrics=%v pushed=%v, want %v %v %v",
					tel.TracesEnabled, tel.MetricsEnabled, tel.MetricsPushed, tt.traces, tt.metrics, tt.pushed)
			}
			if (tel.MetricsHandler() != nil) != tt.metrics {
				t.Errorf("MetricsHandler() = %v with metrics=%v", tel.MetricsHandler(), tt.metrics)
			}
			// Nothing listens on the OTLP endpoints used here, so a flush may fail; Shutdown must
			// still return and release the exporters.
			_ = tel.Shutdown(t.Context())
		})
	}
}

// scrape returns what h serves at /metrics, failing the test unless it is a 200 in the
// Prometheus text format.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	return rec.Body.String()
}

// count adds n to the counter name of tel's meter provider.
func count(t *testing.T, tel *Telemetry, name string, n int64) {
	t.Helper()
	c, err := tel.Meter("test").Int64Counter(name, metric.WithUnit("{request}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), n, metric.WithAttributes(attribute.String("outcome", "ok")))
}

func TestMetricsHandlerServesTheMeterProvidersMetrics(t *testing.T) {
	setEnv(t, nil)
	tel, err := Setup(t.Context(), Config{ServiceName: "tandem-test", ServiceVersion: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	count(t, tel, "tandem.test.requests", 3)

	body := scrape(t, tel.MetricsHandler())
	// The counter, by its Prometheus name, with its attribute (beside the exporter's scope labels).
	if !regexp.MustCompile(`(?m)^tandem_test_requests_total\{[^}]*outcome="ok"[^}]*\} 3$`).MatchString(body) {
		t.Errorf("/metrics lacks tandem_test_requests_total{outcome=\"ok\"} 3:\n%s", body)
	}
	want := []string{
		"# TYPE tandem_test_requests_total counter",
		"# TYPE go_goroutines gauge",
		"go_memstats_heap_alloc_bytes ",
		`target_info{`,
		`service_name="tandem-test"`,
		`service_version="v1.2.3"`,
		"promhttp_metric_handler_requests_total",
	}
	if runtime.GOOS == "linux" {
		want = append(want, "process_resident_memory_bytes ")
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %q:\n%s", w, body)
		}
	}
}

func TestTwoTelemetriesHaveIndependentRegistries(t *testing.T) {
	setEnv(t, nil)
	a, err := Setup(t.Context(), Config{ServiceName: "tandem-a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	// The second Setup registers the same runtime collectors again: on a shared (default)
	// registry that would fail.
	b, err := Setup(t.Context(), Config{ServiceName: "tandem-b"})
	if err != nil {
		t.Fatalf("second Setup in one process: %v", err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	count(t, a, "tandem.test.only_a", 1)
	count(t, b, "tandem.test.only_b", 2)

	for _, tc := range []struct {
		name            string
		tel             *Telemetry
		own, other, svc string
	}{
		{"a", a, "tandem_test_only_a_total", "tandem_test_only_b_total", `service_name="tandem-a"`},
		{"b", b, "tandem_test_only_b_total", "tandem_test_only_a_total", `service_name="tandem-b"`},
	} {
		body := scrape(t, tc.tel.MetricsHandler())
		if !strings.Contains(body, tc.own) || !strings.Contains(body, tc.svc) || !strings.Contains(body, "go_goroutines ") {
			t.Errorf("%s's /metrics lacks its own metric %s, %s or go_goroutines:\n%s", tc.name, tc.own, tc.svc, body)
		}
		if strings.Contains(body, tc.other) {
			t.Errorf("%s's /metrics shows the other telemetry's %s", tc.name, tc.other)
		}
	}
	// Neither touched the process-wide default registry.
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "tandem_") || f.GetName() == "target_info" {
			t.Errorf("the default Prometheus registry has %s", f.GetName())
		}
	}
}

func TestSetupHonoursTheStandardEnvironment(t *testing.T) {
	setEnv(t, map[string]string{
		"OTEL_SERVICE_NAME":           "renamed",
		"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment.name=staging,service.version=v9",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
		"OTEL_TRACES_SAMPLER":         "always_off",
	})
	tel, err := Setup(t.Context(), Config{ServiceName: "tandem-test", ServiceVersion: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	body := scrape(t, tel.MetricsHandler())
	for _, w := range []string{`service_name="renamed"`, `service_version="v9"`, `deployment_environment_name="staging"`} {
		if !strings.Contains(body, w) {
			t.Errorf("target_info lacks %s:\n%s", w, body)
		}
	}
	_, span := tel.Tracer("t").Start(t.Context(), "work")
	span.End()
	if span.SpanContext().IsSampled() {
		t.Error("OTEL_TRACES_SAMPLER=always_off sampled a span")
	}
}

func TestSetupRejectsUnknownExporter(t *testing.T) {
	setEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": "carrier-pigeon"})
	if _, err := Setup(t.Context(), Config{}); err == nil {
		t.Fatal("Setup accepted an unknown exporter")
	}
}

func TestLoggerCarriesScopeAndTrace(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelDebug, "reconciler")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(WithScope(t.Context(), "00D000000000001", "005000000000001"), "work")
	log.InfoContext(ctx, "hello", slog.Int("n", 1))
	span.End()

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line is not JSON: %v: %s", err, buf.String())
	}
	want := map[string]any{
		"msg": "hello", "service": "reconciler", KeyOrg: "00D000000000001", KeyUser: "005000000000001",
		"trace_id": span.SpanContext().TraceID().String(), "span_id": span.SpanContext().SpanID().String(),
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v", k, line[k], v)
		}
	}
}

func TestLoggerWithoutScope(t *testing.T) {
	var buf bytes.Buffer
	NewLogger(&buf, slog.LevelInfo, "x").Debug("dropped")
	NewLogger(&buf, slog.LevelInfo, "x").InfoContext(t.Context(), "kept")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("want exactly one JSON line, got %q: %v", buf.String(), err)
	}
	if _, ok := line[KeyOrg]; ok {
		t.Errorf("org attribute without a scope: %v", line)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "WARN": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo, "bogus": slog.LevelInfo} {
		if got := ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
}
