package access

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	org      = "00Dorg000000001"
	operator = "tandem_operator-secret-for-the-guard-tests"
)

func newGuard(t *testing.T) (*Guard, *Tokens) {
	t.Helper()
	tokens := NewTokens(store.New(servertest.Redis(t), nil), nil)
	if err := tokens.Bootstrap(t.Context(), operator); err != nil {
		t.Fatal(err)
	}
	return NewGuard(tokens, DefaultPolicy(), GuardOptions{}), tokens
}

func withAuth(ctx context.Context, header string) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", header))
}

func reached(context.Context, any) (any, error) { return "reached", nil }

func TestGuardRefusesWhatItCannotPlace(t *testing.T) {
	g, _ := newGuard(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		method string
		req    any
		want   codes.Code
	}{
		{"a method without a rule", withAuth(ctx, "Bearer "+operator), "/tandem.v1.AdminService/DropEverything", &tandemv1.ListOrgsRequest{}, codes.PermissionDenied},
		{"basic auth", withAuth(ctx, "Basic dXNlcjpwYXNz"), "/tandem.v1.AdminService/ListOrgs", &tandemv1.ListOrgsRequest{}, codes.Unauthenticated},
		{"an empty bearer", withAuth(ctx, "Bearer "), "/tandem.v1.AdminService/ListOrgs", &tandemv1.ListOrgsRequest{}, codes.Unauthenticated},
		{"two headers", metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+operator, "authorization", "Bearer x")), "/tandem.v1.AdminService/ListOrgs", &tandemv1.ListOrgsRequest{}, codes.Unauthenticated},
		{"no org named", withAuth(ctx, "Bearer "+operator), "/tandem.v1.StatusService/GetOrgStatus", &tandemv1.GetOrgStatusRequest{}, codes.InvalidArgument},
		{"no configuration", withAuth(ctx, "Bearer "+operator), "/tandem.v1.AdminService/PutSyncConfiguration", &tandemv1.PutSyncConfigurationRequest{}, codes.InvalidArgument},
	} {
		if _, err := g.Unary(tc.ctx, tc.req, &grpc.UnaryServerInfo{FullMethod: tc.method}, reached); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	// Health is public: no token needed.
	if got, err := g.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}, reached); err != nil || got != "reached" {
		t.Fatalf("health: %v, %v", got, err)
	}
	// The nested org of a configuration is the one checked.
	if _, err := g.Unary(withAuth(ctx, "Bearer "+operator), &tandemv1.PutSyncConfigurationRequest{Configuration: &tandemv1.SyncConfiguration{OrgId: org}},
		&grpc.UnaryServerInfo{FullMethod: "/tandem.v1.AdminService/PutSyncConfiguration"}, reached); err != nil {
		t.Fatalf("an operator's configuration: %v", err)
	}
}

// recvStream is a server stream whose client sends msgs.
type recvStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*tandemv1.GetOrgStatusRequest
}

func (s *recvStream) Context() context.Context { return s.ctx }

func (s *recvStream) RecvMsg(m any) error {
	next := s.msgs[0]
	s.msgs = s.msgs[1:]
	m.(*tandemv1.GetOrgStatusRequest).OrgId = next.GetOrgId()
	return nil
}

func TestGuardChecksEveryMessageOfAStream(t *testing.T) {
	g, tokens := newGuard(t)
	ctx := t.Context()
	_, viewer, err := tokens.Issue(ctx, &Caller{TokenID: BootstrapTokenID, Role: tandemv1.Role_ROLE_OPERATOR},
		&tandemv1.CreateTokenRequest{Name: "v", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{org}})
	if err != nil {
		t.Fatal(err)
	}
	g.policy["/test.Watch/Org"] = Rule{Role: tandemv1.Role_ROLE_VIEWER, Org: "org_id"}
	ss := &recvStream{ctx: withAuth(ctx, "Bearer "+viewer), msgs: []*tandemv1.GetOrgStatusRequest{{OrgId: org}, {OrgId: "00Dorg000000002"}}}
	var errs []error
	err = g.Stream(nil, ss, &grpc.StreamServerInfo{FullMethod: "/test.Watch/Org"}, func(_ any, s grpc.ServerStream) error {
		if CallerFrom(s.Context()) == nil {
			t.Error("the handler's stream carries no caller")
		}
		for range 2 {
			errs = append(errs, s.RecvMsg(&tandemv1.GetOrgStatusRequest{}))
		}
		return nil
	})
	if err != nil || errs[0] != nil || status.Code(errs[1]) != codes.PermissionDenied {
		t.Fatalf("stream: %v; messages: %v; want the second (another org's) refused", err, errs)
	}
}

func TestCallerScopes(t *testing.T) {
	admin := &Caller{Role: tandemv1.Role_ROLE_ADMIN, Orgs: []string{org}}
	op := &Caller{Role: tandemv1.Role_ROLE_OPERATOR}
	var none *Caller
	switch {
	case !admin.Covers(org) || admin.Covers("00Dorg000000002") || admin.Covers(""):
		t.Error("an admin covers exactly its orgs")
	case !op.Covers("00Dorg000000002"):
		t.Error("an operator covers every org")
	case none.Covers(org) || none.AtLeast(tandemv1.Role_ROLE_VIEWER):
		t.Error("no caller covers nothing")
	case !Sees(admin, &tandemv1.ApiToken{Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{org}}):
		t.Error("an admin sees its org's viewer token")
	case Sees(admin, &tandemv1.ApiToken{Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{org, "00Dorg000000002"}}):
		t.Error("an admin sees a token that also covers another org")
	case Sees(admin, &tandemv1.ApiToken{Role: tandemv1.Role_ROLE_OPERATOR}):
		t.Error("an admin sees an operator token")
	}
	for _, s := range []string{"viewer", "Admin", "OPERATOR"} {
		if _, err := ParseRole(s); err != nil {
			t.Errorf("ParseRole(%q): %v", s, err)
		}
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("ParseRole(root) succeeded")
	}
}
