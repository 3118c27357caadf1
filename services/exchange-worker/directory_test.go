package exchangeworker

import (
	"slices"
	"sync"
	"testing"

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
}

func (c *expectingConnector) Expect(addresses []string) {
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
