package engine

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// How a cycle was reconciled: the "from" attribute of tandem.reconcile.cycles.
const (
	// fromNothing: nothing had changed since the last plan, which found nothing to do (quietCycle).
	fromNothing = "nothing_changed"
	// fromChanges: planned from what changed alone (scopedCycle).
	fromChanges = "changes"
	// fromWholeLedger: planned from the user's whole ledger.
	fromWholeLedger = "whole_ledger"
)

// metrics are the engine's OpenTelemetry instruments.
type metrics struct {
	cycles, pagePlans metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter("github.com/tandem-sync/tandem/pkg/reconcile/engine")
	cycles, err := m.Int64Counter("tandem.reconcile.cycles",
		metric.WithDescription("Users' cycles reconciled, by record kind and by what they were planned from: nothing_changed, changes (the changed records and their pairs), whole_ledger."),
		metric.WithUnit("{cycle}"))
	if err != nil {
		return nil, fmt.Errorf("create the reconciler's metrics: %w", err)
	}
	pagePlans, err := m.Int64Counter("tandem.reconcile.page_plans",
		metric.WithDescription("Plans made from a page's changes before the cycle it belongs to was complete (a settled user's edits of linked records), by record kind."),
		metric.WithUnit("{plan}"))
	if err != nil {
		return nil, fmt.Errorf("create the reconciler's metrics: %w", err)
	}
	return &metrics{cycles: cycles, pagePlans: pagePlans}, nil
}

// cycle counts a reconciled cycle.
func (m *metrics) cycle(ctx context.Context, kind tandemv1.RecordKind, from string) {
	m.cycles.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", store.KindName(kind)), attribute.String("from", from)))
}

// pagePlan counts a plan made before its page's cycle was complete (Syncer.pagePlan).
func (m *metrics) pagePlan(ctx context.Context, kind tandemv1.RecordKind) {
	m.pagePlans.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", store.KindName(kind))))
}
