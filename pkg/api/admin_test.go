package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	password     = "exchange-password-do-not-leak"
	clientSecret = "oauth-client-secret-do-not-leak"
	privateKey   = "-----BEGIN PRIVATE KEY-----\ndo-not-leak\n-----END PRIVATE KEY-----"
	sfSecret     = "salesforce-client-secret-do-not-leak"
)

var secrets = []string{password, clientSecret, privateKey, sfSecret}

// orgWithSecrets is an org with every secret field set.
func orgWithSecrets() *tandemv1.Org {
	return &tandemv1.Org{
		OrgId: testOrg, Name: "Acme", Enabled: true,
		Exchange: &tandemv1.ExchangeConnection{
			Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, EwsUrl: "https://mail.acme.example/EWS/Exchange.asmx",
			ServiceAccount: "svc-tandem@acme.example", Password: password, ClientSecret: clientSecret,
		},
		Salesforce: &tandemv1.SalesforceConnection{
			Auth: tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER, MyDomainUrl: "https://acme.my.salesforce.com",
			ClientId: "3MVG9connectedapp", PrivateKeyPem: privateKey, ClientSecret: sfSecret,
		},
	}
}

// wantNoSecrets fails the test if m carries any secret, in any field.
func wantNoSecrets(t *testing.T, what string, m proto.Message) {
	t.Helper()
	raw, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(raw), s) {
			t.Fatalf("%s returns a secret (%q): %v", what, s, m)
		}
	}
}

func TestPutOrgNeverReturnsSecrets(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.claimFarAhead(t)

	put, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: orgWithSecrets()})
	if err != nil {
		t.Fatalf("PutOrg: %v", err)
	}
	wantNoSecrets(t, "PutOrg", put)
	if put.GetOrg().GetExchange().GetServiceAccount() != "svc-tandem@acme.example" || put.GetOrg().GetUpdatedAt() == nil {
		t.Fatalf("PutOrg returned %v, want the stored settings", put.GetOrg())
	}
	e.wantDueNow(t)

	got, err := e.adminC.GetOrg(ctx, &tandemv1.GetOrgRequest{OrgId: testOrg})
	if err != nil {
		t.Fatalf("GetOrg: %v", err)
	}
	wantNoSecrets(t, "GetOrg", got)
	if !proto.Equal(got.GetOrg(), put.GetOrg()) {
		t.Fatalf("GetOrg = %v, want %v", got.GetOrg(), put.GetOrg())
	}
	list, err := e.adminC.ListOrgs(ctx, &tandemv1.ListOrgsRequest{})
	if err != nil {
		t.Fatalf("ListOrgs: %v", err)
	}
	wantNoSecrets(t, "ListOrgs", list)
	if len(list.GetOrgs()) != 1 || list.GetOrgs()[0].GetOrgId() != testOrg {
		t.Fatalf("ListOrgs = %v", list.GetOrgs())
	}

	// The secrets are stored, sealed, for the workers.
	stored, err := e.st.GetOrg(ctx, testOrg)
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetExchange().GetPassword() != password || stored.GetSalesforce().GetPrivateKeyPem() != privateKey {
		t.Fatalf("stored org lost its secrets: %v", stored)
	}
	raw, err := e.rdb.HGetAll(ctx, "tandem:{"+testOrg+"}:org").Result()
	if err != nil {
		t.Fatal(err)
	}
	for field, v := range raw {
		for _, s := range secrets {
			if strings.Contains(v, s) {
				t.Fatalf("Redis field %s holds secret %q in the clear", field, s)
			}
		}
	}

	// An edit without secrets (the API never returns them) keeps the stored ones.
	edit := put.GetOrg()
	edit.Name = "Acme Corp"
	if _, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: edit}); err != nil {
		t.Fatalf("PutOrg without secrets: %v", err)
	}
	stored, err = e.st.GetOrg(ctx, testOrg)
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetName() != "Acme Corp" || stored.GetExchange().GetPassword() != password || stored.GetSalesforce().GetClientSecret() != sfSecret {
		t.Fatalf("after an edit without secrets: %v", stored)
	}
}

