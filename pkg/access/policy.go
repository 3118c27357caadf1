package access

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Rule is what a method requires of its caller.
type Rule struct {
	// Public methods need no token (the gRPC health service, for probes).
	Public bool
	// Role is the least role that may call the method.
	Role tandemv1.Role
	// Org is the path of the request field naming the org the call acts on ("org_id",
	// "configuration.org_id"); the caller must cover that org. Empty for methods that name no
	// org: they filter what they return by the caller's orgs, or are operators' only.
	Org string
	// Mutates marks methods that change something: they are rate-limited per caller.
	Mutates bool
}

// Policy maps full gRPC method names ("/tandem.v1.StatusService/GetOrgStatus") to their rules.
// A method without a rule is refused: a new RPC is unreachable until it is given one.
type Policy map[string]Rule

// DefaultPolicy is the policy of Tandem's services.
func DefaultPolicy() Policy {
	const (
		viewer   = tandemv1.Role_ROLE_VIEWER
		admin    = tandemv1.Role_ROLE_ADMIN
		operator = tandemv1.Role_ROLE_OPERATOR
	)
	status := func(m string) string { return "/" + tandemv1.StatusService_ServiceDesc.ServiceName + "/" + m }
	adm := func(m string) string { return "/" + tandemv1.AdminService_ServiceDesc.ServiceName + "/" + m }
	acc := func(m string) string { return "/" + tandemv1.AccessService_ServiceDesc.ServiceName + "/" + m }
	return Policy{
		status("GetOrgStatus"):     {Role: viewer, Org: "org_id"},
		status("GetUserStatus"):    {Role: viewer, Org: "org_id"},
		status("ListUserStatuses"): {Role: viewer, Org: "org_id"},
		status("ListSyncErrors"):   {Role: viewer, Org: "org_id"},
		status("PlanUserSync"):     {Role: viewer, Org: "org_id"},
		status("WatchOrgStatus"):   {Role: viewer, Org: "org_id"},
		status("WatchUserStatus"):  {Role: viewer, Org: "org_id"},

		adm("PutOrg"):                  {Role: operator, Mutates: true},
		adm("GetOrg"):                  {Role: admin, Org: "org_id"},
		adm("ListOrgs"):                {Role: viewer},
		adm("DeleteOrg"):               {Role: operator, Org: "org_id", Mutates: true},
		adm("GetSyncConfiguration"):    {Role: admin, Org: "org_id"},
		adm("ListHeldDeletes"):         {Role: admin, Org: "org_id"},
		adm("TestConnection"):          {Role: admin, Org: "org_id", Mutates: true},
		adm("PutSyncConfiguration"):    {Role: admin, Org: "configuration.org_id", Mutates: true},
		adm("ListSyncConfigurations"):  {Role: admin, Org: "org_id"},
		adm("DeleteSyncConfiguration"): {Role: admin, Org: "org_id", Mutates: true},
		adm("ResetUserSync"):           {Role: admin, Org: "org_id", Mutates: true},
		adm("ResumeUserSync"):          {Role: admin, Org: "org_id", Mutates: true},
		adm("ResolveHeldDeletes"):      {Role: admin, Org: "org_id", Mutates: true},

		acc("CreateToken"): {Role: admin, Mutates: true},
		acc("ListTokens"):  {Role: admin},
		acc("RevokeToken"): {Role: admin, Mutates: true},

		"/grpc.health.v1.Health/Check": {Public: true},
		"/grpc.health.v1.Health/Watch": {Public: true},
		"/grpc.health.v1.Health/List":  {Public: true},
		// Server reflection describes the API (what grpcurl needs) to any authenticated caller.
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Role: viewer},
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Role: viewer},
	}
}

// orgOf returns the string at path (dot-separated field names) in msg; "" when a field on the
// way is unset or the path does not name a string field.
func orgOf(msg proto.Message, path string) string {
	m := msg.ProtoReflect()
	names := strings.Split(path, ".")
	for i, name := range names {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return ""
		}
		if i == len(names)-1 {
			if fd.Kind() != protoreflect.StringKind || fd.IsList() {
				return ""
			}
			return m.Get(fd).String()
		}
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() || !m.Has(fd) {
			return ""
		}
		m = m.Get(fd).Message()
	}
	return ""
}
