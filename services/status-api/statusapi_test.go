package statusapi_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/certtest"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
	statusapi "github.com/tandem-sync/tandem/services/status-api"
)

const (
	testOrg  = "00Dorg000000001EAA"
	testUser = "005user00000001"
)

// running is a status-api serving TLS on a real TCP listener over real NATS and Redis.
type running struct {
	p     *platformtest.Platform
	addr  string
	certs certtest.Files
	// stop cancels the service and returns what its Run returned.
	stop func() error
}

func start(t *testing.T, gracefulStop time.Duration) *running {
	t.Helper()
	return startWith(t, statusapi.Config{GracefulStop: gracefulStop})
}

// operatorToken is the deployment operator token the tests' status-api reads from its file.
const operatorToken = "tandem_test-operator-token-0123456789abcdef"

// startWith starts the service with cfg, on a listener of its own, serving TLS with a new
// self-signed certificate and knowing operatorToken.
func startWith(t *testing.T, cfg statusapi.Config) *running {
	t.Helper()
	p := platformtest.New(t)
	certs := certtest.SelfSigned(t, "")
	cfg.TLSCert, cfg.TLSKey = certs.Cert, certs.Key
	cfg.OperatorTokenFile = filepath.Join(t.TempDir(), "operator-token")
	if err := os.WriteFile(cfg.OperatorTokenFile, []byte(operatorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCAddr = lis.Addr().String()
	svc, err := statusapi.NewOnListener(cfg, p.Platform, lis)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Addr().String() != lis.Addr().String() {
		t.Fatalf("Addr = %s, want %s", svc.Addr(), lis.Addr())
	}
	return &running{p: p, addr: lis.Addr().String(), certs: certs, stop: p.Run(t, "status-api", svc.Components()...)}
}

// dial connects over TLS, trusting the service's certificate, as the operator.
func (r *running) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	return r.dialAs(t, operatorToken)
}

// dialAs connects over TLS, trusting the service's certificate, sending token (none if empty).
func (r *running) dialAs(t *testing.T, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: r.certs.Pool(t), MinVersion: tls.VersionTLS12}))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(access.Bearer{Token: token}))
	}
	conn, err := grpc.NewClient(r.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

var services = []string{"", tandemv1.StatusService_ServiceDesc.ServiceName, tandemv1.AdminService_ServiceDesc.ServiceName, tandemv1.AccessService_ServiceDesc.ServiceName}

func waitServing(t *testing.T, hc healthpb.HealthClient) {
	t.Helper()
	for _, svc := range services {
		poll.Until(t, "health of "+svc+" SERVING", func() bool {
			resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		})
	}
}

func TestServesAPIHealthAndReflection(t *testing.T) {
	r := start(t, 10*time.Second)
	conn := r.dial(t)
	waitServing(t, healthpb.NewHealthClient(conn))

	// An unknown service is not reported healthy.
	_, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: "tandem.v1.NoSuchService"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("health of an unknown service: %v, want NotFound", err)
	}

	// Server reflection lists both services, so grpcurl works.
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"tandem.v1.StatusService", "tandem.v1.AdminService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}
	// Reflection also describes the services' methods, with the comments of the .proto files,
	// so that grpcurl describe explains each RPC; the health service is described too.
	comments := func(symbol string) string {
		t.Helper()
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
			t.Fatalf("file containing %s: %v, %v", symbol, resp, err)
		}
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(resp.GetFileDescriptorResponse().GetFileDescriptorProto()[0], &fd); err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, loc := range fd.GetSourceCodeInfo().GetLocation() {
			all.WriteString(loc.GetLeadingComments())
		}
		return all.String()
	}
	if c := comments("tandem.v1.AdminService"); !strings.Contains(c, "PutOrg creates or replaces an org's connection settings") {
		t.Errorf("reflection describes tandem.v1.AdminService without its comments (got %q)", c)
	}
	comments("grpc.health.v1.Health")
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}

	// Both services answer over the real transport, on the platform's store.
	admin := tandemv1.NewAdminServiceClient(conn)
	if _, err := admin.PutOrg(t.Context(), &tandemv1.PutOrgRequest{Org: &tandemv1.Org{
		OrgId: testOrg, Enabled: true, Exchange: &tandemv1.ExchangeConnection{ServiceAccount: "svc@acme.example", Password: "secret"},
	}}); err != nil {
		t.Fatalf("PutOrg: %v", err)
	}
	stored, err := r.p.Store.GetOrg(t.Context(), testOrg)
	if err != nil || stored.GetExchange().GetPassword() != "secret" {
		t.Fatalf("stored org = %v, %v", stored, err)
	}
	st, err := tandemv1.NewStatusServiceClient(conn).GetOrgStatus(t.Context(), &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
	if err != nil || st.GetStatus().GetServiceAccount() != "svc@acme.example" {
		t.Fatalf("GetOrgStatus = %v, %v", st, err)
	}
	// Connection tests are served (with the real connectors): an org with neither a service
	// account nor a Salesforce My Domain fails both checks without calling out.
	if _, err := admin.PutOrg(t.Context(), &tandemv1.PutOrgRequest{Org: &tandemv1.Org{OrgId: "00DunconfiguredEAA"}}); err != nil {
		t.Fatalf("PutOrg: %v", err)
	}
	tc, err := admin.TestConnection(t.Context(), &tandemv1.TestConnectionRequest{OrgId: "00DunconfiguredEAA", Email: "rep@acme.example"})
	if err != nil {
		t.Fatalf("TestConnection: %v", err)
	}
	if tc.GetOk() || len(tc.GetChecks()) != 2 {
		t.Fatalf("TestConnection = %v, want two failed checks", tc)
	}
	for _, c := range tc.GetChecks() {
		if c.GetResult() != tandemv1.CheckResult_CHECK_RESULT_FAILED || c.GetSuggestion() == "" {
			t.Fatalf("check %v, want failed with a suggestion", c)
		}
	}
}

