package exchangeworker

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestEWSConnectorsTrace: the connectors the worker builds send their requests as client
// spans on the platform's tracer provider, with no credential in them.
func TestEWSConnectorsTrace(t *testing.T) {
	const password = "s3cret-password"
	sim := ewssim.New(ewssim.Config{ServiceAccounts: []ewssim.ServiceAccount{{Username: serviceAccount, Password: password, ImpersonateAll: true}}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	if err := sim.AddMailbox(rep1Mailbox); err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tel := telemetry.Noop()
	tel.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	p := &platform.Platform{Telemetry: tel, Logger: slog.New(slog.DiscardHandler)}

	conn, err := EWSConnectors(p, true)(&tandemv1.Org{OrgId: testOrg, Exchange: &tandemv1.ExchangeConnection{
		Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, EwsUrl: sim.EWSURL(), ServiceAccount: serviceAccount, Password: password,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Prepare(t.Context(), exchange.Mailbox{Address: rep1Mailbox}); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "ews GetFolder") {
		t.Errorf("spans %v, want the EWS requests'", names)
	}
	if dump := fmt.Sprintf("%+v", spans); strings.Contains(dump, password) {
		t.Error("a span shows the service account's password")
	}
}
