package sfsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const faultApp = "fault-test-app"

// faultEnv is a simulated org with one rep and the real Salesforce connector, with its own
// retries off so that each fault reaches the caller as the connector classifies it.
type faultEnv struct {
	sim  *sfsim.Server
	srv  *httptest.Server
	conn *salesforce.Connector
	rep  *tandemv1.SyncUser
}

func newFaultEnv(t *testing.T, cfg sfsim.Config) *faultEnv {
	t.Helper()
	keyPEM, certPEM, err := sfsim.NewConnectedAppKey(faultApp)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectedApps = []sfsim.ConnectedApp{{ClientID: faultApp, CertificatePEM: certPEM}}
	sim := sfsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	admin, _ := sim.Get("User", sim.AdminUserID())
	rep := &tandemv1.SyncUser{Username: "rep1@acme.example", Email: "rep1@acme.example", Active: true}
	if rep.UserId, err = sim.AddUser(sfsim.User{Username: rep.Username, Email: rep.Email, LastName: "Rep", IsActive: true}); err != nil {
		t.Fatal(err)
	}
	org := &tandemv1.Org{OrgId: sim.OrgID(), Salesforce: &tandemv1.SalesforceConnection{
		Auth: tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER, MyDomainUrl: srv.URL, ClientId: faultApp,
		PrivateKeyPem: string(keyPEM), IntegrationUsername: admin["Username"].(string),
	}}
	conn, err := salesforce.NewConnector(org,
		salesforce.WithRetryPolicy(salesforce.RetryPolicy{Attempts: 1, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, LockAttempts: 1}),
		salesforce.WithHTTPClient(&http.Client{Timeout: 3 * time.Second}), salesforce.WithAllowHTTP(true))
	if err != nil {
		t.Fatal(err)
	}
	return &faultEnv{sim: sim, srv: srv, conn: conn, rep: rep}
}

// TestFaultsAsTheConnectorSeesThem checks that every fault kind reaches the real Salesforce
// connector as the catalogue code the sync engine reacts to, with the retryability it relies on.
func TestFaultsAsTheConnectorSeesThem(t *testing.T) {
	tests := []struct {
		name      string
		fault     sfsim.Fault
		code      syncerr.Code // empty: the connector copes and the call succeeds
		retryable bool
	}{
		{"500", sfsim.Fault{Kind: sfsim.FaultServerError}, syncerr.SalesforceUnavailable, true},
		{"503", sfsim.Fault{Kind: sfsim.FaultUnavailable}, syncerr.SalesforceUnavailable, true},
		{"request limit", sfsim.Fault{Kind: sfsim.FaultRequestLimit}, syncerr.SalesforceRequestLimit, true},
		{"slow beyond the client's timeout", sfsim.Fault{Kind: sfsim.FaultSlow, Delay: 10 * time.Second}, syncerr.SalesforceTimeout, true},
		{"malformed json", sfsim.Fault{Kind: sfsim.FaultMalformedJSON}, syncerr.SalesforceMalformedResponse, true},
		{"session expired once: logs in again", sfsim.Fault{Kind: sfsim.FaultExpireTokens}, "", false},
		{"session expired at every request", sfsim.Fault{Kind: sfsim.FaultExpireTokens, Times: sfsim.Always}, syncerr.SalesforceAuthFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFaultEnv(t, sfsim.Config{})
			if err := e.conn.Check(t.Context()); err != nil { // logged in before the fault
				t.Fatal(err)
			}
			tt.fault.Endpoint = sfsim.EndpointLimits
			e.sim.InjectFault(tt.fault)
			err := e.conn.Check(t.Context())
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
			} else if se := syncerr.As(err); se == nil || se.Code != tt.code || se.Retryable() != tt.retryable {
				t.Fatalf("error %v: want %s retryable=%v", err, tt.code, tt.retryable)
			}
			if got := e.sim.FaultCounts()[tt.fault.Kind.String()]; got < 1 {
				t.Errorf("FaultCounts[%s] = %d (%v)", tt.fault.Kind, got, e.sim.FaultCounts())
			}
		})
	}
}