func TestDeadLettersBecomeSyncErrors(t *testing.T) {
	r := start(t, 10*time.Second)
	ctx := t.Context()
	subject, err := bus.DeadSubject(testOrg)
	if err != nil {
		t.Fatal(err)
	}
	letters := []struct {
		id string
		dl *tandemv1.DeadLetter
	}{
		// Without an org there is no report to file it in: it is dropped, not retried.
		{"no-org", &tandemv1.DeadLetter{Subject: "tandem.jobs.x.salesforce", Error: &tandemv1.SyncError{Code: "SYNC_MALFORMED_MESSAGE"}}},
		{"user", &tandemv1.DeadLetter{
			Stream: bus.StreamChanges, Subject: "tandem.changes." + testOrg + "." + testUser, OrgId: testOrg, UserId: testUser,
			Deliveries: 8, Error: &tandemv1.SyncError{Code: "SYNC_MALFORMED_MESSAGE", Message: "decode TANDEM_CHANGES seq 7"},
		}},
		{"org", &tandemv1.DeadLetter{
			Stream: bus.StreamJobs, Subject: "tandem.jobs." + testOrg + ".salesforce", OrgId: testOrg,
			Deliveries: 8, Error: &tandemv1.SyncError{Code: "SALESFORCE_SERVER_ERROR", Message: "gave up after 8 deliveries"},
		}},
	}
	// Bytes that are no dead letter at all are given up on, not retried, and do not hold up
	// the letters behind them.
	if _, err := r.p.JetStream.Publish(ctx, subject, []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	for _, l := range letters {
		if err := r.p.Bus.Publish(ctx, subject, l.dl, bus.MsgID("test", l.id)); err != nil {
			t.Fatal(err)
		}
	}
	published := uint64(len(letters) + 1)

	cons, err := r.p.JetStream.Consumer(ctx, bus.StreamDead, bus.ConsumerStatusDead)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "every dead letter handled", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Stream == published && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
	entries, _, err := r.p.Store.ListErrors(ctx, testOrg, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tandemv1.SyncErrorEntry{}
	for _, e := range entries {
		got[e.GetError().GetCode()] = e
	}
	if len(entries) != 2 {
		t.Fatalf("error report has %d entries, want 2: %v", len(entries), entries)
	}
	if e := got["SYNC_MALFORMED_MESSAGE"]; e.GetUserId() != testUser || e.GetError().GetMessage() != "decode TANDEM_CHANGES seq 7" {
		t.Errorf("user's dead letter recorded as %v", e)
	}
	if e := got["SALESFORCE_SERVER_ERROR"]; e == nil || e.GetUserId() != "" {
		t.Errorf("org's dead letter recorded as %v", e)
	}
	// The report is served by the API.
	resp, err := tandemv1.NewStatusServiceClient(r.dial(t)).ListSyncErrors(ctx, &tandemv1.ListSyncErrorsRequest{OrgId: testOrg, UserId: testUser})
	if err != nil || len(resp.GetEntries()) != 1 {
		t.Fatalf("ListSyncErrors = %v, %v", resp, err)
	}
}

func TestShutdownIsGraceful(t *testing.T) {
	// Far longer than the test waits: if Run returns, GracefulStop finished, not the fallback.
	r := start(t, 5*time.Minute)
	conn := r.dial(t)
	hc := healthpb.NewHealthClient(conn)
	waitServing(t, hc)

	watchCtx, stopWatch := context.WithCancel(t.Context())
	defer stopWatch()
	watch, err := hc.Watch(watchCtx, &healthpb.HealthCheckRequest{Service: tandemv1.StatusService_ServiceDesc.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", first, err)
	}
	// An RPC in flight when shutdown starts: a reflection stream.
	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	list := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
	if err := refl.Send(list); err != nil {
		t.Fatal(err)
	}
	if _, err := refl.Recv(); err != nil {
		t.Fatal(err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()

	// Clients watching health learn that the service is going away.
	if next, err := watch.Recv(); err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch after shutdown: %v, %v; want NOT_SERVING", next, err)
	}
	stopWatch()

	// New connections are refused...
	poll.Until(t, "new connections refused", func() bool {
		fresh, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = fresh.Close() }()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(fresh).Check(ctx, &healthpb.HealthCheckRequest{})
		return status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded
	})
	// ...while the RPC in flight still completes, and shutdown waits for it.
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while an RPC was in flight", err)
	default:
	}
	if err := refl.Send(list); err != nil {
		t.Fatalf("in-flight stream after shutdown began: %v", err)
	}
	if resp, err := refl.Recv(); err != nil || len(resp.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("in-flight stream after shutdown began: %v, %v", resp, err)
	}
	if err := refl.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := refl.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v, want EOF", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return once the last RPC finished")
	}
}

