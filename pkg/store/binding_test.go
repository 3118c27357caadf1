package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// exchangeOAuth makes org's Exchange connection an OAuth app's, its secrets kept.
func exchangeOAuth(o *tandemv1.Org) {
	o.Exchange.Auth = tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS
	o.Exchange.TenantId = "7c1f0a52-0000-4000-8000-00000000a1b2"
	o.Exchange.ClientId = "0f6f3c1e-0000-4000-8000-00000000c3d4"
	o.Exchange.TokenUrl = "https://login.microsoftonline.com/7c1f0a52-0000-4000-8000-00000000a1b2/oauth2/v2.0/token"
}

// autodiscoverByDomain makes org find EWS with Autodiscover at each mailbox's domain.
func autodiscoverByDomain(o *tandemv1.Org) {
	o.Exchange.EwsUrl = ""
	o.Exchange.AdditionalDomains = []string{"sales.acme.example"}
}

func salesforceIntegrationUser(o *tandemv1.Org) {
	o.Salesforce.IntegrationUsername = "integration@acme.example"
}

func salesforceClientCredentials(o *tandemv1.Org) {
	o.Salesforce.Auth = tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS
}

// resent sets each named secret of o to a new value, as an admin sending it again would.
func resent(o *tandemv1.Org, names []string) map[string]string {
	want := map[string]string{}
	for _, f := range secretFields {
		if slices.Contains(names, f.name) {
			f.set(o, "again:"+f.name)
			want[f.name] = "again:" + f.name
		}
	}
	return want
}