// TestLockedRowsAsTheConnectorSeesThem checks UNABLE_TO_LOCK_ROW on records chosen at random
// (no ids): each record written is a separate draw, and a locked one comes back as a
// retryable per-record failure while the others are written.
func TestLockedRowsAsTheConnectorSeesThem(t *testing.T) {
	e := newFaultEnv(t, sfsim.Config{FaultSeed: 3})
	var cmds []*tandemv1.WriteCommand
	for i, name := range []string{"Ada", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"} {
		id, err := e.sim.Insert("Contact", map[string]any{"LastName": name}, e.rep.GetUserId())
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, &tandemv1.WriteCommand{CommandId: "u" + string(rune('0'+i)), Op: tandemv1.WriteOp_WRITE_OP_UPDATE, TargetId: id, Fields: []string{"job_title"},
			Record: &tandemv1.Record{Id: id, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{Surname: name, JobTitle: "Buyer"}}}})
	}
	e.sim.InjectFault(sfsim.Fault{Kind: sfsim.FaultLockRows, Probability: 0.5, Times: sfsim.Always})
	results, err := e.conn.Apply(t.Context(), e.rep, tandemv1.RecordKind_RECORD_KIND_CONTACT, cmds)
	if err != nil {
		t.Fatal(err)
	}
	locked := 0
	for i, r := range results {
		got, _ := e.sim.Get("Contact", cmds[i].GetTargetId())
		switch {
		case r.GetOk():
			if got["Title"] != "Buyer" {
				t.Errorf("%s reported written, holds title %v", cmds[i].GetTargetId(), got["Title"])
			}
		case r.GetError().GetCode() == string(syncerr.SalesforceRowLocked) && r.GetError().GetRetryable():
			locked++
			if got["Title"] != nil {
				t.Errorf("%s reported locked, yet written", cmds[i].GetTargetId())
			}
		default:
			t.Errorf("result %d: %v", i, r)
		}
	}
	if locked == 0 || locked == len(cmds) {
		t.Errorf("%d of %d records locked with probability 0.5", locked, len(cmds))
	}
	if got := e.sim.FaultCounts()["LockRows"]; got != int64(locked) {
		t.Errorf("FaultCounts[LockRows] = %d, %d records locked", got, locked)
	}
}

// fired returns which of n limits requests a 503 with probability p fails on a server seeded
// with seed.
func fired(t *testing.T, seed int64, p float64, n int) []int {
	t.Helper()
	e := newFaultEnv(t, sfsim.Config{FaultSeed: seed})
	e.sim.InjectFault(sfsim.Fault{Kind: sfsim.FaultUnavailable, Endpoint: sfsim.EndpointLimits, Probability: p, Times: sfsim.Always})
	var failed []int
	for i := range n {
		err := e.conn.Check(t.Context())
		if err == nil {
			continue
		}
		if se := syncerr.As(err); se.Upstream != "SERVER_UNAVAILABLE" {
			t.Fatalf("request %d failed other than by the fault: %v", i, err)
		}
		failed = append(failed, i)
	}
	if got := e.sim.FaultCounts()["Unavailable"]; got != int64(len(failed)) {
		t.Errorf("FaultCounts[Unavailable] = %d, %d requests failed", got, len(failed))
	}
	return failed
}

func TestProbabilityIsDeterministicBySeed(t *testing.T) {
	a, b, other := fired(t, 42, 0.3, 60), fired(t, 42, 0.3, 60), fired(t, 43, 0.3, 60)
	if !slices.Equal(a, b) {
		t.Fatalf("the same seed failed different requests: %v and %v", a, b)
	}
	if slices.Equal(a, other) {
		t.Errorf("seeds 42 and 43 failed the same requests %v", a)
	}
	if len(a) < 6 || len(a) > 30 {
		t.Errorf("%d of 60 requests failed with probability 0.3", len(a))
	}
}

