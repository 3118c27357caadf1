package api_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestPutOrgRefusesMovingAStoredSecret: PutOrg that changes where a stored secret is sent, without
// sending the secret again, answers FAILED_PRECONDITION naming the secret and the setting, stores
// nothing and does not make the org due; sent again, the change is stored.
func TestPutOrgRefusesMovingAStoredSecret(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*tandemv1.Org)
		resend func(*tandemv1.Org)
		secret string
		field  string
	}{
		{
			name:   "EWS URL",
			edit:   func(o *tandemv1.Org) { o.Exchange.EwsUrl = "https://evil.example/EWS/Exchange.asmx" },
			resend: func(o *tandemv1.Org) { o.Exchange.Password = "new-" + password },
			secret: "exchange.password", field: "exchange.ews_url",
		},
		{
			name:   "Salesforce My Domain",
			edit:   func(o *tandemv1.Org) { o.Salesforce.MyDomainUrl = "https://evil.example" },
			resend: func(o *tandemv1.Org) { o.Salesforce.PrivateKeyPem = "new-" + privateKey },
			secret: "salesforce.private_key_pem", field: "salesforce.my_domain_url",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			ctx := t.Context()
			put, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: orgWithSecrets()})
			if err != nil {
				t.Fatalf("PutOrg: %v", err)
			}
			e.claimFarAhead(t)
			before, err := e.st.GetOrg(ctx, testOrg)
			if err != nil {
				t.Fatal(err)
			}

			edit := proto.Clone(put.GetOrg()).(*tandemv1.Org)
			tc.edit(edit)
			_, err = e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: edit})
			wantCode(t, err, codes.FailedPrecondition)
			msg := status.Convert(err).Message()
			if !strings.Contains(msg, tc.secret+" must be sent again") || !strings.Contains(msg, tc.field) {
				t.Errorf("message %q does not say that %s must be sent again because %s changed", msg, tc.secret, tc.field)
			}
			after, err := e.st.GetOrg(ctx, testOrg)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(before, after) {
				t.Fatalf("a refused PutOrg changed the org: %v, was %v", after, before)
			}
			e.wantNotDue(t)

			tc.resend(edit)
			if _, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: edit}); err != nil {
				t.Fatalf("PutOrg with %s sent again: %v", tc.secret, err)
			}
			got, err := e.st.GetOrg(ctx, testOrg)
			if err != nil {
				t.Fatal(err)
			}
			want := proto.Clone(edit).(*tandemv1.Org)
			want.Exchange.Password, want.Exchange.ClientSecret = before.Exchange.Password, before.Exchange.ClientSecret
			want.Salesforce.PrivateKeyPem, want.Salesforce.ClientSecret = before.Salesforce.PrivateKeyPem, before.Salesforce.ClientSecret
			tc.resend(want)
			want.UpdatedAt = got.UpdatedAt
			if !proto.Equal(want, got) {
				t.Fatalf("after PutOrg with %s sent again: %v, want %v", tc.secret, got, want)
			}
			e.wantDueNow(t)
		})
	}
}

// TestPutOrgRefusalShowsNoCredentials: the refusal names the URLs without their userinfo.
func TestPutOrgRefusalShowsNoCredentials(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	put, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: orgWithSecrets()})
	if err != nil {
		t.Fatalf("PutOrg: %v", err)
	}
	edit := put.GetOrg()
	edit.Exchange.EwsUrl = "https://admin:hunter2@evil.example/EWS/Exchange.asmx"
	_, err = e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: edit})
	wantCode(t, err, codes.FailedPrecondition)
	msg := status.Convert(err).Message()
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "admin") {
		t.Errorf("message %q shows the URL's userinfo", msg)
	}
	if !strings.Contains(msg, `to "https://evil.example/EWS/Exchange.asmx"`) {
		t.Errorf("message %q does not show the new URL", msg)
	}
}
