package api

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// UserGauges publishes every org's user counts — the numbers GetOrgStatus reports — as the
// gauge tandem.sync.users with the attributes tandem.org_id and state (expected, linked,
// suspended), for dashboards and alerts. Counting reads every user's status, so it runs in
// the background (Refresh, on an interval) and a metrics scrape reads the last counts.
type UserGauges struct {
	srv *Server

	mu     sync.Mutex
	counts map[string]userCounts
}

// NewUserGauges registers the gauge on mp.
func NewUserGauges(srv *Server, mp metric.MeterProvider) (*UserGauges, error) {
	g := &UserGauges{srv: srv, counts: map[string]userCounts{}}
	_, err := mp.Meter("github.com/tandem-sync/tandem/pkg/api").Int64ObservableGauge("tandem.sync.users",
		metric.WithDescription("Users assigned to active sync configurations, by org and state (expected, linked, suspended)."),
		metric.WithUnit("{user}"),
		metric.WithInt64Callback(g.observe))
	if err != nil {
		return nil, fmt.Errorf("register tandem.sync.users: %w", err)
	}
	return g, nil
}

func (g *UserGauges) observe(_ context.Context, o metric.Int64Observer) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for org, c := range g.counts {
		for state, n := range map[string]int64{"expected": c.expected, "linked": c.linked, "suspended": c.suspended} {
			o.Observe(n, metric.WithAttributes(attribute.String("tandem.org_id", org), attribute.String("state", state)))
		}
	}
	return nil
}

// Refresh counts every org's users again. An org removed since the last count is dropped.
func (g *UserGauges) Refresh(ctx context.Context) error {
	orgs, err := g.srv.st.ListOrgs(ctx)
	if err != nil {
		return fmt.Errorf("count users: %w", err)
	}
	counts := make(map[string]userCounts, len(orgs))
	for _, org := range orgs {
		c, err := g.srv.countUsers(ctx, org.GetOrgId())
		if err != nil {
			return fmt.Errorf("count users of org %s: %w", org.GetOrgId(), err)
		}
		counts[org.GetOrgId()] = c
	}
	g.mu.Lock()
	g.counts = counts
	g.mu.Unlock()
	return nil
}