// TestPutOrgWorkerPool: an org's worker pool is stored as given, and a name that is not a DNS
// label is refused with a message naming the field, before anything is stored.
func TestPutOrgWorkerPool(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	org := orgWithSecrets()
	org.WorkerPool = "big"
	put, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: org})
	if err != nil {
		t.Fatalf("PutOrg with pool big: %v", err)
	}
	if put.GetOrg().GetWorkerPool() != "big" {
		t.Errorf("PutOrg returned worker_pool %q, want big", put.GetOrg().GetWorkerPool())
	}
	for _, bad := range []string{"Big", "big.tenant", "big*", "-big"} {
		org.WorkerPool = bad
		_, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: org})
		wantCode(t, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "worker_pool") || !strings.Contains(msg, "DNS label") {
			t.Errorf("PutOrg with worker_pool %q: message %q does not name the field and its rule", bad, msg)
		}
	}
	got, err := e.adminC.GetOrg(ctx, &tandemv1.GetOrgRequest{OrgId: org.GetOrgId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetOrg().GetWorkerPool() != "big" {
		t.Errorf("after refused puts worker_pool = %q, want big", got.GetOrg().GetWorkerPool())
	}
}

// TestPutOrgWriteAs: whom Salesforce writes act as round-trips through PutOrg and GetOrg, and a
// value the enum lacks is refused with a message naming the field.
func TestPutOrgWriteAs(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	org := orgWithSecrets()
	org.Salesforce.WriteAs = tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP
	put, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: org})
	if err != nil {
		t.Fatalf("PutOrg with write_as REP: %v", err)
	}
	if got := put.GetOrg().GetSalesforce().GetWriteAs(); got != tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP {
		t.Errorf("PutOrg returned write_as %v, want REP", got)
	}
	org.Salesforce.WriteAs = 9
	_, err = e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: org})
	wantCode(t, err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "salesforce.write_as") {
		t.Errorf("PutOrg with write_as 9: message %q does not name the field", msg)
	}
	got, err := e.adminC.GetOrg(ctx, &tandemv1.GetOrgRequest{OrgId: org.GetOrgId()})
	if err != nil {
		t.Fatal(err)
	}
	if w := got.GetOrg().GetSalesforce().GetWriteAs(); w != tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP {
		t.Errorf("GetOrg after a refused put: write_as %v, want REP", w)
	}
}

func TestOrgErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	noKey := newEnv(t, envOptions{noKeyring: true, rdb: e.rdb})
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"PutOrg without org", func() error {
			_, err := e.adminC.PutOrg(t.Context(), &tandemv1.PutOrgRequest{})
			return err
		}, codes.InvalidArgument},
		{"PutOrg with an invalid id", func() error {
			_, err := e.adminC.PutOrg(t.Context(), &tandemv1.PutOrgRequest{Org: &tandemv1.Org{OrgId: "acme.example"}})
			return err
		}, codes.InvalidArgument},
		{"PutOrg with secrets without a seal key", func() error {
			_, err := noKey.adminC.PutOrg(t.Context(), &tandemv1.PutOrgRequest{Org: orgWithSecrets()})
			return err
		}, codes.FailedPrecondition},
		{"GetOrg without id", func() error {
			_, err := e.adminC.GetOrg(t.Context(), &tandemv1.GetOrgRequest{})
			return err
		}, codes.InvalidArgument},
		{"GetOrg with an invalid id", func() error {
			_, err := e.adminC.GetOrg(t.Context(), &tandemv1.GetOrgRequest{OrgId: "a.b"})
			return err
		}, codes.InvalidArgument},
		{"GetOrg of an unknown org", func() error {
			_, err := e.adminC.GetOrg(t.Context(), &tandemv1.GetOrgRequest{OrgId: "00Dunknown"})
			return err
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.want) })
	}

	// Without a seal key, settings without secrets can still be stored and read.
	org := orgWithSecrets()
	org.Exchange.Password, org.Exchange.ClientSecret, org.Salesforce.PrivateKeyPem, org.Salesforce.ClientSecret = "", "", "", ""
	if _, err := noKey.adminC.PutOrg(t.Context(), &tandemv1.PutOrgRequest{Org: org}); err != nil {
		t.Fatalf("PutOrg without secrets and without a seal key: %v", err)
	}
	if _, err := noKey.adminC.GetOrg(t.Context(), &tandemv1.GetOrgRequest{OrgId: testOrg}); err != nil {
		t.Fatalf("GetOrg without a seal key: %v", err)
	}
}