// TestPutOrgRefusesMovingAStoredSecret: every setting that decides where, or as whom, a stored
// secret is sent, changed without the secret, is refused with ErrSecretNotBound naming the
// secret and the setting, and nothing is stored; the same change with the secret sent again is
// stored.
func TestPutOrgRefusesMovingAStoredSecret(t *testing.T) {
	tests := []struct {
		name string
		// base adjusts orgWithSecrets (Basic Exchange, JWT bearer Salesforce, all four secrets
		// stored) before it is first stored.
		base func(*tandemv1.Org)
		edit func(*tandemv1.Org)
		// secrets must be sent again; field is named in the refusal.
		secrets []string
		field   string
	}{
		{"ews_url changed", nil, func(o *tandemv1.Org) { o.Exchange.EwsUrl = "https://evil.example/EWS/Exchange.asmx" },
			[]string{"exchange.password"}, "exchange.ews_url"},
		{"ews_url cleared for Autodiscover", nil, func(o *tandemv1.Org) { o.Exchange.EwsUrl = "" },
			[]string{"exchange.password"}, "exchange.ews_url"},
		{"autodiscover_url set", nil, func(o *tandemv1.Org) {
			o.Exchange.AutodiscoverUrl = "https://evil.example/autodiscover/autodiscover.svc"
		}, []string{"exchange.password"}, "exchange.autodiscover_url"},
		{"autodiscover_url changed", autodiscoverByDomain, func(o *tandemv1.Org) {
			o.Exchange.AutodiscoverUrl = "https://evil.example/autodiscover/autodiscover.svc"
		}, []string{"exchange.password"}, "exchange.autodiscover_url"},
		{"service_account changed", nil, func(o *tandemv1.Org) { o.Exchange.ServiceAccount = "svc@evil.example" },
			[]string{"exchange.password"}, "exchange.service_account"},
		{"TLS verification turned off (Basic)", nil, func(o *tandemv1.Org) { o.Exchange.InsecureSkipVerify = true },
			[]string{"exchange.password"}, "exchange.insecure_skip_verify"},
		{"additional domain added, Autodiscover by domain", autodiscoverByDomain, func(o *tandemv1.Org) {
			o.Exchange.AdditionalDomains = append(o.Exchange.AdditionalDomains, "evil.example")
		}, []string{"exchange.password"}, "exchange.additional_domains"},
		{"Exchange auth OAuth to Basic with the stored password", exchangeOAuth, func(o *tandemv1.Org) {
			o.Exchange.Auth = tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC
		}, []string{"exchange.password"}, "exchange.auth"},

		{"token_url changed", exchangeOAuth, func(o *tandemv1.Org) { o.Exchange.TokenUrl = "https://evil.example/token" },
			[]string{"exchange.client_secret"}, "exchange.token_url"},
		{"token_url cleared", exchangeOAuth, func(o *tandemv1.Org) { o.Exchange.TokenUrl = "" },
			[]string{"exchange.client_secret"}, "exchange.token_url"},
		{"tenant_id changed", exchangeOAuth, func(o *tandemv1.Org) { o.Exchange.TenantId = "evil.onmicrosoft.com" },
			[]string{"exchange.client_secret"}, "exchange.tenant_id"},
		{"Exchange client_id changed", exchangeOAuth, func(o *tandemv1.Org) { o.Exchange.ClientId = "another-app" },
			[]string{"exchange.client_secret"}, "exchange.client_id"},
		{"ews_url changed (OAuth)", exchangeOAuth, func(o *tandemv1.Org) { o.Exchange.EwsUrl = "https://evil.example/EWS/Exchange.asmx" },
			[]string{"exchange.client_secret"}, "exchange.ews_url"},
		{"autodiscover_url set (OAuth)", exchangeOAuth, func(o *tandemv1.Org) {
			o.Exchange.AutodiscoverUrl = "https://evil.example/autodiscover/autodiscover.svc"
		}, []string{"exchange.client_secret"}, "exchange.autodiscover_url"},
		{"TLS verification turned off (OAuth)", exchangeOAuth, func(o *tandemv1.Org) { o.Exchange.InsecureSkipVerify = true },
			[]string{"exchange.client_secret"}, "exchange.insecure_skip_verify"},
		{"Exchange auth Basic to OAuth with the stored client secret", nil, func(o *tandemv1.Org) {
			exchangeOAuth(o)
		}, []string{"exchange.client_secret"}, "exchange.auth"},

		{"my_domain_url changed (JWT)", nil, func(o *tandemv1.Org) { o.Salesforce.MyDomainUrl = "https://evil.example" },
			[]string{"salesforce.private_key_pem"}, "salesforce.my_domain_url"},
		{"Salesforce client_id changed (JWT)", nil, func(o *tandemv1.Org) { o.Salesforce.ClientId = "3MVG9other" },
			[]string{"salesforce.private_key_pem"}, "salesforce.client_id"},
		{"integration_username changed", salesforceIntegrationUser, func(o *tandemv1.Org) {
			o.Salesforce.IntegrationUsername = "admin@acme.example"
		}, []string{"salesforce.private_key_pem"}, "salesforce.integration_username"},
		{"audience changed", nil, func(o *tandemv1.Org) { o.Salesforce.Audience = "https://test.salesforce.com" },
			[]string{"salesforce.private_key_pem"}, "salesforce.audience"},
		{"Salesforce auth JWT to client credentials with the stored secret", nil, salesforceClientCredentials,
			[]string{"salesforce.client_secret"}, "salesforce.auth"},
		{"Salesforce auth cleared, flow picked from the stored secrets", nil, func(o *tandemv1.Org) {
			o.Salesforce.Auth = tandemv1.SalesforceAuth_SALESFORCE_AUTH_UNSPECIFIED
		}, []string{"salesforce.private_key_pem", "salesforce.client_secret"}, "salesforce.auth"},

		{"my_domain_url changed (client credentials)", salesforceClientCredentials, func(o *tandemv1.Org) {
			o.Salesforce.MyDomainUrl = "https://evil.example"
		}, []string{"salesforce.client_secret"}, "salesforce.my_domain_url"},
		{"Salesforce client_id changed (client credentials)", salesforceClientCredentials, func(o *tandemv1.Org) {
			o.Salesforce.ClientId = "3MVG9other"
		}, []string{"salesforce.client_secret"}, "salesforce.client_id"},
		{"Salesforce auth client credentials to JWT with the stored key", salesforceClientCredentials, func(o *tandemv1.Org) {
			o.Salesforce.Auth = tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER
		}, []string{"salesforce.private_key_pem"}, "salesforce.auth"},
	}
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		s := newTestStore(t, rdb)
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := t.Context()
				id := fmt.Sprintf("00D%03d", i)
				base := orgWithSecrets(id)
				if tc.base != nil {
					tc.base(base)
				}
				if _, err := s.PutOrg(ctx, base); err != nil {
					t.Fatal(err)
				}
				before := snapshot(ctx, t, rdb, "*")
				storedBefore, err := s.GetOrg(ctx, id)
				if err != nil {
					t.Fatal(err)
				}

				edit := Redact(base)
				tc.edit(edit)
				_, err = s.PutOrg(ctx, edit)
				if !errors.Is(err, ErrSecretNotBound) {
					t.Fatalf("PutOrg = %v, want ErrSecretNotBound", err)
				}
				for _, name := range append([]string{tc.field}, tc.secrets...) {
					if !strings.Contains(err.Error(), name) {
						t.Errorf("refusal %q does not name %s", err, name)
					}
				}
				if diff := cmp.Diff(before, snapshot(ctx, t, rdb, "*")); diff != "" {
					t.Fatalf("a refused PutOrg changed Redis (-before +after):\n%s", diff)
				}
				got, err := s.GetOrg(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(storedBefore, got, protocmp.Transform()); diff != "" {
					t.Fatalf("a refused PutOrg changed the org (-before +after):\n%s", diff)
				}

				// Sent again, each secret binds itself to the new settings.
				again := proto.Clone(edit).(*tandemv1.Org)
				wantSecrets := resent(again, tc.secrets)
				if _, err := s.PutOrg(ctx, again); err != nil {
					t.Fatalf("PutOrg with %v sent again: %v", tc.secrets, err)
				}
				got, err = s.GetOrg(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want := proto.Clone(storedBefore).(*tandemv1.Org)
				tc.edit(want)
				resent(want, tc.secrets)
				want.UpdatedAt = got.UpdatedAt
				if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
					t.Fatalf("after PutOrg with the secrets sent again (-want +got):\n%s", diff)
				}
				for name, v := range wantSecrets {
					if secretValue(got, name) != v {
						t.Errorf("%s was not replaced by the one sent again", name)
					}
				}
			})
		}
	})
}

