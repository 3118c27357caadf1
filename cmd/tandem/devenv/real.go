package devenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ExchangeEndpoint is a real Exchange (on premises or Exchange Online) for the environment.
type ExchangeEndpoint struct {
	// EWSURL is the EWS endpoint; AutodiscoverURL is used when EWSURL is empty (and when both
	// are empty, Autodiscover is derived from each user's domain).
	EWSURL, AutodiscoverURL string
	// ServiceAccount and Password authenticate with Basic (user@domain or domain\user).
	ServiceAccount, Password string
	// TenantID, ClientID and ClientSecret authenticate with OAuth 2.0 client credentials.
	TenantID, ClientID, ClientSecret string
	// AdditionalDomains are the reps' domains besides the service account's.
	AdditionalDomains []string
}

// SalesforceEndpoint is a real Salesforce org (a sandbox) for the environment.
type SalesforceEndpoint struct {
	// OrgID is the org's id (00D...).
	OrgID string
	// MyDomainURL is the org's My Domain, e.g. https://acme--dev.sandbox.my.salesforce.com.
	MyDomainURL string
	// ClientID is the connected app's consumer key; PrivateKeyPEM its certificate's key (JWT
	// bearer, with IntegrationUsername for org-wide reads), or ClientSecret (client credentials).
	ClientID, PrivateKeyPEM, ClientSecret, IntegrationUsername string
	// Audience is the JWT audience: https://test.salesforce.com for sandboxes.
	Audience string
	// ProfileIDs and UserIDs are assigned to the environment's sync configuration.
	ProfileIDs, UserIDs []string
	// PubSubEndpoint is the Pub/Sub API (host:port) for Change Data Capture, e.g.
	// api.pubsub.salesforce.com:7443; empty: changes wait for the next poll.
	PubSubEndpoint string
}

// connectReal stores an org that points at real endpoints, with a sync configuration for the
// given profiles and users.
func (e *Env) connectReal(ctx context.Context) error {
	ex, sf := e.opts.Exchange, e.opts.Salesforce
	if sf.OrgID == "" || sf.MyDomainURL == "" || sf.ClientID == "" {
		return errors.New("a real Salesforce needs its org id, My Domain URL and connected app consumer key")
	}
	if len(sf.ProfileIDs)+len(sf.UserIDs) == 0 {
		return errors.New("name the Salesforce profiles or users to sync")
	}
	e.PubSubAddr = sf.PubSubEndpoint
	for _, u := range []struct{ flag, url string }{
		{"--exchange-ews-url", ex.EWSURL}, {"--exchange-autodiscover-url", ex.AutodiscoverURL}, {"--salesforce-url", sf.MyDomainURL},
	} {
		if err := checkEndpointURL(u.flag, u.url, e.opts.InsecureHTTP); err != nil {
			return err
		}
	}
	conn := &tandemv1.ExchangeConnection{
		EwsUrl: ex.EWSURL, AutodiscoverUrl: ex.AutodiscoverURL, AdditionalDomains: ex.AdditionalDomains,
	}
	switch {
	case ex.ClientID != "":
		conn.Auth, conn.TenantId, conn.ClientId, conn.ClientSecret = tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS, ex.TenantID, ex.ClientID, ex.ClientSecret
	case ex.ServiceAccount != "":
		conn.Auth, conn.ServiceAccount, conn.Password = tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, ex.ServiceAccount, ex.Password
	default:
		return errors.New("a real Exchange needs a service account or an OAuth app")
	}
	sfConn := &tandemv1.SalesforceConnection{
		MyDomainUrl: strings.TrimRight(sf.MyDomainURL, "/"), ClientId: sf.ClientID, Audience: sf.Audience,
		IntegrationUsername: sf.IntegrationUsername,
	}
	if sf.PrivateKeyPEM != "" {
		sfConn.Auth, sfConn.PrivateKeyPem = tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER, sf.PrivateKeyPEM
	} else {
		sfConn.Auth, sfConn.ClientSecret = tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS, sf.ClientSecret
	}
	e.OrgID = sf.OrgID
	org := &tandemv1.Org{
		OrgId: sf.OrgID, Name: "Sandbox", Enabled: true, SyncIntervalSeconds: int32(max(30, e.opts.Interval.Seconds())),
		Exchange: conn, Salesforce: sfConn,
	}
	cfg := &tandemv1.SyncConfiguration{
		Name: configName, Active: true, ProfileIds: sf.ProfileIDs, UserIds: sf.UserIDs,
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, Scope: tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS},
	}
	return Configure(ctx, e.Platform.Store, org, cfg)
}

// checkEndpointURL accepts an https endpoint, and a plain-http one only with insecure (a lab's
// test server): credentials must not travel in clear to a real Exchange or Salesforce by a typo.
func checkEndpointURL(flag, raw string, insecure bool) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%s %q is not an absolute https URL", flag, raw)
	case u.Scheme == "http" && !insecure:
		return fmt.Errorf("%s %q is plain http, which would send credentials in clear: use https, or --insecure-http for a test server", flag, raw)
	}
	return nil
}