func TestTestConnection(t *testing.T) {
	const email = "Rep1@Acme.example"
	oauth := func() *tandemv1.Org {
		o := orgWithSecrets()
		o.Exchange.Auth = tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS
		o.Exchange.ClientId = "11111111-2222-3333-4444-555555555555"
		o.Exchange.ServiceAccount = ""
		return o
	}
	noAccount := func() *tandemv1.Org {
		o := orgWithSecrets()
		o.Exchange.ServiceAccount = ""
		return o
	}
	noMyDomain := func() *tandemv1.Org {
		o := orgWithSecrets()
		o.Salesforce.MyDomainUrl = ""
		return o
	}
	for _, tc := range []struct {
		name    string
		org     *tandemv1.Org
		checker *fakeChecker
		email   string
		// want lists each check's result in order; suggestions are compared with the catalogue.
		want           []tandemv1.CheckResult
		wantCodes      []syncerr.Code // per check; "" for a passed one
		wantDetail     []string       // per check, a substring of the detail
		exchangeCalls  int
		wantUserID     string
		salesforceCall int
	}{
		{
			name: "everything passes", org: orgWithSecrets(), email: email,
			checker:        &fakeChecker{folders: exchange.Folders{ServerVersion: "15.2.1748.10 V2017_07_11"}},
			want:           []tandemv1.CheckResult{tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED},
			wantCodes:      []syncerr.Code{"", "", ""},
			wantDetail:     []string{"svc-tandem@acme.example", "15.2.1748.10", "https://acme.my.salesforce.com"},
			exchangeCalls:  1,
			wantUserID:     user1,
			salesforceCall: 1,
		},
		{
			name: "a rep not in the directory is still tested", org: orgWithSecrets(), email: "someone@acme.example",
			want:           []tandemv1.CheckResult{tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED},
			wantCodes:      []syncerr.Code{"", "", ""},
			wantDetail:     []string{"", "someone@acme.example", ""},
			exchangeCalls:  1,
			salesforceCall: 1,
		},
		{
			name: "OAuth app is the service account", org: oauth(), email: email,
			want:           []tandemv1.CheckResult{tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED},
			wantCodes:      []syncerr.Code{"", "", ""},
			wantDetail:     []string{"11111111-2222-3333-4444-555555555555", "", ""},
			exchangeCalls:  1,
			wantUserID:     user1,
			salesforceCall: 1,
		},
		{
			name: "impersonation denied", org: orgWithSecrets(), email: email,
			checker:        &fakeChecker{exchangeErr: syncerr.New(syncerr.ExchangeImpersonationDenied, "ErrorImpersonateUserDenied")},
			want:           []tandemv1.CheckResult{tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_FAILED, tandemv1.CheckResult_CHECK_RESULT_PASSED},
			wantCodes:      []syncerr.Code{"", syncerr.ExchangeImpersonationDenied, ""},
			exchangeCalls:  1,
			wantUserID:     user1,
			salesforceCall: 1,
		},
		{
			name: "no service account: Exchange is not tried", org: noAccount(), email: email,
			want:           []tandemv1.CheckResult{tandemv1.CheckResult_CHECK_RESULT_FAILED, tandemv1.CheckResult_CHECK_RESULT_PASSED},
			wantCodes:      []syncerr.Code{syncerr.ExchangeConfigurationMissing, ""},
			salesforceCall: 1,
		},
		{
			name: "no My Domain: Salesforce is not tried", org: noMyDomain(), email: email,
			want:          []tandemv1.CheckResult{tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_FAILED},
			wantCodes:     []syncerr.Code{"", "", syncerr.SalesforceConfigMissing},
			exchangeCalls: 1,
			wantUserID:    user1,
		},
		{
			name: "Salesforce refuses the connected app", org: orgWithSecrets(), email: email,
			checker:        &fakeChecker{salesforceErr: syncerr.New(syncerr.SalesforceAuthFailed, "invalid_grant")},
			want:           []tandemv1.CheckResult{tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_PASSED, tandemv1.CheckResult_CHECK_RESULT_FAILED},
			wantCodes:      []syncerr.Code{"", "", syncerr.SalesforceAuthFailed},
			exchangeCalls:  1,
			wantUserID:     user1,
			salesforceCall: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checker := tc.checker
			if checker == nil {
				checker = &fakeChecker{}
			}
			e := newEnv(t, envOptions{checker: checker})
			e.putUsers(t, activeUser(user1, "rep1@acme.example"))
			if _, err := e.st.PutOrg(t.Context(), tc.org); err != nil {
				t.Fatal(err)
			}
			resp, err := e.adminC.TestConnection(t.Context(), &tandemv1.TestConnectionRequest{OrgId: testOrg, Email: tc.email})
			if err != nil {
				t.Fatalf("TestConnection: %v", err)
			}
			wantNoSecrets(t, "TestConnection", resp)
			if len(resp.GetChecks()) != len(tc.want) {
				t.Fatalf("checks = %v, want %d", resp.GetChecks(), len(tc.want))
			}
			ok := true
			for i, c := range resp.GetChecks() {
				if c.GetName() == "" {
					t.Errorf("check %d has no name", i)
				}
				if c.GetResult() != tc.want[i] {
					t.Errorf("check %d (%s) = %s, want %s", i, c.GetName(), c.GetResult(), tc.want[i])
				}
				if code := tc.wantCodes[i]; code != "" {
					ok = false
					entry, _ := syncerr.Lookup(code)
					if c.GetSuggestion() == "" || c.GetSuggestion() != entry.Suggestion {
						t.Errorf("check %d suggestion = %q, want the catalogue's for %s: %q", i, c.GetSuggestion(), code, entry.Suggestion)
					}
				} else if c.GetSuggestion() != "" {
					t.Errorf("passed check %d has a suggestion %q", i, c.GetSuggestion())
				}
				if i < len(tc.wantDetail) && !strings.Contains(c.GetDetail(), tc.wantDetail[i]) {
					t.Errorf("check %d detail = %q, want it to contain %q", i, c.GetDetail(), tc.wantDetail[i])
				}
			}
			if resp.GetOk() != ok {
				t.Errorf("ok = %v, want %v", resp.GetOk(), ok)
			}
			if len(checker.exchangeCalls) != tc.exchangeCalls {
				t.Fatalf("Exchange checked %d times, want %d", len(checker.exchangeCalls), tc.exchangeCalls)
			}
			if tc.exchangeCalls > 0 {
				mb := checker.exchangeCalls[0]
				if mb.OrgID != testOrg || mb.Address != tc.email || mb.UserID != tc.wantUserID {
					t.Errorf("Exchange checked mailbox %+v, want org %s, address %s, user %q", mb, testOrg, tc.email, tc.wantUserID)
				}
				// The checker connects as a sync would, so it gets the org's opened secrets.
				if got := checker.exchangeOrgs[0].GetExchange().GetPassword(); got != password {
					t.Errorf("checker got password %q, want the stored one", got)
				}
			}
			if checker.salesforceCalls != tc.salesforceCall {
				t.Errorf("Salesforce checked %d times, want %d", checker.salesforceCalls, tc.salesforceCall)
			}
		})
	}
}

