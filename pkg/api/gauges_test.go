package api_test

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/api"
	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// usersGauge collects tandem.sync.users as state → value for the test org.
func usersGauge(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "tandem.sync.users" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				org, _ := dp.Attributes.Value(attribute.Key("tandem.org_id"))
				state, _ := dp.Attributes.Value(attribute.Key("state"))
				if org.AsString() == testOrg {
					out[state.AsString()] = dp.Value
				}
			}
		}
	}
	return out
}

func TestUserGaugesCountWhatOrgStatusCounts(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	if _, err := e.st.PutOrg(ctx, orgWithSecrets()); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	g, err := api.NewUserGauges(e.server, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	if got := usersGauge(t, reader); len(got) != 0 {
		t.Fatalf("before the first count: %v, want nothing", got)
	}

	parts := []userParts{
		{assigned: passed, recognized: passed, linked: []tandemv1.CheckResult{passed, passed}},
		{assigned: passed, linked: []tandemv1.CheckResult{passed, failed}},
		{assigned: passed},
		{assigned: failed},
	}
	var users []*tandemv1.SyncUser
	for i, p := range parts {
		id := fmt.Sprintf("005user%08d", i+1)
		users = append(users, activeUser(id, fmt.Sprintf("rep%d@acme.example", i+1)))
		e.putParts(t, id, p)
	}
	e.putUsers(t, users...)
	// The third user is suspended after repeated permanent Exchange failures.
	if err := e.status.Put(ctx, store.UserKey{OrgID: testOrg, UserID: "005user00000003"}, tstatus.PartExchange, &tandemv1.UserStatus{Suspended: true, SuspendedAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := g.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"expected": 3, "linked": 1, "suspended": 1}
	got := usersGauge(t, reader)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tandem.sync.users = %v, want %v", got, want)
	}
	resp, err := e.statusC.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.GetStatus(); st.GetUsersExpected() != want["expected"] || st.GetUsersLinked() != want["linked"] || st.GetUsersSuspended() != want["suspended"] {
		t.Fatalf("GetOrgStatus counts %d/%d/%d, the gauge %v", st.GetUsersExpected(), st.GetUsersLinked(), st.GetUsersSuspended(), got)
	}

}