// TestPutOrgChecksTheOrg: an org whose id is not its 18-character Salesforce org id, or whose
// URLs are plain http, is refused with what to enter — plain http is accepted when the service
// runs with --allow-http — and nothing is stored.
func TestPutOrgChecksTheOrg(t *testing.T) {
	plain := func(id string) *tandemv1.Org {
		return &tandemv1.Org{
			OrgId:      id,
			Exchange:   &tandemv1.ExchangeConnection{EwsUrl: "http://mail.acme.example/EWS/Exchange.asmx", ServiceAccount: "svc@acme.example", Password: "secret"},
			Salesforce: &tandemv1.SalesforceConnection{MyDomainUrl: "http://acme.my.salesforce.com"},
		}
	}
	for _, tc := range []struct {
		name      string
		allowHTTP bool
		org       *tandemv1.Org
		says      []string // in the error; none: stored
	}{
		{name: "a 15-character id", org: &tandemv1.Org{OrgId: "00D000000000062"}, says: []string{"org_id", "enter its 18-character form, 00D000000000062EAA"}},
		{name: "not an org id", org: &tandemv1.Org{OrgId: "acme"}, says: []string{"org_id", "is not a Salesforce org id", "Setup → Company Information"}},
		{name: "plain http", org: plain(testOrg), says: []string{"exchange.ews_url", "salesforce.my_domain_url", "is plain http", "--allow-http"}},
		{name: "plain http with --allow-http", allowHTTP: true, org: plain(testOrg)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startWith(t, statusapi.Config{AllowHTTP: tc.allowHTTP, GracefulStop: time.Second})
			admin := tandemv1.NewAdminServiceClient(r.dial(t))
			_, err := admin.PutOrg(t.Context(), &tandemv1.PutOrgRequest{Org: tc.org})
			stored, getErr := r.p.Store.GetOrgRedacted(t.Context(), tc.org.GetOrgId())
			if len(tc.says) == 0 {
				if err != nil || getErr != nil {
					t.Fatalf("PutOrg = %v; stored org %v, %v", err, stored, getErr)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("PutOrg = %v, want InvalidArgument", err)
			}
			for _, want := range tc.says {
				if !strings.Contains(status.Convert(err).Message(), want) {
					t.Errorf("PutOrg error %q does not say %q", status.Convert(err).Message(), want)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("PutOrg error quotes the password: %v", err)
			}
			if getErr == nil {
				t.Errorf("a refused org was stored: %v", stored)
			}
		})
	}
	// A request without an org is still the API's to refuse.
	r := startWith(t, statusapi.Config{GracefulStop: time.Second})
	_, err := tandemv1.NewAdminServiceClient(r.dial(t)).PutOrg(t.Context(), &tandemv1.PutOrgRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("PutOrg without an org = %v, want InvalidArgument", err)
	}
}

func TestTheAPIIsAuthenticatedOverTLS(t *testing.T) {
	r := start(t, 10*time.Second)
	ctx := t.Context()
	// Health needs no token: Kubernetes probes have none.
	waitServing(t, healthpb.NewHealthClient(r.dialAs(t, "")))

	// Without a token, with a wrong one, or without TLS, nothing is answered.
	if _, err := tandemv1.NewAdminServiceClient(r.dialAs(t, "")).ListOrgs(ctx, &tandemv1.ListOrgsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v, want Unauthenticated", err)
	}
	if _, err := tandemv1.NewAdminServiceClient(r.dialAs(t, "tandem_wrong")).ListOrgs(ctx, &tandemv1.ListOrgsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v, want Unauthenticated", err)
	}
	plain, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("a plaintext client: %v, want Unavailable (the server speaks TLS only)", err)
	}
	// Server reflection needs a token too.
	stream, err := reflectionpb.NewServerReflectionClient(r.dialAs(t, "")).ServerReflectionInfo(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("reflection without a token: %v, want Unauthenticated", err)
	}

	// The deployment's operator token (from its file) issues a viewer token, which works.
	created, err := tandemv1.NewAccessServiceClient(r.dial(t)).CreateToken(ctx, &tandemv1.CreateTokenRequest{
		Name: "dashboard", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{testOrg},
	})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	// (The org is not configured: the handler, reached, says so.)
	if _, err := tandemv1.NewStatusServiceClient(r.dialAs(t, created.GetSecret())).GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetOrgStatus with the viewer token: %v, want the handler's NotFound", err)
	}
}

