package exchangeworker

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/platform"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// expectations records what connectors were told to expect, across rebuilds.
type expectations struct {
	mu    sync.Mutex
	calls [][]string
}

func (x *expectations) all() [][]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.calls)
}

// expectingConnector is a fake connector that records what it is told to expect.
type expectingConnector struct {
	*fakeConnector
	record *expectations
	// entered, when set, is closed as Expect starts, which then waits for release.
	entered, release chan struct{}
}

func (c *expectingConnector) Expect(addresses []string) {
	if c.entered != nil {
		close(c.entered)
		<-c.release
	}
	c.record.mu.Lock()
	defer c.record.mu.Unlock()
	c.record.calls = append(c.record.calls, slices.Sorted(slices.Values(addresses)))
}

// TestConnectorIsToldTheOrgsMailboxes: a connector new to the worker is told the org's syncing
// mailboxes once, so that it can resolve them together; users who do not sync are left out,
// and a connector rebuilt after the org changed is told again.
func TestConnectorIsToldTheOrgsMailboxes(t *testing.T) {
	fc := newFakeConnector()
	record := &expectations{}
	e := newEnv(t, testConfig(), func(*platform.Platform) ConnectorFactory {
		return func(*tandemv1.Org) (exchange.Connector, error) {
			return &expectingConnector{fakeConnector: fc, record: record}, nil
		}
	})
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true})
	e.putUsers(
		&tandemv1.SyncUser{UserId: rep1, Email: "rep1@acme.example", Active: true},
		&tandemv1.SyncUser{UserId: rep2, Email: "rep2@acme.example", Active: true},
	)
	if _, err := e.st.PutConfiguration(t.Context(), testOrg, &tandemv1.SyncConfiguration{
		Name: "reps", Active: true, UserIds: []string{rep1},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
	}); err != nil {
		t.Fatal(err)
	}
	job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
	run := func() {
		t.Helper()
		if err := e.w.handleJob(t.Context(), jobMessage(t, job)); err != nil {
			t.Fatal(err)
		}
	}
	run()
	run()
	want := [][]string{{"rep1@acme.example"}}
	if got := record.all(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("told %v, want %v", got, want)
	}
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme (renamed)", Enabled: true})
	run()
	want = append(want, []string{"rep1@acme.example"})
	if got := record.all(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after the org changed: told %v, want %v", got, want)
	}
}

// TestJobsWaitForTheOrgsMailboxesToBeNamed: jobs of the org that start while its mailboxes are
// being named to a new connector wait for it, rather than each resolving its own mailbox alone
// first (one Autodiscover request each instead of one per hundred mailboxes).
func TestJobsWaitForTheOrgsMailboxesToBeNamed(t *testing.T) {
	fc := newFakeConnector()
	conn := &expectingConnector{fakeConnector: fc, record: &expectations{}, entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, testConfig(), func(*platform.Platform) ConnectorFactory {
		return func(*tandemv1.Org) (exchange.Connector, error) { return conn, nil }
	})
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true})
	e.putUsers(
		&tandemv1.SyncUser{UserId: rep1, Email: "rep1@acme.example", Active: true},
		&tandemv1.SyncUser{UserId: rep2, Email: "rep2@acme.example", Active: true},
	)
	if _, err := e.st.PutConfiguration(t.Context(), testOrg, &tandemv1.SyncConfiguration{
		Name: "reps", Active: true, UserIds: []string{rep1, rep2},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
	}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	run := func(user string) {
		job := &tandemv1.SyncJob{OrgId: testOrg, UserId: user, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
		errs <- e.w.handleJob(t.Context(), jobMessage(t, job))
	}
	go run(rep1)
	<-conn.entered // rep1's job names the org's mailboxes
	go run(rep2)
	time.Sleep(200 * time.Millisecond)
	fc.mu.Lock()
	early := len(fc.mailboxes)
	fc.mu.Unlock()
	close(conn.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if early != 0 {
		t.Errorf("%d mailboxes were used before the org's mailboxes were named to the connector", early)
	}
	if got := conn.record.all(); len(got) != 1 {
		t.Errorf("the connector was told the mailboxes %d times, want once", len(got))
	}
}
