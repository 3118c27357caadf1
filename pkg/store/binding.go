package store

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ErrSecretNotBound means PutOrg was asked to change a setting that decides where, or as whom,
// a stored secret is sent, without sending that secret again: kept as it is, the stored secret
// would go to a place its owner never gave it to. Nothing is stored. The error's message names
// each secret to send again and the settings that changed.
var ErrSecretNotBound = errors.New("a stored secret is sent only where it was given for: send it again with the change")

// boundField is a setting that decides where, or as whom, a secret is sent.
type boundField struct {
	name string
	// value is the setting as compared; it is shown in messages unless it is a url.
	value func(*tandemv1.Org) string
	// url marks a value shown without its userinfo and query, which may hold credentials.
	url bool
	// moves, when set, decides whether going from old to next sends the secret somewhere new;
	// without it any change of value does.
	moves func(old, next *tandemv1.Org) bool
}

// binding ties a stored secret to the settings that decide where it goes.
type binding struct {
	// secret is a secretFields name.
	secret string
	// inUse reports whether an org with these settings sends the secret at all.
	inUse  func(*tandemv1.Org) bool
	fields []boundField
}

// bindings is the table of the rule PutOrg keeps for an org it already holds: a secret that is
// stored, used under the new settings and not sent again in the request refuses any change of
// the settings bound to it (ErrSecretNotBound), which decide where it is sent or which account it
// authenticates. A secret sent in the request binds itself to the new settings; a first PutOrg,
// or a secret never stored, has nothing to leak.
//
//	secret (used when)                  bound settings
//	exchange.password (auth BASIC)      exchange.auth, ews_url, autodiscover_url,
//	                                    service_account (its domain is Autodiscover's fallback),
//	                                    insecure_skip_verify (turned on), additional_domains
//	                                    (one added while Autodiscover is derived from each
//	                                    mailbox's domain)
//	exchange.client_secret (auth OAUTH) exchange.auth, token_url, tenant_id (the default
//	                                    token URL's), client_id, ews_url and autodiscover_url
//	                                    (where its tokens go), insecure_skip_verify (turned on)
//	salesforce.private_key_pem          salesforce.auth, my_domain_url (the token endpoint),
//	  (auth JWT_BEARER or unspecified)  client_id, integration_username, audience
//	salesforce.client_secret            salesforce.auth, my_domain_url, client_id
//	  (auth CLIENT_CREDENTIALS or unspecified)
//
// The auth method decides whether a secret is used at all, so it is bound to every secret: a
// stored secret cannot be put back to use unchecked. A Salesforce connection without an auth
// method picks its flow from the secrets it has, so both Salesforce secrets count as used then.
// The other settings are free: name, enabled, sync_interval_seconds, worker_pool,
// additional_domains with a fixed EWS or Autodiscover URL, max_concurrency_per_mailbox,
// api_version (a path segment, checked against a pattern), daily_api_reserve_percent,
// max_concurrent_requests and write_as (the synced reps, never a user the request names).
func bindings() []binding {
	exchangeAuth := boundField{
		name:  "exchange.auth",
		value: func(o *tandemv1.Org) string { return o.GetExchange().GetAuth().String() },
	}
	ewsURL := boundField{
		name: "exchange.ews_url", url: true,
		value: func(o *tandemv1.Org) string { return o.GetExchange().GetEwsUrl() },
	}
	autodiscoverURL := boundField{
		name: "exchange.autodiscover_url", url: true,
		value: func(o *tandemv1.Org) string { return o.GetExchange().GetAutodiscoverUrl() },
	}
	serviceAccount := boundField{
		name:  "exchange.service_account",
		value: func(o *tandemv1.Org) string { return o.GetExchange().GetServiceAccount() },
	}
	tokenURL := boundField{
		name: "exchange.token_url", url: true,
		value: func(o *tandemv1.Org) string { return o.GetExchange().GetTokenUrl() },
	}
	tenantID := boundField{
		name:  "exchange.tenant_id",
		value: func(o *tandemv1.Org) string { return o.GetExchange().GetTenantId() },
	}
	exchangeClientID := boundField{
		name:  "exchange.client_id",
		value: func(o *tandemv1.Org) string { return o.GetExchange().GetClientId() },
	}
	// Turning TLS verification off lets whoever is on the path take the secret; turning it on
	// sends it nowhere new.
	insecureSkipVerify := boundField{
		name:  "exchange.insecure_skip_verify",
		value: func(o *tandemv1.Org) string { return strconv.FormatBool(o.GetExchange().GetInsecureSkipVerify()) },
		moves: func(old, next *tandemv1.Org) bool {
			return next.GetExchange().GetInsecureSkipVerify() && !old.GetExchange().GetInsecureSkipVerify()
		},
	}
	// Without an EWS or Autodiscover URL, Basic credentials go to Autodiscover at each mailbox's
	// domain, which must be the service account's or an additional one: a domain added sends
	// the password there.
	additionalDomains := boundField{
		name:  "exchange.additional_domains",
		value: func(o *tandemv1.Org) string { return strings.Join(domainsOf(o), ", ") },
		moves: func(old, next *tandemv1.Org) bool {
			if next.GetExchange().GetEwsUrl() != "" || next.GetExchange().GetAutodiscoverUrl() != "" {
				return false
			}
			before := domainsOf(old)
			for _, d := range domainsOf(next) {
				if !slices.Contains(before, d) {
					return true
				}
			}
			return false
		},
	}
	salesforceAuth := boundField{
		name:  "salesforce.auth",
		value: func(o *tandemv1.Org) string { return o.GetSalesforce().GetAuth().String() },
	}
	myDomainURL := boundField{
		name: "salesforce.my_domain_url", url: true,
		value: func(o *tandemv1.Org) string { return o.GetSalesforce().GetMyDomainUrl() },
	}
	salesforceClientID := boundField{
		name:  "salesforce.client_id",
		value: func(o *tandemv1.Org) string { return o.GetSalesforce().GetClientId() },
	}
	integrationUsername := boundField{
		name:  "salesforce.integration_username",
		value: func(o *tandemv1.Org) string { return o.GetSalesforce().GetIntegrationUsername() },
	}
	audience := boundField{
		name: "salesforce.audience", url: true,
		value: func(o *tandemv1.Org) string { return o.GetSalesforce().GetAudience() },
	}

	return []binding{
		{
			secret: "exchange.password",
			inUse:  exchangeAuthIs(tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC),
			fields: []boundField{exchangeAuth, ewsURL, autodiscoverURL, serviceAccount, insecureSkipVerify, additionalDomains},
		},
		{
			secret: "exchange.client_secret",
			inUse:  exchangeAuthIs(tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS),
			fields: []boundField{exchangeAuth, tokenURL, tenantID, exchangeClientID, ewsURL, autodiscoverURL, insecureSkipVerify},
		},
		{
			secret: "salesforce.private_key_pem",
			inUse:  salesforceAuthIs(tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER),
			fields: []boundField{salesforceAuth, myDomainURL, salesforceClientID, integrationUsername, audience},
		},
		{
			secret: "salesforce.client_secret",
			inUse:  salesforceAuthIs(tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS),
			fields: []boundField{salesforceAuth, myDomainURL, salesforceClientID},
		},
	}
}

