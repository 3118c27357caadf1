package api

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ConnectorChecker tests connections with the real connectors, as a sync would use them.
type ConnectorChecker struct {
	// AllowHTTP permits plain-HTTP Exchange endpoints (simulators and lab servers only).
	AllowHTTP bool
	Logger    *slog.Logger
	// TracerProvider and MeterProvider trace the tests' HTTP calls as a sync's are; nil records
	// nothing.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Exchange prepares the mailbox with a fresh EWS connector. Prepare always asks Exchange (unlike
// Folders, which sync jobs use and which answers from the connector's cache), so the test
// reflects the mailbox as it is now.
func (c ConnectorChecker) Exchange(ctx context.Context, org *tandemv1.Org, mb exchange.Mailbox) (exchange.Folders, error) {
	if org.GetExchange() == nil {
		return exchange.Folders{}, syncerr.New(syncerr.ExchangeConfigurationMissing, "the org has no Exchange connection")
	}
	conn, err := ews.NewConnector(ews.ConnectorConfig{Connection: org.GetExchange(), AllowHTTP: c.AllowHTTP, Logger: c.Logger,
		TracerProvider: c.TracerProvider, MeterProvider: c.MeterProvider})
	if err != nil {
		return exchange.Folders{}, err
	}
	return conn.Prepare(ctx, mb)
}

// Salesforce obtains a token and makes one cheap call with a fresh Salesforce connector.
func (c ConnectorChecker) Salesforce(ctx context.Context, org *tandemv1.Org) error {
	opts := []salesforce.Option{salesforce.WithLogger(c.Logger), salesforce.WithAllowHTTP(c.AllowHTTP)}
	if c.TracerProvider != nil {
		opts = append(opts, salesforce.WithTracerProvider(c.TracerProvider))
	}
	if c.MeterProvider != nil {
		opts = append(opts, salesforce.WithMeterProvider(c.MeterProvider))
	}
	conn, err := salesforce.NewConnector(org, opts...)
	if err != nil {
		return err
	}
	return conn.Check(ctx)
}