// TestPutOrgFreeChangesKeepSecrets: settings that decide neither where nor as whom a stored
// secret goes change with every secret left empty, and the stored secrets stay.
func TestPutOrgFreeChangesKeepSecrets(t *testing.T) {
	tests := []struct {
		name string
		base func(*tandemv1.Org)
		edit func(*tandemv1.Org)
	}{
		{"name", nil, func(o *tandemv1.Org) { o.Name = "Acme Corp" }},
		{"enabled", nil, func(o *tandemv1.Org) { o.Enabled = false }},
		{"sync interval", nil, func(o *tandemv1.Org) { o.SyncIntervalSeconds = 900 }},
		{"worker pool", nil, func(o *tandemv1.Org) { o.WorkerPool = "big" }},
		{"additional domains, fixed EWS URL", nil, func(o *tandemv1.Org) {
			o.Exchange.AdditionalDomains = []string{"sales.acme.example", "other.example"}
		}},
		{"additional domain removed, Autodiscover by domain", autodiscoverByDomain, func(o *tandemv1.Org) {
			o.Exchange.AdditionalDomains = nil
		}},
		{"additional domain respelled, Autodiscover by domain", autodiscoverByDomain, func(o *tandemv1.Org) {
			o.Exchange.AdditionalDomains = []string{" @Sales.Acme.Example"}
		}},
		{"TLS verification turned back on", func(o *tandemv1.Org) { o.Exchange.InsecureSkipVerify = true }, func(o *tandemv1.Org) {
			o.Exchange.InsecureSkipVerify = false
		}},
		{"Exchange limits", nil, func(o *tandemv1.Org) { o.Exchange.MaxConcurrencyPerMailbox = 3 }},
		{"Salesforce limits and API version", nil, func(o *tandemv1.Org) {
			o.Salesforce.ApiVersion = "v61.0"
			o.Salesforce.DailyApiReservePercent = 30
			o.Salesforce.MaxConcurrentRequests = 4
		}},
		{"Salesforce write_as", nil, func(o *tandemv1.Org) {
			o.Salesforce.WriteAs = tandemv1.SalesforceWriteIdentity_SALESFORCE_WRITE_IDENTITY_REP
		}},
		// The client secret is stored but Basic does not send it.
		{"OAuth settings under Basic", nil, func(o *tandemv1.Org) {
			o.Exchange.TokenUrl = "https://elsewhere.example/token"
			o.Exchange.TenantId = "other-tenant"
			o.Exchange.ClientId = "other-app"
		}},
		// The consumer secret is stored but the JWT bearer flow does not send it.
		{"integration user under client credentials", salesforceClientCredentials, func(o *tandemv1.Org) {
			o.Salesforce.IntegrationUsername = "someone@acme.example"
			o.Salesforce.Audience = "https://test.salesforce.com"
		}},
	}
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		s := newTestStore(t, rdb)
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := t.Context()
				id := fmt.Sprintf("00D%03d", i)
				base := orgWithSecrets(id)
				if tc.base != nil {
					tc.base(base)
				}
				if _, err := s.PutOrg(ctx, base); err != nil {
					t.Fatal(err)
				}
				edit := Redact(base)
				tc.edit(edit)
				if _, err := s.PutOrg(ctx, edit); err != nil {
					t.Fatalf("PutOrg: %v", err)
				}
				got, err := s.GetOrg(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want := proto.Clone(base).(*tandemv1.Org)
				tc.edit(want)
				want.UpdatedAt = got.UpdatedAt
				if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
					t.Fatalf("GetOrg after the edit (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// TestPutOrgWithoutStoredSecrets: with no secret stored there is nothing to leak, so the
// settings that would bind one change freely.
func TestPutOrgWithoutStoredSecrets(t *testing.T) {
	s := newTestStore(t, redisServer.start(t))
	ctx := t.Context()
	const id = "00D1"
	if _, err := s.PutOrg(ctx, Redact(orgWithSecrets(id))); err != nil {
		t.Fatal(err)
	}
	edit := Redact(orgWithSecrets(id))
	edit.Exchange.EwsUrl = "https://elsewhere.example/EWS/Exchange.asmx"
	edit.Salesforce.MyDomainUrl = "https://elsewhere.example"
	if _, err := s.PutOrg(ctx, edit); err != nil {
		t.Fatalf("PutOrg of an org without secrets: %v", err)
	}

	// Once the password is stored, it binds the EWS URL but not the Salesforce settings,
	// whose secrets are still not stored.
	edit.Exchange.Password = testPassword
	if _, err := s.PutOrg(ctx, edit); err != nil {
		t.Fatal(err)
	}
	edit.Exchange.Password = ""
	edit.Salesforce.MyDomainUrl = "https://acme.my.salesforce.com"
	if _, err := s.PutOrg(ctx, edit); err != nil {
		t.Fatalf("PutOrg changing Salesforce settings without Salesforce secrets: %v", err)
	}
	edit.Exchange.EwsUrl = "https://mail.acme.example/EWS/Exchange.asmx"
	if _, err := s.PutOrg(ctx, edit); !errors.Is(err, ErrSecretNotBound) {
		t.Fatalf("PutOrg moving the stored password = %v, want ErrSecretNotBound", err)
	}
}

// TestSecretNotBoundShowsNoCredentials: a refusal shows the URLs that changed without the
// userinfo or query that may hold credentials.
func TestSecretNotBoundShowsNoCredentials(t *testing.T) {
	s := newTestStore(t, redisServer.start(t))
	ctx := t.Context()
	const id = "00D1"
	base := orgWithSecrets(id)
	base.Exchange.EwsUrl = "https://olduser:oldpass@mail.acme.example/EWS/Exchange.asmx?sig=oldsig"
	if _, err := s.PutOrg(ctx, base); err != nil {
		t.Fatal(err)
	}
	edit := Redact(base)
	edit.Exchange.EwsUrl = "https://newuser:newpass@evil.example/EWS/Exchange.asmx?sig=newsig#frag"
	edit.Salesforce.MyDomainUrl = "admin:sfpass@evil.example"
	_, err := s.PutOrg(ctx, edit)
	if !errors.Is(err, ErrSecretNotBound) {
		t.Fatalf("PutOrg = %v, want ErrSecretNotBound", err)
	}
	msg := err.Error()
	for _, leak := range []string{"olduser", "oldpass", "oldsig", "newuser", "newpass", "newsig", "sfpass", "frag"} {
		if strings.Contains(msg, leak) {
			t.Errorf("refusal %q shows %q", msg, leak)
		}
	}
	for _, want := range []string{
		`exchange.password must be sent again: exchange.ews_url changed from "https://mail.acme.example/EWS/Exchange.asmx?…" to "https://evil.example/EWS/Exchange.asmx?…"`,
		"salesforce.private_key_pem must be sent again: salesforce.my_domain_url changed",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
}