func TestTestConnectionErrors(t *testing.T) {
	e := newEnv(t, envOptions{checker: &fakeChecker{}})
	if _, err := e.st.PutOrg(t.Context(), orgWithSecrets()); err != nil {
		t.Fatal(err)
	}
	// A server whose keyring cannot open the stored secrets (a wrong seal key).
	wrongKey := newEnv(t, envOptions{checker: &fakeChecker{}, rdb: e.rdb})
	// A server without a checker.
	unchecked := newEnv(t, envOptions{rdb: e.rdb})
	for _, tc := range []struct {
		name string
		env  *env
		req  *tandemv1.TestConnectionRequest
		want codes.Code
	}{
		{"no org id", e, &tandemv1.TestConnectionRequest{Email: "rep@acme.example"}, codes.InvalidArgument},
		{"no email", e, &tandemv1.TestConnectionRequest{OrgId: testOrg}, codes.InvalidArgument},
		{"invalid org id", e, &tandemv1.TestConnectionRequest{OrgId: "a b", Email: "rep@acme.example"}, codes.InvalidArgument},
		{"unknown org", e, &tandemv1.TestConnectionRequest{OrgId: "00Dunknown", Email: "rep@acme.example"}, codes.NotFound},
		{"wrong seal key", wrongKey, &tandemv1.TestConnectionRequest{OrgId: testOrg, Email: "rep@acme.example"}, codes.FailedPrecondition},
		{"no checker", unchecked, &tandemv1.TestConnectionRequest{OrgId: testOrg, Email: "rep@acme.example"}, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.env.adminC.TestConnection(t.Context(), tc.req)
			wantCode(t, err, tc.want)
		})
	}
}

