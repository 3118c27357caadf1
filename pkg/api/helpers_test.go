package api_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/api"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/seal"
	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testOrg = "00Dorg000000001"
	user1   = "005user00000001"
	user2   = "005user00000002"
	user3   = "005user00000003"
)

// published is one message the engine sent.
type published struct {
	subject string
	msg     proto.Message
	id      string
}

// fakePublisher stands in for the bus: it records what the engine publishes.
type fakePublisher struct {
	mu   sync.Mutex
	msgs []published
}

func (p *fakePublisher) Publish(_ context.Context, subject string, msg proto.Message, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, published{subject, proto.Clone(msg), id})
	return nil
}

func (p *fakePublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// fakeChecker stands in for the connectors in connection tests: it answers with the configured
// results and records what it was asked.
type fakeChecker struct {
	folders       exchange.Folders
	exchangeErr   error
	salesforceErr error

	mu              sync.Mutex
	exchangeCalls   []exchange.Mailbox
	exchangeOrgs    []*tandemv1.Org
	salesforceCalls int
}

func (c *fakeChecker) Exchange(_ context.Context, org *tandemv1.Org, mb exchange.Mailbox) (exchange.Folders, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exchangeCalls = append(c.exchangeCalls, mb)
	c.exchangeOrgs = append(c.exchangeOrgs, proto.Clone(org).(*tandemv1.Org))
	return c.folders, c.exchangeErr
}

func (c *fakeChecker) Salesforce(context.Context, *tandemv1.Org) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.salesforceCalls++
	return c.salesforceErr
}

// env is the API served over a real gRPC transport (bufconn), on a real Redis.
type env struct {
	rdb     *redis.Client
	st      *store.Store
	status  *tstatus.Store
	pub     *fakePublisher
	syncer  *engine.Syncer
	keyring *seal.Keyring
	statusC tandemv1.StatusServiceClient
	adminC  tandemv1.AdminServiceClient
	accessC tandemv1.AccessServiceClient
	server  *api.Server
	lis     *bufconn.Listener
}

type envOptions struct {
	// noKeyring builds the server's store without a seal keyring.
	noKeyring bool
	// keyring replaces the generated keyring.
	keyring *seal.Keyring
	// checker is the connection checker; nil means none (TestConnection is unavailable).
	checker api.Checker
	// rdb reuses a Redis instead of starting one.
	rdb *redis.Client
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	rdb := o.rdb
	if rdb == nil {
		rdb = servertest.Redis(t)
	}
	kr := o.keyring
	if kr == nil && !o.noKeyring {
		kr = platformtest.Keyring(t)
	}
	st := store.New(rdb, kr)
	pub := &fakePublisher{}
	sy := engine.New(st, pub, engine.Options{})

	lis := bufconn.Listen(1 << 20)
	tokens := access.NewTokens(st, nil)
	if err := tokens.Bootstrap(t.Context(), operatorToken); err != nil {
		t.Fatal(err)
	}
	guard := access.NewGuard(tokens, access.DefaultPolicy(), access.GuardOptions{MutationBurst: 1000, MutationsPerSecond: 1000})
	srv := grpc.NewServer(guard.ServerOptions()...)
	a := api.New(st, sy, o.checker, nil)
	a.Register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	e := &env{rdb: rdb, st: st, status: tstatus.New(st), pub: pub, syncer: sy, keyring: kr, server: a, lis: lis}
	conn := e.dial(t, operatorToken)
	e.statusC, e.adminC = tandemv1.NewStatusServiceClient(conn), tandemv1.NewAdminServiceClient(conn)
	e.accessC = tandemv1.NewAccessServiceClient(conn)
	return e
}

// operatorToken is the operator token every env's server knows.
const operatorToken = "test-operator-token-0123456789abcdef"

// dial connects to the env's server, sending token (none when empty) with every call.
func (e *env) dial(t *testing.T, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return e.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(access.Bearer{Token: token, Insecure: true}))
	}
	conn, err := grpc.NewClient("passthrough:///bufconn", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// putUsers stores the org's user directory.
func (e *env) putUsers(t *testing.T, users ...*tandemv1.SyncUser) {
	t.Helper()
	if err := e.st.PutUsers(t.Context(), testOrg, users); err != nil {
		t.Fatal(err)
	}
}

func activeUser(id, email string) *tandemv1.SyncUser {
	return &tandemv1.SyncUser{UserId: id, Email: email, Active: true, ProfileId: "00eprofile000001"}
}

// wantCode fails the test unless err is a gRPC status with code want.
func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("error %v: code %s, want %s", err, got, want)
	}
}

// contactsBothWays is a configuration syncing contacts both ways for users.
func contactsBothWays(users ...string) *tandemv1.SyncConfiguration {
	return &tandemv1.SyncConfiguration{
		OrgId: testOrg, Name: "reps", Active: true, UserIds: users,
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH},
	}
}

// claimFarAhead starts a cycle whose successor is due in an hour, so that a test can tell
// whether an RPC made the org due again.
func (e *env) claimFarAhead(t *testing.T) {
	t.Helper()
	now := time.Now()
	if _, ok, err := e.st.ClaimCycle(t.Context(), testOrg, now, now.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("ClaimCycle: %v, %v", ok, err)
	}
}

// wantDueNow fails the test unless the org's next cycle is due at once.
func (e *env) wantDueNow(t *testing.T) {
	t.Helper()
	sch, err := e.st.GetSchedule(t.Context(), testOrg)
	if err != nil {
		t.Fatal(err)
	}
	if !sch.NextAt.IsZero() {
		t.Fatalf("next cycle due at %v, want now", sch.NextAt)
	}
}

// wantNotDue fails the test if the org's next cycle was made due at once.
func (e *env) wantNotDue(t *testing.T) {
	t.Helper()
	sch, err := e.st.GetSchedule(t.Context(), testOrg)
	if err != nil {
		t.Fatal(err)
	}
	if sch.NextAt.IsZero() {
		t.Fatal("a failed call made the org due")
	}
}
