package api_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestPutSyncConfigurationValidateOnlyStoresNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	bad := contactsBothWays(user1)
	bad.Name = ""
	_, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: bad, ValidateOnly: true})
	wantCode(t, err, codes.InvalidArgument)

	good := contactsBothWays(user1)
	resp, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: good, ValidateOnly: true})
	if err != nil || resp.GetConfiguration().GetName() != good.GetName() {
		t.Fatalf("validate a good configuration: %v, %v", resp, err)
	}
	list, err := e.adminC.ListSyncConfigurations(ctx, &tandemv1.ListSyncConfigurationsRequest{OrgId: testOrg})
	if err != nil || len(list.GetConfigurations()) != 0 {
		t.Fatalf("after validating only, the org has %v (%v); want none stored", list.GetConfigurations(), err)
	}
}
