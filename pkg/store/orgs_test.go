package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tandem-sync/tandem/pkg/seal"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testPassword     = "Winter2026!-service-account"
	testClientSecret = "ews~client~secret~value"
	testPEM          = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
	testSFSecret     = "sf-consumer-secret-0123456789"
)

func orgWithSecrets(id string) *tandemv1.Org {
	return &tandemv1.Org{
		OrgId:   id,
		Name:    "Acme",
		Enabled: true,
		Exchange: &tandemv1.ExchangeConnection{
			Auth:           tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC,
			EwsUrl:         "https://mail.acme.example/EWS/Exchange.asmx",
			ServiceAccount: "svc-tandem@acme.example",
			Password:       testPassword,
			ClientSecret:   testClientSecret,
		},
		Salesforce: &tandemv1.SalesforceConnection{
			Auth:          tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER,
			MyDomainUrl:   "https://acme.my.salesforce.com",
			ClientId:      "3MVG9",
			PrivateKeyPem: testPEM,
			ClientSecret:  testSFSecret,
		},
		SyncIntervalSeconds: 120,
	}
}

func TestOrgSecretsAreSealed(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		clock := newFakeClock()
		s := newTestStore(t, rdb, WithClock(clock.Now))
		in := orgWithSecrets("00D000000000001")

		stored, err := s.PutOrg(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if stored.GetExchange().GetPassword() != "" || stored.GetSalesforce().GetPrivateKeyPem() != "" {
			t.Fatal("PutOrg returned secrets")
		}
		if !stored.UpdatedAt.AsTime().Equal(clock.Now()) {
			t.Errorf("updated_at = %v, want %v", stored.UpdatedAt.AsTime(), clock.Now())
		}
		if in.GetExchange().GetPassword() != testPassword {
			t.Fatal("PutOrg modified its argument")
		}

		// Nothing Redis holds contains a secret in the clear.
		for k, v := range snapshot(ctx, t, rdb, "*") {
			for _, secret := range []string{testPassword, testClientSecret, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", testSFSecret} {
				if strings.Contains(v, secret) {
					t.Fatalf("key %s holds a secret in the clear", k)
				}
			}
		}

		got, err := s.GetOrg(ctx, in.OrgId)
		if err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(in).(*tandemv1.Org)
		want.UpdatedAt = stored.UpdatedAt
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("GetOrg (-want +got):\n%s", diff)
		}

		redacted, err := s.GetOrgRedacted(ctx, in.OrgId)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Redact(want), redacted, protocmp.Transform()); diff != "" {
			t.Fatalf("GetOrgRedacted (-want +got):\n%s", diff)
		}
	})
}

func TestPutOrgKeepsSecretsLeftEmpty(t *testing.T) {
	s := newTestStore(t, redisServer.start(t))
	ctx := t.Context()
	id := "00D000000000001"
	if _, err := s.PutOrg(ctx, orgWithSecrets(id)); err != nil {
		t.Fatal(err)
	}

	// An admin renames the org and rotates only the password; the API sent the other
	// secrets empty because it never returns them.
	edit := Redact(orgWithSecrets(id))
	edit.Name = "Acme Corp"
	edit.Exchange.Password = "Spring2026!"
	if _, err := s.PutOrg(ctx, edit); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetOrg(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ field, got, want string }{
		{"name", got.Name, "Acme Corp"},
		{"exchange.password", got.Exchange.Password, "Spring2026!"},
		{"exchange.client_secret", got.Exchange.ClientSecret, testClientSecret},
		{"salesforce.private_key_pem", got.Salesforce.PrivateKeyPem, testPEM},
		{"salesforce.client_secret", got.Salesforce.ClientSecret, testSFSecret},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.field, tc.got, tc.want)
		}
	}
}

func TestSealedSecretIsBoundToItsOrgAndField(t *testing.T) {
	rdb := redisServer.start(t)
	s := newTestStore(t, rdb)
	ctx := t.Context()
	a, b := "00D00000000000A", "00D00000000000B"
	if _, err := s.PutOrg(ctx, orgWithSecrets(a)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutOrg(ctx, &tandemv1.Org{OrgId: b}); err != nil {
		t.Fatal(err)
	}
	sealed := rdb.HGet(ctx, orgKey(a, orgSettingsName), secretHashField("exchange.password")).Val()

	tests := []struct {
		name  string
		org   string
		field string
	}{
		{"copied to another org", b, "exchange.password"},
		{"copied to another field", a, "salesforce.client_secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.HSet(ctx, orgKey(tc.org, orgSettingsName), secretHashField(tc.field), sealed).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetOrg(ctx, tc.org); !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("GetOrg error = %v, want seal.ErrOpen", err)
			}
		})
	}
}

func TestOrgRepository(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		for _, id := range []string{"00D3", "00D1", "00D2"} {
			if _, err := s.PutOrg(ctx, orgWithSecrets(id)); err != nil {
				t.Fatal(err)
			}
		}
		// An indexed id without settings (a crash between the two writes) is skipped.
		if err := rdb.SAdd(ctx, orgIndexKey(), "00D9").Err(); err != nil {
			t.Fatal(err)
		}
		orgs, err := s.ListOrgs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range orgs {
			ids = append(ids, o.OrgId)
			if o.GetExchange().GetPassword() != "" || o.GetSalesforce().GetClientSecret() != "" {
				t.Errorf("ListOrgs returned secrets of %s", o.OrgId)
			}
		}
		if diff := cmp.Diff([]string{"00D1", "00D2", "00D3"}, ids); diff != "" {
			t.Fatalf("ListOrgs ids (-want +got):\n%s", diff)
		}

		if _, err := s.GetOrg(ctx, "00D9"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetOrg of a missing org = %v, want ErrNotFound", err)
		}
		if _, err := s.GetOrgRedacted(ctx, "00D9"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetOrgRedacted of a missing org = %v, want ErrNotFound", err)
		}
		if _, err := s.PutOrg(ctx, &tandemv1.Org{OrgId: "bad id"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutOrg with a bad id = %v, want ErrInvalid", err)
		}
		if _, err := s.PutOrg(ctx, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutOrg(nil) = %v, want ErrInvalid", err)
		}
	})
}

