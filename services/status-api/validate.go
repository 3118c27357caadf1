package statusapi

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// checkedAdmin is the AdminService with the rules an org must keep where it enters Tandem
// (store.OrgRules): PutOrg refuses an org whose id is not its 18-character Salesforce org id,
// or whose Exchange and Salesforce URLs are not https (unless the service runs with
// --allow-http), with one violation per field saying what to enter. The rules depend on this
// service's --allow-http, which is why they are kept here rather than by the store, whose other
// writers (`tandem dev` against the simulators, tests) need neither.
type checkedAdmin struct {
	tandemv1.AdminServiceServer
	rules store.OrgRules
}

// PutOrg checks the org, then stores it.
func (a checkedAdmin) PutOrg(ctx context.Context, req *tandemv1.PutOrgRequest) (*tandemv1.PutOrgResponse, error) {
	// A request without an org is the API's to answer, as it answers every missing field.
	if req.GetOrg() != nil {
		if err := a.rules.Check(req.GetOrg()); err != nil {
			// The same mapping as package api's for a *store.ValidationError.
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	return a.AdminServiceServer.PutOrg(ctx, req)
}
