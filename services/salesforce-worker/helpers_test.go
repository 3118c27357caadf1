package salesforceworker

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testOrg = "00D000000000001EAA"
	contact = tandemv1.RecordKind_RECORD_KIND_CONTACT
	event   = tandemv1.RecordKind_RECORD_KIND_EVENT
)

// env is a salesforce-worker on a real NATS JetStream and a real Redis.
type env struct {
	t     *testing.T
	p     *platformtest.Platform
	st    *store.Store
	w     *Worker
	clock *platformtest.Clock
	// read is the last stream sequence read per stream by published.
	read map[string]uint64
}

func testConfig() Config {
	return Config{JobConcurrency: 2, ApplyConcurrency: 2, DirectoryRefresh: time.Hour, ClientName: "TandemTest"}
}

func newEnv(t *testing.T, cfg Config, factory func(p *platform.Platform) ConnectorFactory) *env {
	t.Helper()
	p := platformtest.New(t)
	w, err := NewWithConnectors(cfg, p.Platform, factory(p.Platform))
	if err != nil {
		t.Fatal(err)
	}
	clk := platformtest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	w.now = clk.Now
	return &env{t: t, p: p, st: p.Store, w: w, clock: clk, read: map[string]uint64{}}
}

// putOrg stores the org (the fake connectors do not look at its connection).
func (e *env) putOrg(org *tandemv1.Org) {
	e.t.Helper()
	if _, err := e.st.PutOrg(e.t.Context(), org); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) putUsers(users ...*tandemv1.SyncUser) {
	e.t.Helper()
	if err := e.st.PutUsers(e.t.Context(), testOrg, users); err != nil {
		e.t.Fatal(err)
	}
}

func jobMessage(t *testing.T, job *tandemv1.SyncJob) *bus.Message {
	t.Helper()
	subject, err := bus.SalesforceJobSubject(job.GetOrgId(), store.DefaultWorkerPool)
	if err != nil {
		t.Fatal(err)
	}
	return platformtest.Message(t, subject, job, 1)
}

// published returns the messages stored in stream since the last call, with their subjects.
func published[M proto.Message](e *env, stream string, newM func() M) ([]M, []string) {
	e.t.Helper()
	msgs, subjects, last := platformtest.Published(e.t, e.p.JetStream, stream, e.read[stream], newM)
	e.read[stream] = last
	return msgs, subjects
}

func (e *env) changes() ([]*tandemv1.ChangeBatch, []string) {
	e.t.Helper()
	return published(e, bus.StreamChanges, func() *tandemv1.ChangeBatch { return &tandemv1.ChangeBatch{} })
}

func (e *env) results() ([]*tandemv1.WriteResultBatch, []string) {
	e.t.Helper()
	return published(e, bus.StreamResults, func() *tandemv1.WriteResultBatch { return &tandemv1.WriteResultBatch{} })
}

// streamMsgs is how many messages stream holds.
func (e *env) streamMsgs(stream string) uint64 {
	e.t.Helper()
	return platformtest.Stored(e.t, e.p.JetStream, stream)
}

// storedCursor returns the org's stored poll cursor of a kind.
func (e *env) storedCursor(kind tandemv1.RecordKind) (cursor, bool) {
	e.t.Helper()
	raw, ok, err := e.st.GetCursor(e.t.Context(), cursorKey(testOrg, kind))
	if err != nil {
		e.t.Fatal(err)
	}
	var c cursor
	if ok {
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			e.t.Fatal(err)
		}
	}
	return c, ok
}

func (e *env) usage() *tandemv1.SalesforceApiUsage {
	e.t.Helper()
	u, err := status.New(e.st).SalesforceUsage(e.t.Context(), testOrg)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// errorReport returns the user's error-report entries; every entry of the org for "".
func (e *env) errorReport(userID string) []*tandemv1.SyncErrorEntry {
	e.t.Helper()
	entries, _, err := e.st.ListErrors(e.t.Context(), testOrg, userID, 0, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return entries
}

// putInFlight records commands as in flight in the user's ledger, as the reconciler does
// before it sends them.
func (e *env) putInFlight(userID string, kind tandemv1.RecordKind, target tandemv1.System, cmds ...*tandemv1.WriteCommand) {
	e.t.Helper()
	platformtest.PutInFlight(e.t, e.st, store.UserKey{OrgID: testOrg, UserID: userID}, kind, target, e.clock.Now(), cmds...)
}