func TestOrgWithoutKeyring(t *testing.T) {
	rdb := redisServer.start(t)
	ctx := t.Context()
	withKeys := newTestStore(t, rdb)
	noKeys := New(rdb, nil)
	if _, err := noKeys.PutOrg(ctx, orgWithSecrets("00D1")); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("PutOrg with secrets and no keyring = %v, want ErrNoKeyring", err)
	}
	if _, err := noKeys.PutOrg(ctx, Redact(orgWithSecrets("00D1"))); err != nil {
		t.Fatalf("PutOrg without secrets and no keyring: %v", err)
	}
	if _, err := withKeys.PutOrg(ctx, orgWithSecrets("00D2")); err != nil {
		t.Fatal(err)
	}
	if _, err := noKeys.GetOrg(ctx, "00D2"); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("GetOrg of sealed secrets without keyring = %v, want ErrNoKeyring", err)
	}
	if o, err := noKeys.GetOrgRedacted(ctx, "00D2"); err != nil || o.Name != "Acme" {
		t.Fatalf("GetOrgRedacted without keyring = %v, %v", o, err)
	}
}

func TestRedact(t *testing.T) {
	in := orgWithSecrets("00D1")
	out := Redact(in)
	for _, f := range secretFields {
		if f.get(out) != "" {
			t.Errorf("Redact kept %s", f.name)
		}
		if f.get(in) == "" {
			t.Errorf("Redact cleared %s of its argument", f.name)
		}
	}
	if out.Exchange.ServiceAccount != in.Exchange.ServiceAccount || out.Salesforce.ClientId != in.Salesforce.ClientId {
		t.Error("Redact dropped settings that are not secret")
	}
	if Redact(nil) != nil {
		t.Error("Redact(nil) != nil")
	}
	if bare := Redact(&tandemv1.Org{OrgId: "x"}); bare.Exchange != nil || bare.Salesforce != nil {
		t.Error("Redact added empty connections")
	}
}

func TestValidWorkerPool(t *testing.T) {
	for _, name := range []string{"shared", "big", "a", "acme-2", "0", strings.Repeat("a", 63)} {
		if !ValidWorkerPool(name) {
			t.Errorf("ValidWorkerPool(%q) = false, want true", name)
		}
	}
	for _, name := range []string{
		"", "Big", "acme corp", "a.b", "a*", ">", "-big", "big-", "big_1", "ünï", strings.Repeat("a", 64),
	} {
		if ValidWorkerPool(name) {
			t.Errorf("ValidWorkerPool(%q) = true, want false", name)
		}
	}
}

func TestPutOrgWorkerPool(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)

		org := orgWithSecrets("00D1")
		if _, err := s.PutOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetOrgRedacted(ctx, "00D1")
		if err != nil {
			t.Fatal(err)
		}
		if got.GetWorkerPool() != "" || WorkerPool(got) != DefaultWorkerPool {
			t.Errorf("an org without a pool: worker_pool %q, WorkerPool %q; want empty and %q",
				got.GetWorkerPool(), WorkerPool(got), DefaultWorkerPool)
		}

		org.WorkerPool = "big"
		if _, err := s.PutOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		if got, err = s.GetOrgRedacted(ctx, "00D1"); err != nil || WorkerPool(got) != "big" {
			t.Fatalf("WorkerPool after setting big = %q, %v", WorkerPool(got), err)
		}

		for _, bad := range []string{"Big", "big.tenant", "tandem.>", "-x"} {
			org.WorkerPool = bad
			_, err := s.PutOrg(ctx, org)
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Violations) != 1 || verr.Violations[0].Field != "worker_pool" {
				t.Errorf("PutOrg with worker_pool %q = %v, want one violation of worker_pool", bad, err)
			}
		}
		// A refused pool leaves the stored one in place.
		if got, err = s.GetOrgRedacted(ctx, "00D1"); err != nil || WorkerPool(got) != "big" {
			t.Errorf("WorkerPool after refused puts = %q, %v; want big", WorkerPool(got), err)
		}
	})
}

// TestPutOrgWriteAs: the identity Salesforce writes act as is stored as given, and a value the
// enum does not have is refused, naming the field.
func TestPutOrgWriteAs(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		org := orgWithSecrets("00D1")
		for _, w := range []tandemv1.SalesforceWriteIdentity{
			tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP,
			tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_INTEGRATION_USER,
			tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_UNSPECIFIED,
		} {
			org.Salesforce.WriteAs = w
			if _, err := s.PutOrg(ctx, org); err != nil {
				t.Fatalf("PutOrg with write_as %v: %v", w, err)
			}
			got, err := s.GetOrg(ctx, "00D1")
			if err != nil || got.GetSalesforce().GetWriteAs() != w {
				t.Fatalf("write_as after PutOrg %v = %v, %v", w, got.GetSalesforce().GetWriteAs(), err)
			}
		}
		org.Salesforce.WriteAs = 7
		_, err := s.PutOrg(ctx, org)
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Violations) != 1 || verr.Violations[0].Field != "salesforce.write_as" {
			t.Errorf("PutOrg with write_as 7 = %v, want one violation of salesforce.write_as", err)
		}
	})
}