func TestSyncConfigurations(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.claimFarAhead(t)

	put, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: contactsBothWays(user1, user2)})
	if err != nil {
		t.Fatalf("PutSyncConfiguration: %v", err)
	}
	cfg := put.GetConfiguration()
	if cfg.GetId() == "" || cfg.GetUpdatedAt() == nil || cfg.GetName() != "reps" {
		t.Fatalf("PutSyncConfiguration returned %v, want an id and an update time", cfg)
	}
	e.wantDueNow(t)

	// A second configuration that takes user2: a user stays in the one it was added to last.
	second, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: &tandemv1.SyncConfiguration{
		OrgId: testOrg, Name: "managers", Active: true, UserIds: []string{user2},
		Events: &tandemv1.EventSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_SALESFORCE_TO_EXCHANGE},
	}})
	if err != nil {
		t.Fatalf("PutSyncConfiguration: %v", err)
	}
	list, err := e.adminC.ListSyncConfigurations(ctx, &tandemv1.ListSyncConfigurationsRequest{OrgId: testOrg})
	if err != nil {
		t.Fatalf("ListSyncConfigurations: %v", err)
	}
	var names []string
	for _, c := range list.GetConfigurations() {
		names = append(names, c.GetName())
	}
	if strings.Join(names, ",") != "managers,reps" {
		t.Fatalf("configurations %v, want managers and reps by name", names)
	}
	if got := list.GetConfigurations()[1].GetUserIds(); len(got) != 1 || got[0] != user1 {
		t.Fatalf("reps users = %v, want only %s after user2 moved to managers", got, user1)
	}

	// Replace by id.
	cfg.Active = false
	if _, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: cfg}); err != nil {
		t.Fatalf("replace: %v", err)
	}
	stored, err := e.st.GetConfiguration(ctx, testOrg, cfg.GetId())
	if err != nil || stored.GetActive() {
		t.Fatalf("replaced configuration = %v, %v; want inactive", stored, err)
	}

	e.claimFarAhead(t)
	if _, err := e.adminC.DeleteSyncConfiguration(ctx, &tandemv1.DeleteSyncConfigurationRequest{OrgId: testOrg, Id: second.GetConfiguration().GetId()}); err != nil {
		t.Fatalf("DeleteSyncConfiguration: %v", err)
	}
	e.wantDueNow(t)
	list, err = e.adminC.ListSyncConfigurations(ctx, &tandemv1.ListSyncConfigurationsRequest{OrgId: testOrg})
	if err != nil || len(list.GetConfigurations()) != 1 || list.GetConfigurations()[0].GetId() != cfg.GetId() {
		t.Fatalf("after delete: %v, %v", list.GetConfigurations(), err)
	}

	e.claimFarAhead(t)
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"put without configuration", func() error {
			_, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{})
			return err
		}, codes.InvalidArgument},
		{"put without a name", func() error {
			c := contactsBothWays(user1)
			c.Name = " "
			_, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: c})
			return err
		}, codes.InvalidArgument},
		{"put with an invalid filter", func() error {
			c := contactsBothWays(user1)
			c.Name = "filtered"
			c.Contacts.Filters = []*tandemv1.FieldFilter{{Field: "MailingState; DROP", Operator: tandemv1.FilterOperator_FILTER_OPERATOR_EQUALS, Values: []string{"CA"}}}
			_, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: c})
			return err
		}, codes.InvalidArgument},
		{"put with a duplicate name", func() error {
			_, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: contactsBothWays(user3)})
			return err
		}, codes.InvalidArgument},
		{"put into an invalid org", func() error {
			c := contactsBothWays(user1)
			c.OrgId = "a.b"
			_, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: c})
			return err
		}, codes.InvalidArgument},
		{"list without org", func() error {
			_, err := e.adminC.ListSyncConfigurations(ctx, &tandemv1.ListSyncConfigurationsRequest{})
			return err
		}, codes.InvalidArgument},
		{"delete without id", func() error {
			_, err := e.adminC.DeleteSyncConfiguration(ctx, &tandemv1.DeleteSyncConfigurationRequest{OrgId: testOrg})
			return err
		}, codes.InvalidArgument},
		{"delete twice", func() error {
			_, err := e.adminC.DeleteSyncConfiguration(ctx, &tandemv1.DeleteSyncConfigurationRequest{OrgId: testOrg, Id: second.GetConfiguration().GetId()})
			return err
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(), tc.want)
			e.wantNotDue(t)
		})
	}
}