func TestRefusesToServeWithoutTLSUnlessTold(t *testing.T) {
	p := platformtest.New(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	_, err = statusapi.NewOnListener(statusapi.Config{GRPCAddr: lis.Addr().String()}, p.Platform, lis)
	if err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("no certificate and no --plaintext: %v, want an error naming --tls-cert", err)
	}
	short := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = statusapi.NewOnListener(statusapi.Config{GRPCAddr: lis.Addr().String(), Plaintext: true, OperatorTokenFile: short}, p.Platform, lis)
	if err == nil || !strings.Contains(err.Error(), "at least") {
		t.Fatalf("a 5-character operator token: %v, want it refused", err)
	}
}

func TestClientCertificatesAuthenticateAsTheirBoundToken(t *testing.T) {
	ca := certtest.NewCA(t)
	r := startWith(t, statusapi.Config{GracefulStop: time.Second, ClientCA: ca.Cert})
	ctx := t.Context()
	if _, err := tandemv1.NewAccessServiceClient(r.dial(t)).CreateToken(ctx, &tandemv1.CreateTokenRequest{
		Name: "wallboard", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{testOrg}, ClientCertCn: "wallboard.acme.example",
	}); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	// A second token may not take the same name.
	if _, err := tandemv1.NewAccessServiceClient(r.dial(t)).CreateToken(ctx, &tandemv1.CreateTokenRequest{
		Name: "impostor", Role: tandemv1.Role_ROLE_ADMIN, OrgIds: []string{testOrg}, ClientCertCn: "wallboard.acme.example",
	}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("a second token for the same certificate name: %v, want AlreadyExists", err)
	}
	dialCert := func(cert tls.Certificate) tandemv1.StatusServiceClient {
		t.Helper()
		conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: r.certs.Pool(t), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return tandemv1.NewStatusServiceClient(conn)
	}
	// The bound certificate reaches the handler (the org is not configured: NotFound) as the viewer.
	if _, err := dialCert(ca.Client(t, "wallboard.acme.example")).GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg}); status.Code(err) != codes.NotFound {
		t.Fatalf("the bound certificate: %v, want the handler's NotFound", err)
	}
	if _, err := dialCert(ca.Client(t, "wallboard.acme.example")).GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: "00Dorg000000002EAA"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the bound certificate in another org: %v, want PermissionDenied", err)
	}
	// A name bound to no token, or a certificate of an authority the API does not trust, is refused.
	if _, err := dialCert(ca.Client(t, "someone-else")).GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("an unbound certificate: %v, want Unauthenticated", err)
	}
	other := certtest.NewCA(t)
	if _, err := dialCert(other.Client(t, "wallboard.acme.example")).GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg}); status.Code(err) != codes.Unavailable {
		t.Fatalf("a certificate of an untrusted authority: %v, want the handshake refused (Unavailable)", err)
	}
}

