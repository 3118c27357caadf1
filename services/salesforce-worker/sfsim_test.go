package salesforceworker

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const connectedApp = "tandem-test-connected-app"

// connectedAppKey returns an RSA key and a self-signed certificate for the connected app: the
// simulator checks the JWT assertions with the certificate, as Salesforce does.
func connectedAppKey(t *testing.T) (keyPEM, certPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: connectedApp},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// sfsimEnv is a worker with the real REST connector against a simulated org with two reps.
type sfsimEnv struct {
	*env
	sim        *sfsim.Server
	org        *tandemv1.Org
	rep1, rep2 string
}

// newSFSimEnv builds the environment on the real clock, or with a clock of its own that the
// simulator, the connectors and the worker share and that moves only when told.
func newSFSimEnv(t *testing.T, ownClock bool) *sfsimEnv {
	t.Helper()
	keyPEM, certPEM := connectedAppKey(t)
	now := time.Now
	var clk *platformtest.Clock
	if ownClock {
		clk = platformtest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
		now = clk.Now
	}
	sim := sfsim.New(sfsim.Config{
		OrgID: testOrg, DailyAllocation: 100_000,
		ConnectedApps: []sfsim.ConnectedApp{{ClientID: connectedApp, CertificatePEM: certPEM}},
		Now:           now,
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	profile := sim.AddProfile("Sales Rep")
	se := &sfsimEnv{sim: sim}
	for i, id := range []*string{&se.rep1, &se.rep2} {
		email := fmt.Sprintf("rep%d@acme.example", i+1)
		var err error
		*id, err = sim.AddUser(sfsim.User{Username: email, Email: email, FirstName: "Rep", LastName: fmt.Sprint(i + 1), ProfileID: profile, IsActive: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sim.SeedContacts(se.rep1, 5, 1); err != nil {
		t.Fatal(err)
	}
	admin, ok := sim.Get("User", sim.AdminUserID())
	if !ok {
		t.Fatal("the simulator has no admin user")
	}

	se.env = newEnv(t, testConfig(), func(p *platform.Platform) ConnectorFactory {
		rest := RESTConnectors(p, "TandemTest", true)
		if !ownClock {
			return rest
		}
		return func(org *tandemv1.Org) (Connector, error) {
			return salesforce.NewConnector(org, salesforce.WithClientName("TandemTest"), salesforce.WithClock(now), salesforce.WithAllowHTTP(true))
		}
	})
	se.org = &tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true, Salesforce: &tandemv1.SalesforceConnection{
		Auth: tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER, MyDomainUrl: srv.URL, ClientId: connectedApp,
		PrivateKeyPem: string(keyPEM), IntegrationUsername: fmt.Sprint(admin["Username"]),
	}}
	se.putOrg(se.org)
	if _, err := se.st.PutConfiguration(t.Context(), testOrg, &tandemv1.SyncConfiguration{
		Name: "Reps", Active: true, ProfileIds: []string{profile},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, Scope: tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS},
	}); err != nil {
		t.Fatal(err)
	}
	// The worker's clock is the one the connector and the simulator use.
	se.w.now = now
	if ownClock {
		se.clock = clk
	}
	return se
}

// reads groups the published pages by user and checks each user's read is complete.
func reads(t *testing.T, pages []*tandemv1.ChangeBatch) map[string][]*tandemv1.ChangeBatch {
	t.Helper()
	out := map[string][]*tandemv1.ChangeBatch{}
	for _, p := range pages {
		out[p.GetUserId()] = append(out[p.GetUserId()], p)
	}
	for userID, ps := range out {
		for i, p := range ps {
			if p.GetPage() != uint32(i) || p.GetSource() != tandemv1.System_SYSTEM_SALESFORCE || p.GetReadAt() == nil {
				t.Errorf("%s page %d: page %d source %s read_at %v", userID, i, p.GetPage(), p.GetSource(), p.GetReadAt())
			}
			if last := i == len(ps)-1; p.GetLast() != last || (last && p.GetPageCount() != uint32(len(ps))) {
				t.Errorf("%s page %d: last %v page_count %d of %d pages", userID, i, p.GetLast(), p.GetPageCount(), len(ps))
			}
		}
	}
	return out
}

func changesOf(pages []*tandemv1.ChangeBatch) []*tandemv1.Change {
	var out []*tandemv1.Change
	for _, p := range pages {
		out = append(out, p.GetChanges()...)
	}
	return out
}

func TestSalesforceSimulator(t *testing.T) {
	se := newSFSimEnv(t, false)
	ctx := t.Context()
	contacts := []tandemv1.RecordKind{contact}
	users := []string{se.rep1, se.rep2}

	t.Run("directory", func(t *testing.T) {
		if err := se.w.handleJob(ctx, jobMessage(t, job(1, contacts, nil, nil))); err != nil {
			t.Fatal(err)
		}
		dir := se.directoryIDs()
		if !slices.Contains(dir, se.rep1) || !slices.Contains(dir, se.rep2) {
			t.Errorf("directory %v, want both reps", dir)
		}
		if pages, _ := se.changes(); len(pages) != 0 {
			t.Errorf("a directory job published %v", pages)
		}
	})

	t.Run("first sync reads every rep in full", func(t *testing.T) {
		if err := se.w.handleJob(ctx, jobMessage(t, job(1, contacts, users, users))); err != nil {
			t.Fatal(err)
		}
		byUser := reads(t, first(se.changes()))
		for _, u := range users {
			for _, p := range byUser[u] {
				if !p.GetFullSnapshot() || p.GetPreviousCycle() != 0 || p.GetCycle() != 1 {
					t.Errorf("%s: page %d full %v previous %d cycle %d, want a full read of cycle 1", u, p.GetPage(), p.GetFullSnapshot(), p.GetPreviousCycle(), p.GetCycle())
				}
			}
		}
		if got := changesOf(byUser[se.rep1]); len(got) != 5 || got[0].GetRecord().GetOwnerId() != se.rep1 || got[0].GetRecord().GetContact() == nil {
			t.Errorf("rep1's changes %v, want the 5 seeded contacts", got)
		}
		if len(byUser[se.rep2]) == 0 || len(changesOf(byUser[se.rep2])) != 0 {
			t.Errorf("rep2's pages %v, want an empty full read", byUser[se.rep2])
		}
		if c, ok := se.storedCursor(contact); !ok || c.Cycle != 1 {
			t.Errorf("cursor %+v (%v), want cycle 1", c, ok)
		}
		u := se.usage()
		if u.GetDailyMax() != 100_000 || u.GetTandemCalls() == 0 || u.GetUsed() == 0 {
			t.Errorf("usage %v, want the simulator's allocation and Tandem's calls", u)
		}
	})

	t.Run("incremental reads", func(t *testing.T) {
		// The first read after the first sync establishes the org's cursor.
		if err := se.w.handleJob(ctx, jobMessage(t, job(2, contacts, users, nil))); err != nil {
			t.Fatal(err)
		}
		se.changes()
		id, err := se.sim.Insert("Contact", map[string]any{"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.example"}, se.rep1)
		if err != nil {
			t.Fatal(err)
		}
		if err := se.w.handleJob(ctx, jobMessage(t, job(3, contacts, users, nil))); err != nil {
			t.Fatal(err)
		}
		byUser := reads(t, first(se.changes()))
		got := changesOf(byUser[se.rep1])
		if len(got) != 1 || got[0].GetRecord().GetId() != id || got[0].GetRecord().GetContact().GetSurname() != "Hopper" {
			t.Errorf("rep1's changes %v, want the new contact only", got)
		}
		for _, u := range users {
			for _, p := range byUser[u] {
				if p.GetFullSnapshot() || p.GetPreviousCycle() != 2 || p.GetCycle() != 3 {
					t.Errorf("%s: page %d full %v previous %d cycle %d, want an incremental read of cycle 3 after 2", u, p.GetPage(), p.GetFullSnapshot(), p.GetPreviousCycle(), p.GetCycle())
				}
			}
		}
		if len(byUser[se.rep2]) == 0 || len(changesOf(byUser[se.rep2])) != 0 {
			t.Errorf("rep2's pages %v, want a read without changes", byUser[se.rep2])
		}
		if c, _ := se.storedCursor(contact); c.Cycle != 3 || c.Value == "" {
			t.Errorf("cursor %+v, want cycle 3", c)
		}
	})

	t.Run("writes in flight are made as the rep", func(t *testing.T) {
		cmd := &tandemv1.WriteCommand{
			CommandId: "cmd-ada", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-ada",
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "Ada", Surname: "Lovelace", EmailAddress1: "ada@engine.example"}}},
		}
		stale := &tandemv1.WriteCommand{
			CommandId: "cmd-stale", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-stale",
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "Stale", Surname: "Write"}}},
		}
		se.putInFlight(se.rep1, contact, tandemv1.System_SYSTEM_SALESFORCE, cmd)
		batch := &tandemv1.WriteBatch{
			BatchId: "batch-ada", OrgId: testOrg, UserId: se.rep1, Target: tandemv1.System_SYSTEM_SALESFORCE, Kind: contact, Cycle: 3,
			Commands: []*tandemv1.WriteCommand{cmd, stale},
		}
		// A redelivery: the connector first looks for an earlier attempt.
		if err := se.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, 2)); err != nil {
			t.Fatal(err)
		}
		results, _ := se.results()
		if len(results) != 1 || len(results[0].GetResults()) != 1 || results[0].GetCompletedAt() == nil {
			t.Fatalf("results %v, want one result for the command in flight", results)
		}
		r := results[0].GetResults()[0]
		if r.GetCommandId() != "cmd-ada" || !r.GetOk() {
			t.Fatalf("result %v", r)
		}
		rec, ok := se.sim.Get("Contact", r.GetRecord().GetId())
		if !ok || rec["LastName"] != "Lovelace" || rec["OwnerId"] != se.rep1 || rec["Tandem_Sync_Key__c"] != "sk-ada" {
			t.Errorf("created contact %v, want Ada Lovelace owned by rep1 with her sync key", rec)
		}
	})

	t.Run("rejected credentials are reported for every user", func(t *testing.T) {
		before, _ := se.storedCursor(contact)
		broken := &tandemv1.Org{OrgId: testOrg, Enabled: true, Salesforce: &tandemv1.SalesforceConnection{
			Auth: tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER, MyDomainUrl: se.org.GetSalesforce().GetMyDomainUrl(),
			ClientId: "not-the-connected-app", IntegrationUsername: se.org.GetSalesforce().GetIntegrationUsername(),
			PrivateKeyPem: se.org.GetSalesforce().GetPrivateKeyPem(), // a changed client id binds the key: sent again
		}}
		se.putOrg(broken) // only the client id is wrong
		if err := se.w.handleJob(ctx, jobMessage(t, job(5, contacts, users, nil))); err != nil {
			t.Fatalf("handleJob = %v, want nil: reported, and the next cycle tries again", err)
		}
		for _, u := range users {
			entries := se.errorReport(u)
			if len(entries) != 1 || entries[0].GetError().GetCode() != string(syncerr.SalesforceAuthFailed) {
				t.Errorf("%s's error report %v, want SALESFORCE_AUTH_FAILED", u, entries)
			}
		}
		if after, _ := se.storedCursor(contact); after != before {
			t.Errorf("cursor moved from %+v to %+v", before, after)
		}
		se.putOrg(se.org)
	})

	t.Run("the request limit sends the job back to the bus", func(t *testing.T) {
		before, _ := se.storedCursor(contact)
		se.sim.InjectFault(sfsim.Fault{Kind: sfsim.FaultRequestLimit, Times: sfsim.Always})
		defer se.sim.ClearFaults()
		err := se.w.handleJob(ctx, jobMessage(t, job(6, contacts, users, nil)))
		se2 := syncerr.As(err)
		if err == nil || se2.Code != syncerr.SalesforceRequestLimit || bus.IsPermanent(err) || se2.RetryAfter() <= 0 {
			t.Fatalf("handleJob = %v, want SALESFORCE_REQUEST_LIMIT_EXCEEDED with a delay, for the bus to retry", err)
		}
		if after, _ := se.storedCursor(contact); after != before {
			t.Errorf("cursor moved from %+v to %+v", before, after)
		}
		if u := se.usage(); u.GetBackedOffUntil() == nil {
			t.Errorf("usage %v, want the org backed off", u)
		}
	})
}