func exchangeAuthIs(a tandemv1.ExchangeAuth) func(*tandemv1.Org) bool {
	return func(o *tandemv1.Org) bool { return o.GetExchange().GetAuth() == a }
}

func salesforceAuthIs(a tandemv1.SalesforceAuth) func(*tandemv1.Org) bool {
	return func(o *tandemv1.Org) bool {
		got := o.GetSalesforce().GetAuth()
		return got == a || got == tandemv1.SalesforceAuth_SALESFORCE_AUTH_UNSPECIFIED
	}
}

// domainsOf returns the org's additional domains as the Exchange connector reads them, sorted.
func domainsOf(o *tandemv1.Org) []string {
	var out []string
	for _, d := range o.GetExchange().GetAdditionalDomains() {
		if d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@")); d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// checkBindings returns an error wrapping ErrSecretNotBound if storing next over old would send
// a stored secret somewhere new; stored says which secrets are stored. old is nil for an org
// without settings.
func checkBindings(old, next *tandemv1.Org, stored map[string]bool) error {
	if old == nil {
		old = &tandemv1.Org{}
	}
	var problems []string
	for _, b := range bindings() {
		if !stored[b.secret] || !b.inUse(next) || secretValue(next, b.secret) != "" {
			continue
		}
		var changed []string
		for _, f := range b.fields {
			before, after := f.value(old), f.value(next)
			moved := before != after
			if f.moves != nil {
				moved = f.moves(old, next)
			}
			if !moved {
				continue
			}
			changed = append(changed, fmt.Sprintf("%s changed from %s to %s", f.name, f.show(before), f.show(after)))
		}
		if len(changed) > 0 {
			problems = append(problems, b.secret+" must be sent again: "+strings.Join(changed, ", "))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", strings.Join(problems, "; "), ErrSecretNotBound)
}

func secretValue(o *tandemv1.Org, name string) string {
	for _, f := range secretFields {
		if f.name == name {
			return f.get(o)
		}
	}
	return ""
}

// show renders a value for a message: quoted, clipped, and for a URL without the userinfo and
// query that could hold credentials.
func (f boundField) show(v string) string {
	if f.url && v != "" {
		v = withoutCredentials(v)
	}
	return strconv.Quote(clip(v, 200))
}

func withoutCredentials(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "(unparsable URL)"
	}
	if u.Opaque != "" {
		// scheme:user:password@host parses as an opaque URL.
		return u.Scheme + ":…"
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "…", false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