func TestResetUserSync(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.putUsers(t, activeUser(user1, "rep1@acme.example"))
	e.claimFarAhead(t)

	resp, err := e.adminC.ResetUserSync(ctx, &tandemv1.ResetUserSyncRequest{OrgId: testOrg, UserId: user1})
	if err != nil {
		t.Fatalf("ResetUserSync: %v", err)
	}
	if resp.GetResetStatus() != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
		t.Fatalf("reset status = %s", resp.GetResetStatus())
	}
	uk := store.UserKey{OrgID: testOrg, UserID: user1}
	if rs, err := e.st.ResetStatus(ctx, uk); err != nil || rs != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
		t.Fatalf("stored reset status = %s, %v; want MARKED_FOR_RESET", rs, err)
	}
	e.wantDueNow(t)
	us, err := e.statusC.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: testOrg, UserId: user1})
	if err != nil || us.GetStatus().GetResetStatus() != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
		t.Fatalf("user status after reset = %v, %v", us.GetStatus(), err)
	}
	// A reset ends a suspension too, like ResumeUserSync.
	if us.GetStatus().GetResumedAt() == nil {
		t.Fatalf("user status after reset = %v, want resumed_at set", us.GetStatus())
	}

	// Marking a user whose reset is in progress reports the new mark.
	if began, err := e.st.BeginReset(ctx, uk); err != nil || !began {
		t.Fatalf("BeginReset: %v, %v", began, err)
	}
	if resp, err := e.adminC.ResetUserSync(ctx, &tandemv1.ResetUserSyncRequest{OrgId: testOrg, UserId: user1}); err != nil ||
		resp.GetResetStatus() != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
		t.Fatalf("ResetUserSync during a reset = %v, %v", resp, err)
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.ResetUserSyncRequest
		want codes.Code
	}{
		{"no user id", &tandemv1.ResetUserSyncRequest{OrgId: testOrg}, codes.InvalidArgument},
		{"no org id", &tandemv1.ResetUserSyncRequest{UserId: user1}, codes.InvalidArgument},
		{"invalid org id", &tandemv1.ResetUserSyncRequest{OrgId: "a:b", UserId: user1}, codes.InvalidArgument},
		{"unknown user", &tandemv1.ResetUserSyncRequest{OrgId: testOrg, UserId: user2}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.adminC.ResetUserSync(ctx, tc.req)
			wantCode(t, err, tc.want)
			if rs, _ := e.st.ResetStatus(ctx, store.UserKey{OrgID: testOrg, UserID: user2}); rs != tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
				t.Fatalf("a failed reset marked %s: %s", user2, rs)
			}
		})
	}
}