// TestSalesforceSimulatorIdleCycles runs the org's cycles after a bulk load through the worker,
// its cursor stored in Redis between them: the first cycle after it reads the recent records
// back (for transactions that commit late), reports none again, and asks getUpdated how far
// everything is committed, which is past them all; after that, an idle cycle is one queryAll
// that returns no row, where reading back a fixed window before the watermark cost a page per
// 2,000 records, every cycle.
func TestSalesforceSimulatorIdleCycles(t *testing.T) {
	se := newSFSimEnv(t, true)
	// Seeded 5 s into a minute, so that the minute getUpdated covers a minute later is past
	// every seeded record's stamp, whatever the time the test runs at.
	now := se.clock.Now()
	se.clock.Advance(now.Truncate(time.Minute).Add(time.Minute + 5*time.Second).Sub(now))
	if _, err := se.sim.SeedContacts(se.rep2, 2100, 2); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	contacts := []tandemv1.RecordKind{contact}
	users := []string{se.rep1, se.rep2}
	cycle := uint64(0)
	run := func(full []string) map[string][]*tandemv1.ChangeBatch {
		t.Helper()
		cycle++
		if err := se.w.handleJob(ctx, jobMessage(t, job(cycle, contacts, users, full))); err != nil {
			t.Fatal(err)
		}
		return reads(t, first(se.changes()))
	}
	if err := se.w.handleJob(ctx, jobMessage(t, job(0, contacts, nil, nil))); err != nil {
		t.Fatal(err)
	}
	se.clock.Advance(time.Second)
	if got := len(changesOf(run(users)[se.rep2])); got != 2100 {
		t.Fatalf("first sync read %d of rep2's contacts", got)
	}
	for i, gap := range []time.Duration{time.Minute, salesforce.DefaultOverlap, salesforce.DefaultOverlap, salesforce.DefaultOverlap} {
		se.clock.Advance(gap)
		se.sim.ResetCounts()
		byUser := run(nil)
		for _, u := range users {
			if len(byUser[u]) == 0 || len(changesOf(byUser[u])) != 0 {
				t.Errorf("cycle %d: %s's pages %v, want a read without changes", cycle, u, byUser[u])
			}
		}
		counts := se.sim.Counts()
		// Reading back 2,105 records first — more than a page, so between two queries of what
		// changed since, of their own —, then idle.
		want := map[string]int64{sfsim.EndpointQueryAll: 3, sfsim.EndpointQueryMore: 1, sfsim.EndpointUpdated: 1}
		if i >= 1 {
			want = map[string]int64{sfsim.EndpointQueryAll: 1}
		}
		if !maps.Equal(counts, want) {
			t.Errorf("cycle %d called %v, want %v", cycle, counts, want)
		}
	}
	id, err := se.sim.Insert("Contact", map[string]any{"LastName": "Fresh"}, se.rep1)
	if err != nil {
		t.Fatal(err)
	}
	se.clock.Advance(time.Minute)
	se.sim.ResetCounts()
	if got := changesOf(run(nil)[se.rep1]); len(got) != 1 || got[0].GetRecord().GetId() != id {
		t.Errorf("after the idle cycles, rep1's changes %v, want the new contact", got)
	}
	if counts := se.sim.Counts(); !maps.Equal(counts, map[string]int64{sfsim.EndpointQueryAll: 1}) {
		t.Errorf("a cycle with one change called %v, want one queryAll", counts)
	}
}

// first returns the first of two results.
func first[A, B any](a A, _ B) A { return a }
