package telemetry

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// redacted replaces what a span must not show.
const redacted = "REDACTED"

type httpOperationKey struct{}

// WithHTTPOperation returns ctx naming the operation of the HTTP requests made with it ("ews
// FindItem", "salesforce query"): a client from InstrumentHTTPClient names their spans so.
// The name must be one of a small set: no record id, address or query in it.
func WithHTTPOperation(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, httpOperationKey{}, name)
}

// httpSpanName names a request's span: the operation its context names, else "HTTP <method>"
// as otelhttp would. Never the URL, which holds record ids and queries.
func httpSpanName(_ string, r *http.Request) string {
	if name, ok := r.Context().Value(httpOperationKey{}).(string); ok && name != "" {
		return name
	}
	return "HTTP " + r.Method
}

// InstrumentHTTPClient returns a copy of hc whose requests are OpenTelemetry client spans, with
// the HTTP semantic conventions' attributes and attrs, and are measured by the HTTP client
// metrics (http.client.request.duration, http.client.request.body.size). Spans are named by
// WithHTTPOperation.
//
// Spans carry no secret: otelhttp records neither headers (Authorization) nor bodies (a SOAP
// envelope, a token request's client secret, a token response), and url.full is recorded with
// every query value replaced by REDACTED and without user info, since a query can carry a
// token (access_token=..., a signature) or a record's data (a SOQL statement). No trace context
// is sent to the server: Exchange and Salesforce do not read it, and our trace ids are no
// business of theirs.
//
// With both providers nil, hc is returned as it is: no spans, no metrics, no cost. A nil
// provider beside a non-nil one records nothing; the global providers are never used. A client
// already instrumented is returned as it is.
func InstrumentHTTPClient(hc *http.Client, tp trace.TracerProvider, mp metric.MeterProvider, attrs ...attribute.KeyValue) *http.Client {
	if tp == nil && mp == nil {
		return hc
	}
	if hc == nil {
		hc = &http.Client{}
	}
	if _, ok := hc.Transport.(*otelhttp.Transport); ok {
		return hc
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(mp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(httpSpanName),
	}
	if len(attrs) > 0 {
		opts = append(opts, otelhttp.WithSpanOptions(trace.WithAttributes(attrs...)))
	}
	c := *hc
	c.Transport = otelhttp.NewTransport(redactingTransport{base: base}, opts...)
	return &c
}

// redactingTransport sits under otelhttp's transport, which has started the request's span and
// set url.full from the whole URL by the time it calls this one: it records the redacted URL
// in its place (the last value set for a key is the one exported).
type redactingTransport struct{ base http.RoundTripper }

func (t redactingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if u := r.URL; u != nil && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil) {
		trace.SpanFromContext(r.Context()).SetAttributes(semconv.URLFull(RedactURL(u)))
	}
	return t.base.RoundTrip(r)
}

// RedactURL returns u as a span or log may show it: scheme, host and path, the query's keys with
// every value REDACTED (a part without "=" is REDACTED whole), and neither user info nor
// fragment.
func RedactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			if key, _, ok := strings.Cut(p, "="); ok {
				parts[i] = key + "=" + redacted
			} else if p != "" {
				// A bare value ("?<token>") is a value too.
				parts[i] = redacted
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.String()
}