// putHold raises a mass-delete hold in the user's ledger as the engine would, under the user's
// reconcile lease.
func (e *env) putHold(t *testing.T, uk store.UserKey, kind tandemv1.RecordKind, holdID string) {
	t.Helper()
	led := ledger.New(e.st)
	err := e.st.WithLease(t.Context(), uk, engine.LeaseRole, time.Minute, func(ctx context.Context, lease *store.Lease) error {
		snap, err := led.Load(ctx, uk, kind)
		if err != nil {
			return err
		}
		w := snap.NewWrites()
		w.PutHold(&tandemv1.Hold{Summary: &tandemv1.HeldDeletes{
			HoldId: holdID, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: kind, Count: 8, Synced: 10, ThresholdPercent: 50,
		}, Cycle: 3})
		return led.Commit(ctx, lease, w)
	})
	if err != nil {
		t.Fatalf("raise hold: %v", err)
	}
}

func TestResolveHeldDeletes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	uk := store.UserKey{OrgID: testOrg, UserID: user1}
	e.putHold(t, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT, "hold-contacts")
	e.putHold(t, uk, tandemv1.RecordKind_RECORD_KIND_EVENT, "hold-events")

	for _, tc := range []struct {
		hold     string
		kind     tandemv1.RecordKind
		decision tandemv1.HeldDeletesDecision
		want     string
	}{
		{"hold-contacts", tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE, "approve"},
		{"hold-events", tandemv1.RecordKind_RECORD_KIND_EVENT, tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_REJECT, "reject"},
	} {
		t.Run(tc.hold, func(t *testing.T) {
			e.claimFarAhead(t)
			if _, err := e.adminC.ResolveHeldDeletes(ctx, &tandemv1.ResolveHeldDeletesRequest{
				OrgId: testOrg, UserId: user1, HoldId: tc.hold, Decision: tc.decision,
			}); err != nil {
				t.Fatalf("ResolveHeldDeletes: %v", err)
			}
			snap, err := ledger.New(e.st).Load(ctx, uk, tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.Decisions[tc.hold]; got != tc.want {
				t.Fatalf("decision on %s = %q, want %q", tc.hold, got, tc.want)
			}
			e.wantDueNow(t)
		})
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.ResolveHeldDeletesRequest
		want codes.Code
	}{
		{"unspecified decision", &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, UserId: user1, HoldId: "hold-contacts"}, codes.InvalidArgument},
		{"unknown decision", &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, UserId: user1, HoldId: "hold-contacts", Decision: 7}, codes.InvalidArgument},
		{"no hold id", &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, UserId: user1, Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE}, codes.InvalidArgument},
		{"no user id", &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, HoldId: "hold-contacts", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE}, codes.InvalidArgument},
		{"invalid user id", &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, UserId: "rep@acme.example", HoldId: "hold-contacts", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE}, codes.InvalidArgument},
		{"unknown hold", &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, UserId: user1, HoldId: "hold-unknown", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE}, codes.NotFound},
		{"another user's hold", &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, UserId: user2, HoldId: "hold-contacts", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_REJECT}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.adminC.ResolveHeldDeletes(ctx, tc.req)
			wantCode(t, err, tc.want)
		})
	}
	// The refused requests changed no decision.
	snap, err := ledger.New(e.st).Load(ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Decisions["hold-contacts"]; got != "approve" {
		t.Fatalf("decision after refused requests = %q, want approve", got)
	}
}

// An entry of the error report about held deletes carries the hold awaiting a decision, so the
// report tells an admin what ResolveHeldDeletes needs; once decided, it no longer does.
func TestSyncErrorsShowHeldDeletes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	uk := store.UserKey{OrgID: testOrg, UserID: user1}
	e.putHold(t, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT, "hold-contacts")
	held := syncerr.New(syncerr.SyncMassDeleteHeld, "8 of 10 synced contact records would be removed").Proto()
	if _, err := e.st.RecordError(ctx, testOrg, user1, tandemv1.RecordKind_RECORD_KIND_CONTACT, held); err != nil {
		t.Fatal(err)
	}
	list := func() *tandemv1.SyncErrorEntry {
		t.Helper()
		resp, err := e.statusC.ListSyncErrors(ctx, &tandemv1.ListSyncErrorsRequest{OrgId: testOrg})
		if err != nil || len(resp.GetEntries()) != 1 {
			t.Fatalf("ListSyncErrors = %v, %v", resp, err)
		}
		return resp.GetEntries()[0]
	}
	if h := list().GetHeldDeletes(); h.GetHoldId() != "hold-contacts" || h.GetCount() != 8 || h.GetSynced() != 10 {
		t.Fatalf("held deletes = %v", h)
	}
	if _, err := e.adminC.ResolveHeldDeletes(ctx, &tandemv1.ResolveHeldDeletesRequest{
		OrgId: testOrg, UserId: user1, HoldId: "hold-contacts", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE,
	}); err != nil {
		t.Fatal(err)
	}
	if h := list().GetHeldDeletes(); h != nil {
		t.Errorf("a decided hold is still shown: %v", h)
	}
}

