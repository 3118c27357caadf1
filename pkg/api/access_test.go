package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	otherOrg   = "00Dorg000000002"
	missingOrg = "00Dorg000000404"
)

// requests builds, for every method of the API, a request that acts on org.
var requests = map[string]func(org string) proto.Message{
	"GetOrgStatus": func(org string) proto.Message { return &tandemv1.GetOrgStatusRequest{OrgId: org} },
	"GetUserStatus": func(org string) proto.Message {
		return &tandemv1.GetUserStatusRequest{OrgId: org, Email: "rep@acme.example"}
	},
	"ListUserStatuses": func(org string) proto.Message { return &tandemv1.ListUserStatusesRequest{OrgId: org} },
	"ListSyncErrors":   func(org string) proto.Message { return &tandemv1.ListSyncErrorsRequest{OrgId: org} },
	"PlanUserSync": func(org string) proto.Message {
		return &tandemv1.PlanUserSyncRequest{OrgId: org, Email: "rep@acme.example"}
	},
	"WatchOrgStatus": func(org string) proto.Message { return &tandemv1.WatchOrgStatusRequest{OrgId: org} },
	"WatchUserStatus": func(org string) proto.Message {
		return &tandemv1.WatchUserStatusRequest{OrgId: org, Email: "rep@acme.example"}
	},

	"PutOrg": func(org string) proto.Message {
		o := orgWithSecrets()
		o.OrgId = org
		return &tandemv1.PutOrgRequest{Org: o}
	},
	"GetOrg":    func(org string) proto.Message { return &tandemv1.GetOrgRequest{OrgId: org} },
	"ListOrgs":  func(string) proto.Message { return &tandemv1.ListOrgsRequest{} },
	"DeleteOrg": func(org string) proto.Message { return &tandemv1.DeleteOrgRequest{OrgId: org} },
	"GetSyncConfiguration": func(org string) proto.Message {
		return &tandemv1.GetSyncConfigurationRequest{OrgId: org, Id: "none"}
	},
	"ListHeldDeletes": func(org string) proto.Message { return &tandemv1.ListHeldDeletesRequest{OrgId: org} },
	"TestConnection": func(org string) proto.Message {
		return &tandemv1.TestConnectionRequest{OrgId: org, Email: "rep@acme.example"}
	},
	"PutSyncConfiguration": func(org string) proto.Message {
		c := contactsBothWays(user1)
		c.OrgId = org
		return &tandemv1.PutSyncConfigurationRequest{Configuration: c}
	},
	"ListSyncConfigurations": func(org string) proto.Message { return &tandemv1.ListSyncConfigurationsRequest{OrgId: org} },
	"DeleteSyncConfiguration": func(org string) proto.Message {
		return &tandemv1.DeleteSyncConfigurationRequest{OrgId: org, Id: "none"}
	},
	"ResetUserSync":      func(org string) proto.Message { return &tandemv1.ResetUserSyncRequest{OrgId: org, UserId: user1} },
	"ResumeUserSync":     func(org string) proto.Message { return &tandemv1.ResumeUserSyncRequest{OrgId: org, UserId: user1} },
	"ResolveHeldDeletes": func(org string) proto.Message { return &tandemv1.ResolveHeldDeletesRequest{OrgId: org, UserId: user1} },

	"CreateToken": func(org string) proto.Message {
		return &tandemv1.CreateTokenRequest{Name: "dashboard", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{org}}
	},
	"ListTokens":  func(string) proto.Message { return &tandemv1.ListTokensRequest{} },
	"RevokeToken": func(string) proto.Message { return &tandemv1.RevokeTokenRequest{TokenId: "none"} },
}

// method is one RPC of the API.
type method struct {
	full   string // "/tandem.v1.StatusService/GetOrgStatus"
	name   string
	output protoreflect.MessageDescriptor
	stream bool // the server streams its answers
}

