package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	secretToken    = "tok3n-SECRET-0123456789"
	secretPassword = "pa55w0rd-SECRET"
	secretBody     = "client_secret=b0dy-SECRET"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://mail.contoso.com/EWS/Exchange.asmx", "https://mail.contoso.com/EWS/Exchange.asmx"},
		{"https://x.my.salesforce.com/services/data/v62.0/query?q=SELECT+Id+FROM+Contact",
			"https://x.my.salesforce.com/services/data/v62.0/query?q=REDACTED"},
		{"https://h/p?access_token=abc&x=1&flag&=v", "https://h/p?access_token=REDACTED&x=REDACTED&REDACTED&=REDACTED"},
		{"https://user:pw@h/p#frag", "https://h/p"},
		{"https://h/p?abc123", "https://h/p?REDACTED"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactURL(u); got != tc.want {
			t.Errorf("RedactURL(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestInstrumentHTTPClientWithoutProvidersIsTheClient(t *testing.T) {
	hc := &http.Client{}
	if got := InstrumentHTTPClient(hc, nil, nil); got != hc {
		t.Fatal("a client without providers was wrapped")
	}
}

// spanDump is everything an exporter would send of the spans: name, attributes, events, status,
// links, resource.
func spanDump(spans tracetest.SpanStubs) string {
	return fmt.Sprintf("%+v", spans)
}

func TestInstrumentHTTPClientSpans(t *testing.T) {
	var gotTraceparent []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent = append(gotTraceparent, r.Header.Get("traceparent"))
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusUnauthorized)
		}
		fmt.Fprint(w, `{"access_token":"`+secretToken+`"}`)
	}))
	defer srv.Close()

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	org := attribute.String("tandem.org_id", "00Dorg")
	hc := &http.Client{}
	ihc := InstrumentHTTPClient(hc, tp, mp, org)
	if ihc == hc || hc.Transport != nil {
		t.Fatal("the caller's client was changed or not copied")
	}
	if again := InstrumentHTTPClient(ihc, tp, mp); again != ihc {
		t.Fatal("an instrumented client was instrumented again")
	}

	// The caller's own span is the parent: the client span joins its trace.
	ctx, parent := tp.Tracer("test").Start(t.Context(), "parent")
	send := func(ctx context.Context, op, path string) {
		t.Helper()
		if op != "" {
			ctx = WithHTTPOperation(ctx, op)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			srv.URL+path+"?access_token="+secretToken+"&sig="+secretToken, strings.NewReader(secretBody))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("svc@contoso.com", secretPassword)
		req.Header.Set("X-Api-Key", secretToken)
		resp, err := ihc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(ctx, "ews FindItem", "/EWS/Exchange.asmx")
	send(ctx, "", "/fail")
	parent.End()

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3: %v", len(spans), spans)
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	ok, failed := byName["ews FindItem"], byName["HTTP POST"]
	if ok.Name == "" || failed.Name == "" {
		t.Fatalf("span names %v, want ews FindItem and HTTP POST", spans)
	}
	for _, s := range []tracetest.SpanStub{ok, failed} {
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("%s: kind %v, want client", s.Name, s.SpanKind)
		}
		if s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want the caller's span", s.Name, s.Parent.SpanID())
		}
		attrs := attribute.NewSet(s.Attributes...)
		if v, _ := attrs.Value("url.full"); !strings.HasSuffix(v.AsString(), "?access_token=REDACTED&sig=REDACTED") {
			t.Errorf("%s: url.full %q, want its query redacted", s.Name, v.AsString())
		}
		if v, _ := attrs.Value("tandem.org_id"); v.AsString() != "00Dorg" {
			t.Errorf("%s: tandem.org_id %q", s.Name, v.AsString())
		}
		for _, key := range []attribute.Key{"http.request.method", "server.address", "server.port", "http.response.status_code"} {
			if !attrs.HasValue(key) {
				t.Errorf("%s: no %s in %v", s.Name, key, s.Attributes)
			}
		}
	}
	if failed.Status.Code.String() != "Error" {
		t.Errorf("a 401 answer's span has status %v", failed.Status)
	}
	dump := spanDump(spans)
	for _, secret := range []string{secretToken, secretPassword, secretBody, "Basic ", "Authorization"} {
		if strings.Contains(dump, secret) {
			t.Errorf("the spans show %q: %s", secret, dump)
		}
	}
	for _, tp := range gotTraceparent {
		if tp != "" {
			t.Errorf("trace context sent to the server: %q", tp)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			found = found || m.Name == "http.client.request.duration"
		}
	}
	if !found {
		t.Errorf("no http.client.request.duration in %+v", rm.ScopeMetrics)
	}
}

func TestInstrumentHTTPClientTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	target := srv.URL
	srv.Close() // nothing listens there any more

	exp := tracetest.NewInMemoryExporter()
	ihc := InstrumentHTTPClient(&http.Client{}, sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)), nil)
	req, err := http.NewRequestWithContext(WithHTTPOperation(t.Context(), "salesforce token"), http.MethodGet,
		target+"/services/oauth2/token?access_token="+secretToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := ihc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request to a closed port succeeded")
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "salesforce token" || spans[0].Status.Code.String() != "Error" {
		t.Fatalf("spans %v", spans)
	}
	if dump := spanDump(spans); strings.Contains(dump, secretToken) {
		t.Errorf("the span of a failed request shows the token: %s", dump)
	}
}
