package salesforce

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/sim/soql"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// simClock is a settable clock shared by the simulator and the connector.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// simEnv is a simulated org with a connector to it and a few syncing users.
type simEnv struct {
	t     *testing.T
	clock *simClock
	sim   *sfsim.Server
	srv   *httptest.Server
	conn  *Connector
	users []*tandemv1.SyncUser
	// integrationID is the integration user's id.
	integrationID string
	// statements are the SOQL statements the connector sent.
	mu         sync.Mutex
	statements []string
}

type simOptions struct {
	users         int
	allocation    int64
	tokenLifetime time.Duration
	// wholeSeconds stamps records in whole seconds, as Salesforce's API reports them, and
	// starts the clock on a second.
	wholeSeconds bool
	conn         func(*tandemv1.SalesforceConnection)
	// writeAs is the org's write_as.
	writeAs tandemv1.SalesforceWriteIdentity
	opts    []Option
	pubsub  *sfsim.PubSubConfig
	// sfsim adjusts the simulator's configuration.
	sfsim func(*sfsim.Config)
}

func newSimEnv(t *testing.T, o simOptions) *simEnv {
	t.Helper()
	_, pub := testKeyPEM(t)
	clock := &simClock{now: time.Now().UTC().Truncate(time.Millisecond)}
	if o.wholeSeconds {
		clock.now = clock.now.Truncate(time.Second)
	}
	cfg := sfsim.Config{
		OrgID:             testOrgID,
		DailyAllocation:   o.allocation,
		ConnectedApps:     []sfsim.ConnectedApp{{ClientID: testClientID, CertificatePEM: pub, ClientSecret: "s3cret"}},
		Now:               clock.Now,
		TokenLifetime:     o.tokenLifetime,
		WholeSecondStamps: o.wholeSeconds,
	}
	if o.pubsub != nil {
		cfg.PubSub = *o.pubsub
	}
	if o.sfsim != nil {
		o.sfsim(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	env := &simEnv{t: t, clock: clock, sim: sfsim.New(cfg)}
	env.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("q"); q != "" {
			env.mu.Lock()
			env.statements = append(env.statements, q)
			env.mu.Unlock()
		}
		env.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(env.srv.Close)
	env.sim.SetBaseURL(env.srv.URL)
	// The integration user is a Standard User, without Modify All: it writes others' records
	// only while the simulator's sharing is open (sfsim.Config.PrivateSharing off).
	id, err := env.sim.AddUser(sfsim.User{Username: testIntegration, Email: "integration@acme.example", LastName: "Integration", IsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	env.integrationID = id
	for i := range o.users {
		u := &tandemv1.SyncUser{Username: fmt.Sprintf("rep%d@acme.example", i), Email: fmt.Sprintf("rep%d@acme.example", i), Active: true}
		id, err := env.sim.AddUser(sfsim.User{Username: u.Username, Email: u.Email, FirstName: "Rep", LastName: fmt.Sprint(i), IsActive: true})
		if err != nil {
			t.Fatal(err)
		}
		u.UserId = id
		env.users = append(env.users, u)
	}
	org := jwtOrg(t, env.srv.URL)
	org.Salesforce.WriteAs = o.writeAs
	if o.conn != nil {
		o.conn(org.Salesforce)
	}
	opts := append([]Option{WithClock(clock.Now), fastRetry()}, o.opts...)
	env.conn = newTestConnector(t, org, opts...)
	return env
}

// count returns the simulator's call count of an endpoint.
func (e *simEnv) count(endpoint string) int64 { return e.sim.Counts()[endpoint] }

// apiCalls returns the REST calls counted by the simulator, token requests excluded.
func (e *simEnv) apiCalls() int64 {
	var n int64
	for ep, c := range e.sim.Counts() {
		if ep != sfsim.EndpointToken {
			n += c
		}
	}
	return n
}

// checkStatements asserts that the SOQL parser accepts every statement sent so far.
func (e *simEnv) checkStatements() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, q := range e.statements {
		if _, err := soql.Parse(q); err != nil {
			e.t.Errorf("soql.Parse rejected a statement the connector sent: %v\n%s", err, q)
		}
	}
}

// pollResult collects what a poll emitted.
type pollResult struct {
	mu      sync.Mutex
	changes map[string][]*tandemv1.Change
	full    map[string]bool
	calls   map[string]int
}

func newPollResult() *pollResult {
	return &pollResult{changes: map[string][]*tandemv1.Change{}, full: map[string]bool{}, calls: map[string]int{}}
}

func (r *pollResult) emit(_ context.Context, user string, ch []*tandemv1.Change, full bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes[user] = append(r.changes[user], ch...)
	r.full[user] = full
	r.calls[user]++
	return nil
}

func (e *simEnv) poll(kind tandemv1.RecordKind, aud []Audience, cursor string) (*pollResult, string) {
	e.t.Helper()
	r := newPollResult()
	next, err := e.conn.Poll(e.t.Context(), PollRequest{Kind: kind, Audience: aud, Cursor: cursor}, r.emit)
	if err != nil {
		e.t.Fatalf("Poll: %v", err)
	}
	return r, next
}

func (e *simEnv) audience(scope tandemv1.ContactScope, filters ...*tandemv1.FieldFilter) []Audience {
	var out []Audience
	for _, u := range e.users {
		out = append(out, Audience{User: u, Scope: scope, Filters: filters})
	}
	return out
}

// ids lists the record ids of upserts (and, with deletes, of deletes) in order.
func ids(changes []*tandemv1.Change, typ tandemv1.ChangeType) []string {
	var out []string
	for _, c := range changes {
		if c.GetType() == typ {
			out = append(out, c.GetRecord().GetId())
		}
	}
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestSimSmoke(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 2})
	ctx := t.Context()
	if err := env.conn.Check(ctx); err != nil {
		t.Fatal(err)
	}
	users, err := env.conn.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) < 4 {
		t.Fatalf("Users = %d, want admin, integration and 2 reps", len(users))
	}
	if err := env.conn.RefreshFieldLengths(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.sim.SeedContacts(env.users[0].UserId, 25, 1); err != nil {
		t.Fatal(err)
	}
	r, cursor := env.poll(tandemv1.RecordKind_RECORD_KIND_CONTACT, env.audience(tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS), "")
	if got := len(r.changes[env.users[0].UserId]); got != 25 || !r.full[env.users[0].UserId] {
		t.Errorf("user 0: %d changes, full %t", got, r.full[env.users[0].UserId])
	}
	if cursor == "" {
		t.Error("no cursor")
	}
	env.checkStatements()
}
