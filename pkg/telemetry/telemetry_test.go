package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
}

// setEnv replaces the OTEL_* environment for one test (t.Setenv restores it afterwards).
func setEnv(t *testing.T, m map[string]string) {
	for _, k := range otelVars {
		t.Setenv(k, m[k])
	}
}

func TestSetupFromEnvironment(t *testing.T) {
	tests := []struct {
		name            string
		env             map[string]string
		traces, metrics bool
	}{
		{"nothing set is no-op", nil, false, false},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, false, false},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, false, false},
		{"console traces only", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true, false},
		{"otlp endpoint enables both", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, true, true},
		{"per-signal endpoint", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:9"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			tel, err := Setup(t.Context(), Config{ServiceName: "test"})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if tel.TracesEnabled != tt.traces || tel.MetricsEnabled != tt.metrics {
				t.Errorf("traces=%v metrics=%v, want %v %v", tel.TracesEnabled, tel.MetricsEnabled, tt.traces, tt.metrics)
			}
			// Nothing listens on the OTLP endpoints used here, so a flush may fail; Shutdown must
			// still return and release the exporters.
			_ = tel.Shutdown(t.Context())
		})
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
