package salesforce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// secretRecorder is the transport under the instrumentation: it keeps every credential that
// crosses the wire — the token request's assertion or client secret, the tokens issued, the
// Authorization headers sent — so that the test can look for each of them in the spans.
type secretRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (r *secretRecorder) keep(s string) {
	if s == "" {
		return
	}
	r.mu.Lock()
	r.seen = append(r.seen, s)
	r.mu.Unlock()
}

func (r *secretRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if v := req.Header.Get("Authorization"); v != "" {
		r.keep(v)
		_, tok, _ := strings.Cut(v, " ")
		r.keep(tok)
	}
	token := strings.HasSuffix(req.URL.Path, "/services/oauth2/token")
	if token && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		r.keep(form.Get("assertion"))
		r.keep(form.Get("client_secret"))
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil || !token {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(body, &tr)
	r.keep(tr.AccessToken)
	return resp, nil
}

func (r *secretRecorder) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// TestConnectorSpans checks that every HTTP request of the connector, the token endpoint's
// included, is a client span named for its operation, with the HTTP semantic conventions'
// attributes and the org, and that no credential, SOQL statement or record shows in any span;
// and the same of the Pub/Sub API's gRPC calls.
func TestConnectorSpans(t *testing.T) {
	tests := []struct {
		name string
		conn func(*tandemv1.SalesforceConnection)
	}{
		{"jwt bearer", nil},
		{"client credentials", func(c *tandemv1.SalesforceConnection) {
			c.Auth = tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS
			c.PrivateKeyPem, c.ClientSecret = "", "s3cret"
		}},
	}
	clientSpan := regexp.MustCompile(`^salesforce [a-zA-Z.]+$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			rec := &secretRecorder{base: http.DefaultTransport}
			env, ps := newPubSubEnv(t, simOptions{users: 1, conn: tc.conn, opts: []Option{
				WithHTTPClient(&http.Client{Transport: rec}), WithTracerProvider(tp),
				WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))),
			}})
			if tc.conn != nil {
				// The client credentials flow runs as the connected app's execution user.
				if err := env.sim.AddConnectedApp(sfsim.ConnectedApp{ClientID: testClientID, ClientSecret: "s3cret", ExecutionUserID: env.integrationID}); err != nil {
					t.Fatal(err)
				}
			}
			ctx := t.Context()
			if err := env.conn.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := env.conn.Users(ctx); err != nil {
				t.Fatal(err)
			}
			rep := env.users[0]
			cmd := contactCreate("sk-1", &tandemv1.Contact{GivenName: "Pat", Surname: "Secretsurname", EmailAddress1: "pat@customer.example"})
			if res, err := env.conn.Apply(ctx, rep, contactKind, []*tandemv1.WriteCommand{cmd}); err != nil || !res[0].GetOk() {
				t.Fatalf("Apply: %v %v", res, err)
			}
			topic, _ := ChangeTopic(contactKind)
			if _, err := ps.SchemaID(ctx, topic); err != nil {
				t.Fatal(err)
			}

			spans := exp.GetSpans()
			names := map[string]bool{}
			for _, s := range spans {
				names[s.Name] = true
				if s.SpanKind != trace.SpanKindClient {
					continue
				}
				attrs := attribute.NewSet(s.Attributes...)
				if v, _ := attrs.Value(attrOrg); v.AsString() != testOrgID {
					t.Errorf("%s: %s = %q, want the org", s.Name, attrOrg, v.AsString())
				}
				if strings.HasPrefix(s.Name, "eventbus.v1.PubSub/") {
					continue
				}
				if !clientSpan.MatchString(s.Name) {
					t.Errorf("client span %q is not named for an operation", s.Name)
				}
				for _, key := range []attribute.Key{"http.request.method", "url.full", "server.address", "http.response.status_code"} {
					if !attrs.HasValue(key) {
						t.Errorf("%s: no %s in %v", s.Name, key, s.Attributes)
					}
				}
			}
			for _, n := range []string{"salesforce token", "salesforce limits", "salesforce query", "salesforce collections.upsert",
				"salesforce.Apply", "eventbus.v1.PubSub/GetTopic"} {
				if !names[n] {
					t.Errorf("no span %q among %v", n, names)
				}
			}

			secrets := rec.secrets()
			if len(secrets) < 3 {
				t.Fatalf("recorded only %d credentials: a token request, its token and a request with it were expected", len(secrets))
			}
			dump := fmt.Sprintf("%+v", spans)
			for _, s := range append(secrets, "s3cret", "Bearer", "BEGIN RSA", "SELECT", "Secretsurname", "pat@customer.example") {
				if strings.Contains(dump, s) {
					t.Errorf("the spans show %q", s)
				}
			}
		})
	}
}

// TestConnectorWithoutTelemetry: with no provider the connector sends on the client it was
// given, uninstrumented, and its Pub/Sub client has no stats handler.
func TestConnectorWithoutTelemetry(t *testing.T) {
	hc := &http.Client{}
	c := newTestConnector(t, jwtOrg(t, "http://127.0.0.1:1"), WithHTTPClient(hc))
	if c.cfg.httpClient != hc || c.auth.http != hc {
		t.Fatal("the client was replaced without a provider")
	}
	if c.grpcStats() != nil {
		t.Fatal("a stats handler without a provider")
	}
}