func TestShutdownEndsOpenWatches(t *testing.T) {
	// A graceful stop that would wait five minutes for open calls.
	r := start(t, 5*time.Minute)
	ctx := t.Context()
	admin := tandemv1.NewAdminServiceClient(r.dial(t))
	if _, err := admin.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: &tandemv1.Org{OrgId: testOrg, Enabled: true}}); err != nil {
		t.Fatalf("PutOrg: %v", err)
	}
	watch, err := tandemv1.NewStatusServiceClient(r.dial(t)).WatchOrgStatus(ctx, &tandemv1.WatchOrgStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("the watch's first status: %v", err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	if _, err := watch.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("the watch at shutdown: %v, want UNAVAILABLE", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the service did not stop within a minute with a watch open: the graceful stop waited for it")
	}
}

func TestACallersTraceContinuesIntoTheAPI(t *testing.T) {
	p := platformtest.New(t)
	exp := tracetest.NewInMemoryExporter()
	tel := telemetry.Noop()
	tel.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	p.Telemetry = tel
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	certs := certtest.SelfSigned(t, "")
	tokenFile := filepath.Join(t.TempDir(), "operator-token")
	if err := os.WriteFile(tokenFile, []byte(operatorToken), 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := statusapi.NewOnListener(statusapi.Config{GRPCAddr: lis.Addr().String(), TLSCert: certs.Cert, TLSKey: certs.Key,
		OperatorTokenFile: tokenFile, GracefulStop: time.Second}, p.Platform, lis)
	if err != nil {
		t.Fatal(err)
	}
	p.Run(t, "status-api", svc.Components()...)
	r := &running{p: p, addr: lis.Addr().String(), certs: certs}

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+traceID+"-"+parentID+"-01")
	if _, err := tandemv1.NewAdminServiceClient(r.dial(t)).ListOrgs(ctx, &tandemv1.ListOrgsRequest{}); err != nil {
		t.Fatal(err)
	}
	// The server's span ends once the answer is on its way: the client may have it first.
	var span tracetest.SpanStub
	poll.Within(t, 5*time.Second, "the span of ListOrgs", func() bool {
		for _, s := range exp.GetSpans() {
			if strings.HasSuffix(s.Name, "ListOrgs") {
				span = s
				return true
			}
		}
		return false
	})
	if got := span.SpanContext.TraceID().String(); got != traceID || span.Parent.SpanID().String() != parentID {
		t.Fatalf("the API's span is in trace %s under %s, want the caller's %s under %s", got, span.Parent.SpanID(), traceID, parentID)
	}
}
