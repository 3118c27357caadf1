package salesforce

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTelemetry(t *testing.T) {
	f := newFakeOrg(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(LimitInfoHeader, "api-usage=42/15000")
		fmt.Fprint(w, `{"DailyApiRequests":{"Max":15000,"Remaining":14958}}`)
	})
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	c := newTestConnector(t, jwtOrg(t, f.srv.URL),
		WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))))
	if err := c.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if org, _ := p.Attributes.Value(attribute.Key("tandem.org_id")); org.AsString() == testOrgID {
						got[m.Name] += p.Value
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] = p.Value
				}
			}
		}
	}
	want := map[string]int64{"tandem.salesforce.requests": 1, "tandem.salesforce.token.requests": 1, "tandem.salesforce.api.used": 42, "tandem.salesforce.api.max": 15000}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %d, want %d (all: %v)", name, got[name], v, got)
		}
	}
	var names []string
	for _, s := range spans.Ended() {
		names = append(names, s.Name())
	}
	if !slices.Equal(names, []string{"salesforce token", "salesforce limits"}) {
		t.Errorf("spans %v, want the token request's and the call's", names)
	}
}
