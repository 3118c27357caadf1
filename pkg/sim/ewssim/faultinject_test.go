package ewssim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
)

const (
	faultAccount  = "svc@acme.example"
	faultPassword = "secret-password"
	faultMailbox  = "rep1@acme.example"
)

// faultEnv is a simulator with one seeded mailbox and the real EWS client, with its own
// retries off so that each fault reaches the caller as the client classifies it.
type faultEnv struct {
	sim    *ewssim.Server
	srv    *httptest.Server
	client *ews.Client
}

func newFaultEnv(t *testing.T, cfg ewssim.Config) *faultEnv {
	t.Helper()
	cfg.ServiceAccounts = []ewssim.ServiceAccount{{Username: faultAccount, Password: faultPassword, ImpersonateAll: true}}
	sim := ewssim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	if err := sim.Seed(faultMailbox, 3, 0, 1); err != nil {
		t.Fatal(err)
	}
	creds, err := ews.NewBasicAuth(faultAccount, faultPassword)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ews.NewClient(ews.Config{Credentials: creds, MaxRetries: -1, RequestTimeout: 3 * time.Second, MaxInlineBackOff: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return &faultEnv{sim: sim, srv: srv, client: client}
}

// sync makes one SyncFolderItems call of the mailbox's Contacts folder.
func (e *faultEnv) sync(t *testing.T) error {
	t.Helper()
	_, err := e.client.SyncFolderItems(t.Context(), ews.Target{URL: e.sim.EWSURL(), Address: faultMailbox},
		ews.FolderID{Distinguished: "contacts"}, "", 10)
	return err
}

// TestFaultsAsTheClientSeesThem checks that every fault kind reaches the real EWS client as the
// catalogue code the sync engine reacts to, with the retryability and delay it relies on.
func TestFaultsAsTheClientSeesThem(t *testing.T) {
	tests := []struct {
		name      string
		fault     ewssim.Fault
		code      syncerr.Code
		retryable bool
		delay     time.Duration
	}{
		{"server busy", ewssim.Fault{Kind: ewssim.FaultServerBusy, BackOff: 2500 * time.Millisecond}, syncerr.ExchangeServerBusy, true, 2500 * time.Millisecond},
		{"503", ewssim.Fault{Kind: ewssim.FaultHTTPStatus, Status: 503}, syncerr.ExchangeUnavailable, true, 0},
		{"503 with Retry-After", ewssim.Fault{Kind: ewssim.FaultHTTPStatus, Status: 503, RetryAfter: 7 * time.Second}, syncerr.ExchangeServerBusy, true, 7 * time.Second},
		{"401", ewssim.Fault{Kind: ewssim.FaultHTTPStatus, Status: 401}, syncerr.ExchangeAuthFailed, false, 0},
		{"slow beyond the client's timeout", ewssim.Fault{Kind: ewssim.FaultSlow, Delay: 10 * time.Second}, syncerr.ExchangeTimeout, true, 0},
		{"malformed xml", ewssim.Fault{Kind: ewssim.FaultMalformedXML}, syncerr.ExchangeMalformedResponse, true, 0},
		{"malformed xml after the work", ewssim.Fault{Kind: ewssim.FaultMalformedXML, AfterWork: true}, syncerr.ExchangeMalformedResponse, true, 0},
		{"dropped before the work", ewssim.Fault{Kind: ewssim.FaultDropConnection}, syncerr.ExchangeUnavailable, true, 0},
		{"dropped after the work", ewssim.Fault{Kind: ewssim.FaultDropConnection, AfterWork: true}, syncerr.ExchangeUnavailable, true, 0},
		{"invalid sync state", ewssim.Fault{Kind: ewssim.FaultInvalidSyncState}, syncerr.ExchangeInvalidSyncState, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFaultEnv(t, ewssim.Config{})
			e.sim.InjectFault(tt.fault)
			err := e.sync(t)
			se := syncerr.As(err)
			if se == nil || se.Code != tt.code || se.Retryable() != tt.retryable || se.Delay != tt.delay {
				t.Fatalf("error %v: want %s retryable=%v delay=%s", err, tt.code, tt.retryable, tt.delay)
			}
			if got := e.sim.FaultCounts()[tt.fault.Label()]; got != 1 {
				t.Errorf("FaultCounts[%s] = %d, want 1 (%v)", tt.fault.Label(), got, e.sim.FaultCounts())
			}
			if err := e.sync(t); err != nil {
				t.Errorf("the fault fired once, yet the next request failed: %v", err)
			}
		})
	}
}

// firings returns which of n requests a fault with probability p fails, on a server seeded
// with seed.
func firings(t *testing.T, seed int64, p float64, n int) []int {
	t.Helper()
	e := newFaultEnv(t, ewssim.Config{FaultSeed: seed})
	e.sim.InjectFault(ewssim.Fault{Kind: ewssim.FaultHTTPStatus, Status: 503, Probability: p, Times: -1})
	var failed []int
	for i := range n {
		err := e.sync(t)
		if err == nil {
			continue
		}
		if se := syncerr.As(err); se.Upstream != "503" {
			t.Fatalf("request %d failed other than by the fault: %v", i, err)
		}
		failed = append(failed, i)
	}
	if got := e.sim.FaultCounts()["HTTP503"]; got != int64(len(failed)) {
		t.Errorf("FaultCounts[HTTP503] = %d, but %d requests failed", got, len(failed))
	}
	return failed
}

func TestProbabilityIsDeterministicBySeed(t *testing.T) {
	a, b, other := firings(t, 42, 0.3, 60), firings(t, 42, 0.3, 60), firings(t, 43, 0.3, 60)
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

func TestProbabilityTimesCountsFirings(t *testing.T) {
	e := newFaultEnv(t, ewssim.Config{FaultSeed: 5})
	e.sim.InjectFault(ewssim.Fault{Kind: ewssim.FaultServerBusy, Probability: 0.5, Times: 3})
	failed := 0
	for range 40 {
		if e.sync(t) != nil {
			failed++
		}
	}
	if failed != 3 || len(e.sim.Faults()) != 0 {
		t.Fatalf("%d requests failed and %d faults are still armed; want 3 and 0", failed, len(e.sim.Faults()))
	}
}

func TestFaultAdminEndpoint(t *testing.T) {
	t.Run("disabled by default", func(t *testing.T) {
		e := newFaultEnv(t, ewssim.Config{})
		resp, err := http.Post(e.srv.URL+ewssim.FaultAdminPath, "application/json", bytes.NewReader([]byte(`{"faults":[{"kind":"ServerBusy"}]}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || len(e.sim.Faults()) != 0 {
			t.Fatalf("status %d, %d faults armed", resp.StatusCode, len(e.sim.Faults()))
		}
	})
	t.Run("arms, reports and clears", func(t *testing.T) {
		e := newFaultEnv(t, ewssim.Config{FaultAdmin: true})
		admin := ewssim.FaultAdminClient{BaseURL: e.srv.URL}
		seed := int64(9)
		rep, err := admin.Apply(t.Context(), ewssim.FaultRequest{Seed: &seed, Faults: []ewssim.FaultSpec{
			{Kind: "ServerBusy", Operation: "SyncFolderItems", BackOffMS: 1200, Times: 2},
			{Kind: "InvalidSyncState", Probability: 0.25, Times: -1},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Armed) != 2 || rep.Armed[0].BackOffMS != 1200 {
			t.Fatalf("armed %+v", rep.Armed)
		}
		for range 2 {
			se := syncerr.As(e.sync(t))
			if se == nil || se.Code != syncerr.ExchangeServerBusy || se.Delay != 1200*time.Millisecond {
				t.Fatalf("a fault armed through the endpoint gave %v", se)
			}
		}
		if rep, err = admin.Report(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rep.Fired["ServerBusy"] != 2 || len(rep.Armed) != 1 {
			t.Fatalf("report %+v", rep)
		}
		if rep, err = admin.Clear(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(rep.Armed) != 0 || rep.Fired["ServerBusy"] != 2 {
			t.Fatalf("after clear: %+v", rep)
		}
		if err := e.sync(t); err != nil {
			t.Fatalf("after clear: %v", err)
		}
		if n := e.sim.Counts()["Total"]; n != 3 {
			t.Errorf("Counts[Total] = %d: admin requests must not count as Exchange traffic", n)
		}
	})
	t.Run("refuses bad requests whole", func(t *testing.T) {
		e := newFaultEnv(t, ewssim.Config{FaultAdmin: true})
		for _, body := range []string{
			`{"faults":[{"kind":"ServerBusy"},{"kind":"Meteor"}]}`,
			`{"faults":[{"kind":"Slow","probability":1.5}]}`,
			`{"faults":[{"kind":"HTTPStatus","status":200}]}`,
			`{"fault":[]}`,
		} {
			resp, err := http.Post(e.srv.URL+ewssim.FaultAdminPath, "application/json", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			var msg bytes.Buffer
			_, _ = msg.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || len(e.sim.Faults()) != 0 {
				t.Errorf("%s: status %d (%s), %d faults armed", body, resp.StatusCode, msg.String(), len(e.sim.Faults()))
			}
		}
	})
}

// TestFaultSpecRoundTrip checks that a fault survives the trip through the admin endpoint's
// JSON unchanged.
func TestFaultSpecRoundTrip(t *testing.T) {
	in := ewssim.Fault{Kind: ewssim.FaultHTTPStatus, Operation: "GetItem", Mailbox: faultMailbox, Times: 4, Probability: 0.5,
		Status: 503, RetryAfter: 3 * time.Second, BackOff: time.Second, Delay: 20 * time.Millisecond, AfterWork: true}
	raw, err := json.Marshal(in.Spec())
	if err != nil {
		t.Fatal(err)
	}
	var sp ewssim.FaultSpec
	if err := json.Unmarshal(raw, &sp); err != nil {
		t.Fatal(err)
	}
	out, err := sp.Fault()
	if err != nil || out != in {
		t.Fatalf("round trip gave %+v, %v; want %+v", out, err, in)
	}
}