// methods lists every RPC of the API's services, from their descriptors.
func methods(t *testing.T) []method {
	t.Helper()
	var out []method
	for _, sd := range []protoreflect.ServiceDescriptor{
		tandemv1.File_tandem_v1_status_proto.Services().ByName("StatusService"),
		tandemv1.File_tandem_v1_admin_proto.Services().ByName("AdminService"),
		tandemv1.File_tandem_v1_access_proto.Services().ByName("AccessService"),
	} {
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			out = append(out, method{full: "/" + string(sd.FullName()) + "/" + string(md.Name()), name: string(md.Name()), output: md.Output(), stream: md.IsStreamingServer()})
		}
	}
	return out
}

// call calls m with req and returns its error; of a streaming method, the error of the call or
// of its first answer. A call that reaches a streaming handler is ended after a moment, as a
// client that has seen enough would: it then ends with Canceled or DeadlineExceeded.
func call(ctx context.Context, conn *grpc.ClientConn, m method, req proto.Message) error {
	if !m.stream {
		return conn.Invoke(ctx, m.full, req, dynamicpb.NewMessage(m.output))
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, m.full)
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if err := stream.RecvMsg(dynamicpb.NewMessage(m.output)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// tokenFor issues a token through the API as the operator.
func (e *env) tokenFor(t *testing.T, role tandemv1.Role, orgs ...string) (*tandemv1.ApiToken, string) {
	t.Helper()
	resp, err := e.accessC.CreateToken(t.Context(), &tandemv1.CreateTokenRequest{Name: "test " + access.RoleName(role), Role: role, OrgIds: orgs})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return resp.GetToken(), resp.GetSecret()
}

func TestEveryRPCChecksItsCaller(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	for _, org := range []string{testOrg, otherOrg} {
		o := orgWithSecrets()
		o.OrgId = org
		if _, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: o}); err != nil {
			t.Fatal(err)
		}
	}
	_, viewer := e.tokenFor(t, tandemv1.Role_ROLE_VIEWER, testOrg)
	_, admin := e.tokenFor(t, tandemv1.Role_ROLE_ADMIN, testOrg)
	_, foreign := e.tokenFor(t, tandemv1.Role_ROLE_ADMIN, otherOrg)
	expired, err := e.accessC.CreateToken(ctx, &tandemv1.CreateTokenRequest{Name: "short", Role: tandemv1.Role_ROLE_ADMIN, OrgIds: []string{testOrg}, Ttl: durationpb.New(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)

	conns := map[string]*grpc.ClientConn{
		"none": e.dial(t, ""), "wrong": e.dial(t, "tandem_not-a-token"), "expired": e.dial(t, expired.GetSecret()),
		"viewer": e.dial(t, viewer), "admin": e.dial(t, admin), "foreign": e.dial(t, foreign), "operator": e.dial(t, operatorToken),
	}
	policy := access.DefaultPolicy()
	for _, m := range methods(t) {
		build, ok := requests[m.name]
		if !ok {
			t.Errorf("%s: no request in this test's table; add one", m.full)
			continue
		}
		rule, ok := policy[m.full]
		if !ok {
			t.Errorf("%s has no access rule: every call of it is refused", m.full)
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			for _, who := range []string{"none", "wrong", "expired"} {
				if err := call(ctx, conns[who], m, build(testOrg)); status.Code(err) != codes.Unauthenticated {
					t.Errorf("%s credentials: %v, want Unauthenticated", who, err)
				}
			}
			for _, who := range []string{"viewer", "admin", "operator"} {
				err := call(ctx, conns[who], m, build(testOrg))
				allowed := map[string]tandemv1.Role{"viewer": tandemv1.Role_ROLE_VIEWER, "admin": tandemv1.Role_ROLE_ADMIN, "operator": tandemv1.Role_ROLE_OPERATOR}[who] >= rule.Role
				code := status.Code(err)
				switch {
				case allowed && (code == codes.Unauthenticated || code == codes.PermissionDenied):
					t.Errorf("%s of the org: %v, want the call to reach the handler", who, err)
				case !allowed && code != codes.PermissionDenied:
					t.Errorf("%s of the org: %v, want PermissionDenied (needs %s)", who, err, access.RoleName(rule.Role))
				}
			}
			if rule.Org == "" {
				return
			}
			// A token of another org: refused alike whether the named org exists or not.
			errExisting := call(ctx, conns["foreign"], m, build(testOrg))
			errMissing := call(ctx, conns["foreign"], m, build(missingOrg))
			for _, err := range []error{errExisting, errMissing} {
				if status.Code(err) != codes.PermissionDenied {
					t.Errorf("foreign org: %v, want PermissionDenied", err)
				}
			}
			a := strings.ReplaceAll(status.Convert(errExisting).Message(), testOrg, "ORG")
			b := strings.ReplaceAll(status.Convert(errMissing).Message(), missingOrg, "ORG")
			if a != b {
				t.Errorf("an existing foreign org is refused as %q, a missing one as %q: the answer tells them apart", a, b)
			}
		})
	}
}

func TestListsShowOnlyTheCallersOrgs(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	for _, org := range []string{testOrg, otherOrg} {
		o := orgWithSecrets()
		o.OrgId = org
		if _, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: o}); err != nil {
			t.Fatal(err)
		}
	}
	_, viewer := e.tokenFor(t, tandemv1.Role_ROLE_VIEWER, otherOrg)
	list, err := tandemv1.NewAdminServiceClient(e.dial(t, viewer)).ListOrgs(ctx, &tandemv1.ListOrgsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetOrgs()) != 1 || list.GetOrgs()[0].GetOrgId() != otherOrg {
		t.Fatalf("a viewer of %s lists %v", otherOrg, list.GetOrgs())
	}
	all, err := e.adminC.ListOrgs(ctx, &tandemv1.ListOrgsRequest{})
	if err != nil || len(all.GetOrgs()) != 2 {
		t.Fatalf("the operator lists %v, %v; want both orgs", all.GetOrgs(), err)
	}

	mine, _ := e.tokenFor(t, tandemv1.Role_ROLE_VIEWER, testOrg)
	theirs, _ := e.tokenFor(t, tandemv1.Role_ROLE_VIEWER, otherOrg)
	_, admin := e.tokenFor(t, tandemv1.Role_ROLE_ADMIN, testOrg)
	adminC := tandemv1.NewAccessServiceClient(e.dial(t, admin))
	tokens, err := adminC.ListTokens(ctx, &tandemv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tok := range tokens.GetTokens() {
		ids = append(ids, tok.GetTokenId())
		if tok.GetTokenId() == theirs.GetTokenId() || tok.GetRole() == tandemv1.Role_ROLE_OPERATOR {
			t.Errorf("an admin of %s sees token %v", testOrg, tok)
		}
	}
	if !strings.Contains(strings.Join(ids, " "), mine.GetTokenId()) {
		t.Errorf("an admin of %s does not see its org's token %s (sees %v)", testOrg, mine.GetTokenId(), ids)
	}
	// Revoking another org's token is answered as for a token that does not exist.
	_, errTheirs := adminC.RevokeToken(ctx, &tandemv1.RevokeTokenRequest{TokenId: theirs.GetTokenId()})
	_, errNone := adminC.RevokeToken(ctx, &tandemv1.RevokeTokenRequest{TokenId: "0123456789abcdef"})
	if status.Code(errTheirs) != codes.NotFound || status.Code(errNone) != codes.NotFound {
		t.Fatalf("revoke a foreign token: %v; a missing one: %v; want NotFound for both", errTheirs, errNone)
	}
}

