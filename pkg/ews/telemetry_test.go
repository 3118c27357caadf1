package ews

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// credentialRecorder is the transport under the instrumentation: it keeps every Authorization
// header sent, so that the test knows each secret that went over the wire, tokens included.
type credentialRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	sent []string
}

func (r *credentialRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if v := req.Header.Get("Authorization"); v != "" {
		r.mu.Lock()
		r.sent = append(r.sent, v)
		r.mu.Unlock()
	}
	return r.base.RoundTrip(req)
}

// secrets are the credentials sent: each header's value and its scheme's parameter (the
// base64 of user:password, the bearer token).
func (r *credentialRecorder) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, v := range r.sent {
		out = append(out, v)
		if _, param, ok := strings.Cut(v, " "); ok {
			out = append(out, param)
		}
	}
	return out
}

// TestConnectorSpans checks that every request of a connector is a client span named for its
// operation, with the HTTP semantic conventions' attributes and no secret.
func TestConnectorSpans(t *testing.T) {
	const clientSecret = "app-Secret-4711"
	env := newSimEnv(t, ewssim.Config{
		OAuthApps: []ewssim.OAuthApp{{TenantID: "contoso.onmicrosoft.com", ClientID: "app-id", ClientSecret: clientSecret}},
	})
	if err := env.sim.AddMailbox("alice@contoso.com"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		conn      *tandemv1.ExchangeConnection
		wantNames []string
		// bearer: the requests carry a token, which must have been sent (and kept out of spans).
		bearer bool
	}{
		{"basic via SOAP autodiscover", env.connection(), []string{"autodiscover GetUserSettings", "ews GetFolder"}, false},
		{"basic via POX autodiscover", func() *tandemv1.ExchangeConnection {
			c := env.connection()
			c.AutodiscoverUrl = env.srv.URL + "/autodiscover/autodiscover.xml"
			return c
		}(), []string{"autodiscover POX", "ews GetFolder"}, false},
		{"oauth client credentials", &tandemv1.ExchangeConnection{
			Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS, TenantId: "contoso.onmicrosoft.com",
			ClientId: "app-id", ClientSecret: clientSecret,
			TokenUrl: env.srv.URL + "/contoso.onmicrosoft.com/oauth2/v2.0/token",
			EwsUrl:   env.srv.URL + "/EWS/Exchange.asmx",
		}, []string{"oauth token", "ews GetFolder"}, true},
	}
	spanName := regexp.MustCompile(`^(ews|autodiscover|oauth) [A-Za-z]+$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			reader := sdkmetric.NewManualReader()
			rec := &credentialRecorder{base: env.srv.Client().Transport}
			c := env.connector(t, tc.conn, func(cfg *ConnectorConfig) {
				cfg.HTTPClient = &http.Client{Transport: rec}
				cfg.TracerProvider = tp
				cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			})
			ctx, parent := tp.Tracer("test").Start(t.Context(), "prepare")
			if _, err := c.Prepare(ctx, mailboxOf("alice@contoso.com")); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			parent.End()

			spans := exp.GetSpans()
			names := map[string]bool{}
			for _, s := range spans {
				names[s.Name] = true
				if s.Name == "prepare" {
					continue
				}
				if !spanName.MatchString(s.Name) {
					t.Errorf("span name %q does not name an operation", s.Name)
				}
				if s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != parent.SpanContext().SpanID() {
					t.Errorf("%s: kind %v, parent %v: want a client span under the caller's", s.Name, s.SpanKind, s.Parent.SpanID())
				}
				attrs := attribute.NewSet(s.Attributes...)
				for _, key := range []attribute.Key{"http.request.method", "url.full", "server.address", "http.response.status_code"} {
					if !attrs.HasValue(key) {
						t.Errorf("%s: no %s in %v", s.Name, key, s.Attributes)
					}
				}
			}
			for _, n := range tc.wantNames {
				if !names[n] {
					t.Errorf("no span %q among %v", n, names)
				}
			}

			secrets := append([]string{simPassword, clientSecret, "Envelope", "Authorization"}, rec.secrets()...)
			if len(rec.secrets()) == 0 {
				t.Fatal("no credentials were sent")
			}
			if tc.bearer && !strings.Contains(strings.Join(rec.secrets(), " "), "Bearer ") {
				t.Fatalf("no bearer token was sent: %v", rec.secrets())
			}
			dump := fmt.Sprintf("%+v", spans)
			for _, s := range secrets {
				if strings.Contains(dump, s) {
					t.Errorf("the spans show %q", s)
				}
			}

			var rm metricdata.ResourceMetrics
			if err := reader.Collect(t.Context(), &rm); err != nil {
				t.Fatal(err)
			}
			var metrics []string
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					metrics = append(metrics, m.Name)
				}
			}
			if !strings.Contains(strings.Join(metrics, " "), "http.client.request.duration") {
				t.Errorf("metrics %v, want http.client.request.duration", metrics)
			}
		})
	}
}

// TestConnectorWithoutTelemetry checks that a connector without providers sends its requests
// on the client it was given, uninstrumented.
func TestConnectorWithoutTelemetry(t *testing.T) {
	env := newSimEnv(t, ewssim.Config{})
	hc := env.srv.Client()
	c := env.connector(t, env.connection(), func(cfg *ConnectorConfig) { cfg.HTTPClient = hc })
	if got := c.client.http.Transport; got != hc.Transport {
		t.Fatalf("transport %T, want the client's own", got)
	}
}
