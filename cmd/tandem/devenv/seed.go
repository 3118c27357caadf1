package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The simulated company.
const (
	domain         = "acme.example"
	serviceAccount = "svc-tandem@" + domain
	connectedApp   = "tandem-dev-connected-app"
	profileName    = "Sales Rep"
	configName     = "Sales reps"
)

// serve serves h on a free local port and returns its base URL.
func (e *Env) serve(h http.Handler) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	e.closers = append(e.closers, srv.Shutdown)
	return "http://" + lis.Addr().String(), nil
}

// startSimulators starts simulated Exchange and Salesforce servers, seeds them, and stores the
// org and its sync configuration.
func (e *Env) startSimulators(ctx context.Context) error {
	password, err := randomHex(12)
	if err != nil {
		return err
	}
	keyPEM, certPEM, err := sfsim.NewConnectedAppKey(connectedApp)
	if err != nil {
		return err
	}
	e.EWS = ewssim.New(ewssim.Config{ServiceAccounts: []ewssim.ServiceAccount{{Username: serviceAccount, Password: password, ImpersonateAll: true}}})
	if e.EWSURL, err = e.serve(e.EWS); err != nil {
		return err
	}
	e.EWS.SetBaseURL(e.EWSURL)
	e.Salesforce = sfsim.New(sfsim.Config{
		DailyAllocation: 100_000, TokenLifetime: 2 * time.Hour,
		ConnectedApps: []sfsim.ConnectedApp{{ClientID: connectedApp, CertificatePEM: certPEM}},
	})
	if e.SalesforceURL, err = e.serve(e.Salesforce); err != nil {
		return err
	}
	e.Salesforce.SetBaseURL(e.SalesforceURL)
	e.OrgID = e.Salesforce.OrgID()

	profile := e.Salesforce.AddProfile(profileName)
	e.Mailboxes = map[string]string{}
	for i := range e.opts.Users {
		email := fmt.Sprintf("rep%d@%s", i+1, domain)
		id, err := e.Salesforce.AddUser(sfsim.User{
			Username: email, Email: email, FirstName: "Rep", LastName: fmt.Sprint(i + 1), ProfileID: profile, IsActive: true,
		})
		if err != nil {
			return fmt.Errorf("add Salesforce user %s: %w", email, err)
		}
		if err := e.seedUser(id, email, e.opts.Seed+int64(i)); err != nil {
			return err
		}
		e.Mailboxes[id] = email
	}

	admin, ok := e.Salesforce.Get("User", e.Salesforce.AdminUserID())
	if !ok {
		return errors.New("the Salesforce simulator has no admin user")
	}
	org := &tandemv1.Org{
		OrgId: e.OrgID, Name: "Acme (simulated)", Enabled: true, SyncIntervalSeconds: int32(max(1, e.opts.Interval/time.Second)),
		Exchange: &tandemv1.ExchangeConnection{
			Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, ServiceAccount: serviceAccount, Password: password,
			AutodiscoverUrl: e.EWSURL + "/autodiscover/autodiscover.svc",
		},
		Salesforce: &tandemv1.SalesforceConnection{
			Auth: tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER, MyDomainUrl: e.SalesforceURL, ClientId: connectedApp,
			PrivateKeyPem: string(keyPEM), IntegrationUsername: fmt.Sprint(admin["Username"]),
		},
	}
	cfg := &tandemv1.SyncConfiguration{
		Name: configName, Active: true, ProfileIds: []string{profile},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, Scope: tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS},
	}
	return e.configure(ctx, org, cfg)
}

// seedUser gives a user a mailbox and contacts: about half in the mailbox's Salesforce_Sync
// folder, half in Salesforce owned by the user, and a few on both sides with the same email
// (with Salesforce holding a newer title), which the first sync links instead of duplicating.
func (e *Env) seedUser(userID, email string, seed int64) error {
	inExchange := e.opts.ContactsPerUser / 2
	inSalesforce := e.opts.ContactsPerUser - inExchange
	if err := e.EWS.Seed(email, inExchange, 0, seed); err != nil {
		return err
	}
	if _, err := e.Salesforce.SeedContacts(userID, inSalesforce, seed); err != nil {
		return err
	}
	if err := e.seedAccounts(userID, email); err != nil {
		return err
	}
	both := min(inExchange, max(1, e.opts.ContactsPerUser/20))
	for i, it := range e.EWS.Items(email, exchange.SyncFolderName) {
		if i >= both || it.Contact == nil {
			break
		}
		c := it.Contact
		if _, err := e.Salesforce.Insert("Contact", map[string]any{
			"FirstName": c.GivenName, "LastName": c.Surname, "Email": c.Email("EmailAddress1"), "Title": "Account Executive",
		}, userID); err != nil {
			return fmt.Errorf("seed a contact on both sides for %s: %w", email, err)
		}
	}
	return nil
}

// seedAccounts creates, in Salesforce, an Account for each company of the mailbox's seeded
// contacts that has none yet, as a sales team's org would hold them: a company from Exchange
// becomes a contact's Account only where an Account of that name exists, so without them the
// first sync would report every seeded company as SALESFORCE_ACCOUNT_NOT_SET.
func (e *Env) seedAccounts(userID, email string) error {
	have := map[string]bool{}
	for _, a := range e.Salesforce.List("Account") {
		have[fmt.Sprint(a["Name"])] = true
	}
	for _, it := range e.EWS.Items(email, exchange.SyncFolderName) {
		name := ""
		if it.Contact != nil {
			name = it.Contact.CompanyName
		}
		if name == "" || have[name] {
			continue
		}
		if _, err := e.Salesforce.Insert("Account", map[string]any{"Name": name}, userID); err != nil {
			return fmt.Errorf("seed the Account %q for %s: %w", name, email, err)
		}
		have[name] = true
	}
	return nil
}

// configure stores the org and its sync configuration.
func (e *Env) configure(ctx context.Context, org *tandemv1.Org, cfg *tandemv1.SyncConfiguration) error {
	org.UpdatedAt = nil
	if _, err := e.Platform.Store.PutOrg(ctx, org); err != nil {
		return fmt.Errorf("store the org: %w", err)
	}
	if _, err := e.Platform.Store.PutConfiguration(ctx, org.GetOrgId(), cfg); err != nil {
		return fmt.Errorf("store the sync configuration: %w", err)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