func TestTokenRules(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	_, admin := e.tokenFor(t, tandemv1.Role_ROLE_ADMIN, testOrg)
	adminC := tandemv1.NewAccessServiceClient(e.dial(t, admin))
	for _, tc := range []struct {
		name string
		req  *tandemv1.CreateTokenRequest
		want codes.Code
	}{
		{"operator token", &tandemv1.CreateTokenRequest{Name: "x", Role: tandemv1.Role_ROLE_OPERATOR}, codes.PermissionDenied},
		{"foreign org", &tandemv1.CreateTokenRequest{Name: "x", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{otherOrg}}, codes.PermissionDenied},
		{"no name", &tandemv1.CreateTokenRequest{Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{testOrg}}, codes.InvalidArgument},
		{"no role", &tandemv1.CreateTokenRequest{Name: "x", OrgIds: []string{testOrg}}, codes.InvalidArgument},
		{"no org", &tandemv1.CreateTokenRequest{Name: "x", Role: tandemv1.Role_ROLE_VIEWER}, codes.InvalidArgument},
		{"negative ttl", &tandemv1.CreateTokenRequest{Name: "x", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{testOrg}, Ttl: durationpb.New(-time.Hour)}, codes.InvalidArgument},
		{"bad org id", &tandemv1.CreateTokenRequest{Name: "x", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{"a:b"}}, codes.InvalidArgument},
	} {
		if _, err := adminC.CreateToken(ctx, tc.req); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}

	// An admin issues a viewer token of its org; revoked, it stops working at once.
	created, err := adminC.CreateToken(ctx, &tandemv1.CreateTokenRequest{Name: "wallboard", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{testOrg}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.GetSecret(), access.SecretPrefix) || created.GetToken().GetCreatedBy() == "" {
		t.Fatalf("CreateToken = %v", created)
	}
	viewerC := tandemv1.NewStatusServiceClient(e.dial(t, created.GetSecret()))
	if _, err := viewerC.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg}); status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied {
		t.Fatalf("the new token: %v", err)
	}
	if _, err := adminC.RevokeToken(ctx, &tandemv1.RevokeTokenRequest{TokenId: created.GetToken().GetTokenId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := viewerC.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a revoked token: %v, want Unauthenticated", err)
	}

	// Redis keeps no secret: not the new token's, not the operator's.
	if dump := redisDump(t, e.rdb); strings.Contains(dump, created.GetSecret()) || strings.Contains(dump, operatorToken) {
		t.Fatal("Redis holds a token's secret")
	}
}