// TestResumeUserSync: a suspended user (as the exchange-worker records it) shows suspended and
// counts in the org's status until an admin resumes it; then it is neither, and the org is due.
func TestResumeUserSync(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	if _, err := e.st.PutOrg(ctx, orgWithSecrets()); err != nil {
		t.Fatal(err)
	}
	e.putUsers(t, activeUser(user1, "rep1@acme.example"), activeUser(user2, "rep2@acme.example"))
	uk := store.UserKey{OrgID: testOrg, UserID: user1}
	for _, u := range []string{user1, user2} {
		if err := e.status.Put(ctx, store.UserKey{OrgID: testOrg, UserID: u}, tstatus.PartScheduler,
			&tandemv1.UserStatus{AssignedToActiveConfiguration: tandemv1.CheckResult_CHECK_RESULT_PASSED}); err != nil {
			t.Fatal(err)
		}
	}
	suspendedAt := time.Now()
	if err := e.status.Put(ctx, uk, tstatus.PartExchange, &tandemv1.UserStatus{
		Suspended: true, SuspendedAt: timestamppb.New(suspendedAt), PermanentFailures: 5, ConsecutiveFailures: 5,
		NextSyncAt: timestamppb.New(suspendedAt.Add(24 * time.Hour)),
		LastError:  &tandemv1.SyncError{Code: "EXCHANGE_IMPERSONATION_DENIED", Message: "denied"},
	}); err != nil {
		t.Fatal(err)
	}
	suspendedUsers := func() int64 {
		t.Helper()
		resp, err := e.statusC.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus().GetUsersSuspended()
	}
	us, err := e.statusC.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: testOrg, UserId: user1})
	if err != nil || !us.GetStatus().GetSuspended() || !us.GetStatus().GetSuspendedAt().AsTime().Equal(suspendedAt) ||
		us.GetStatus().GetLastError().GetCode() != "EXCHANGE_IMPERSONATION_DENIED" {
		t.Fatalf("status of the suspended user = %v, %v; want suspended with its reason", us.GetStatus(), err)
	}
	if n := suspendedUsers(); n != 1 {
		t.Fatalf("org counts %d suspended users, want 1", n)
	}

	e.claimFarAhead(t)
	resp, err := e.adminC.ResumeUserSync(ctx, &tandemv1.ResumeUserSyncRequest{OrgId: testOrg, UserId: user1})
	if err != nil {
		t.Fatalf("ResumeUserSync: %v", err)
	}
	if st := resp.GetStatus(); st.GetSuspended() || st.GetSuspendedAt() != nil || st.GetResumedAt() == nil || st.GetUserId() != user1 ||
		st.GetLastError().GetCode() != "EXCHANGE_IMPERSONATION_DENIED" {
		t.Fatalf("status after resume = %v; want not suspended, resumed_at set, the last error still shown", st)
	}
	e.wantDueNow(t)
	if n := suspendedUsers(); n != 0 {
		t.Fatalf("org counts %d suspended users after the resume, want 0", n)
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.ResumeUserSyncRequest
		want codes.Code
	}{
		{"no user id", &tandemv1.ResumeUserSyncRequest{OrgId: testOrg}, codes.InvalidArgument},
		{"no org id", &tandemv1.ResumeUserSyncRequest{UserId: user1}, codes.InvalidArgument},
		{"invalid org id", &tandemv1.ResumeUserSyncRequest{OrgId: "a:b", UserId: user1}, codes.InvalidArgument},
		{"unknown user", &tandemv1.ResumeUserSyncRequest{OrgId: testOrg, UserId: user3}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.adminC.ResumeUserSync(ctx, tc.req)
			wantCode(t, err, tc.want)
		})
	}
}