func TestFaultAdminEndpoint(t *testing.T) {
	t.Run("disabled by default", func(t *testing.T) {
		e := newFaultEnv(t, sfsim.Config{})
		resp, err := http.Post(e.srv.URL+sfsim.FaultAdminPath, "application/json", bytes.NewReader([]byte(`{"faults":[{"kind":"ServerError"}]}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || len(e.sim.Faults()) != 0 {
			t.Fatalf("status %d, %d faults armed", resp.StatusCode, len(e.sim.Faults()))
		}
	})
	t.Run("arms, reports and clears", func(t *testing.T) {
		e := newFaultEnv(t, sfsim.Config{FaultAdmin: true})
		admin := sfsim.FaultAdminClient{BaseURL: e.srv.URL}
		seed := int64(4)
		rep, err := admin.Apply(t.Context(), sfsim.FaultRequest{Seed: &seed, Faults: []sfsim.FaultSpec{
			{Kind: "RequestLimit", Endpoint: sfsim.EndpointLimits, Times: 2},
			{Kind: "LockRows", Probability: 0.1, Times: -1},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Armed) != 2 || rep.Armed[0].Times != 2 {
			t.Fatalf("armed %+v", rep.Armed)
		}
		// The connector stops calling after REQUEST_LIMIT_EXCEEDED: one call sees the fault.
		if se := syncerr.As(e.conn.Check(t.Context())); se == nil || se.Code != syncerr.SalesforceRequestLimit {
			t.Fatalf("a fault armed through the endpoint gave %v", se)
		}
		if rep, err = admin.Report(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rep.Fired["RequestLimit"] != 1 || len(rep.Armed) != 2 || rep.Armed[0].Times != 1 {
			t.Fatalf("report %+v", rep)
		}
		if rep, err = admin.Clear(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(rep.Armed) != 0 || rep.Fired["RequestLimit"] != 1 {
			t.Fatalf("after clear: %+v", rep)
		}
	})
	t.Run("refuses bad requests whole", func(t *testing.T) {
		e := newFaultEnv(t, sfsim.Config{FaultAdmin: true})
		for _, body := range []string{
			`{"faults":[{"kind":"ServerError"},{"kind":"Meteor"}]}`,
			`{"faults":[{"kind":"Slow","probability":-0.5}]}`,
			`{"faults":[{"kind":"ServerError","ids":["003000000000001AAA"]}]}`,
			`{"fault":[]}`,
		} {
			resp, err := http.Post(e.srv.URL+sfsim.FaultAdminPath, "application/json", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || len(e.sim.Faults()) != 0 {
				t.Errorf("%s: status %d (%s), %d faults armed", body, resp.StatusCode, msg, len(e.sim.Faults()))
			}
		}
	})
}

func TestFaultSpecRoundTrip(t *testing.T) {
	in := sfsim.Fault{Kind: sfsim.FaultLockRows, Endpoint: sfsim.EndpointCollectionsUpdate, Method: http.MethodPatch, Times: 3,
		Probability: 0.25, Delay: 40 * time.Millisecond, IDs: []string{"003000000000001AAA"}}
	raw, err := json.Marshal(in.Spec())
	if err != nil {
		t.Fatal(err)
	}
	var sp sfsim.FaultSpec
	if err := json.Unmarshal(raw, &sp); err != nil {
		t.Fatal(err)
	}
	out, err := sp.Fault()
	if err != nil || out.Kind != in.Kind || out.Endpoint != in.Endpoint || out.Method != in.Method || out.Times != in.Times ||
		out.Probability != in.Probability || out.Delay != in.Delay || !slices.Equal(out.IDs, in.IDs) {
		t.Fatalf("round trip gave %+v, %v; want %+v", out, err, in)
	}
}