func TestMutationsAreRateLimitedPerCaller(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	tokens := access.NewTokens(e.st, nil)
	guard := access.NewGuard(tokens, access.DefaultPolicy(), access.GuardOptions{MutationsPerSecond: 0.001, MutationBurst: 2})
	_, admin := e.tokenFor(t, tandemv1.Role_ROLE_ADMIN, testOrg)
	caller, err := tokens.Authenticate(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/tandem.v1.AdminService/ResetUserSync"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	incoming := bearerContext(ctx, admin)
	for i := range 3 {
		_, err := guard.Unary(incoming, &tandemv1.ResetUserSyncRequest{OrgId: testOrg, UserId: user1}, info, handler)
		want := codes.OK
		if i == 2 {
			want = codes.ResourceExhausted
		}
		if status.Code(err) != want {
			t.Fatalf("call %d by %v: %v, want %s", i+1, caller, err, want)
		}
	}
	// Reads are not limited.
	info.FullMethod = "/tandem.v1.StatusService/GetOrgStatus"
	if _, err := guard.Unary(incoming, &tandemv1.GetOrgStatusRequest{OrgId: testOrg}, info, handler); err != nil {
		t.Fatalf("a read after the limit: %v", err)
	}
}

// redisDump renders every key in Redis with its content, for secret checks.
func redisDump(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	return fmt.Sprint(servertest.Snapshot(t.Context(), t, rdb, "*"))
}

// bearerContext is ctx as a server sees a call that sent token.
func bearerContext(ctx context.Context, token string) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
}
