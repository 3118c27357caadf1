package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The simulated company.
const (
	domain = "acme.example"
	// ServiceAccount is the simulated Exchange's service account, which impersonates every rep.
	ServiceAccount = "svc-tandem@" + domain
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
	sims := e.opts.Simulators
	if sims == nil {
		var err error
		if sims, err = NewSimulators(Seeding{Users: e.opts.Users, ContactsPerUser: e.opts.ContactsPerUser, Seed: e.opts.Seed}); err != nil {
			return err
		}
	}
	e.EWS, e.Salesforce, e.Mailboxes = sims.EWS, sims.Salesforce, sims.Users
	var err error
	if e.EWSURL, err = e.serve(e.EWS); err != nil {
		return err
	}
	e.EWS.SetBaseURL(e.EWSURL)
	if e.SalesforceURL, err = e.serve(e.Salesforce); err != nil {
		return err
	}
	e.Salesforce.SetBaseURL(e.SalesforceURL)
	if e.PubSubAddr, err = e.servePubSub(); err != nil {
		return err
	}
	e.OrgID = e.Salesforce.OrgID()
	org, cfg, err := sims.Org(e.EWSURL, e.SalesforceURL, e.opts.Interval)
	if err != nil {
		return err
	}
	return Configure(ctx, e.Platform.Store, org, cfg)
}

// Org returns the org that connects Tandem to these simulators, served at ewsURL and sfURL,
// syncing every interval, and its sync configuration: contacts, both ways, for every rep.
func (sims *Simulators) Org(ewsURL, sfURL string, interval time.Duration) (*tandemv1.Org, *tandemv1.SyncConfiguration, error) {
	admin, ok := sims.Salesforce.Get("User", sims.Salesforce.AdminUserID())
	if !ok {
		return nil, nil, errors.New("the Salesforce simulator has no admin user")
	}
	org := &tandemv1.Org{
		OrgId: sims.Salesforce.OrgID(), Name: "Acme (simulated)", Enabled: true, SyncIntervalSeconds: int32(max(1, interval/time.Second)),
		Exchange: &tandemv1.ExchangeConnection{
			Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, ServiceAccount: ServiceAccount, Password: sims.password,
			AutodiscoverUrl: ewsURL + "/autodiscover/autodiscover.svc",
		},
		Salesforce: &tandemv1.SalesforceConnection{
			Auth: tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER, MyDomainUrl: sfURL, ClientId: connectedApp,
			PrivateKeyPem: string(sims.keyPEM), IntegrationUsername: fmt.Sprint(admin["Username"]),
		},
	}
	cfg := &tandemv1.SyncConfiguration{
		Name: configName, Active: true, ProfileIds: []string{sims.profileID},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, Scope: tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS},
	}
	return org, cfg, nil
}

// Simulators are a seeded simulated Exchange and Salesforce with the credentials Tandem uses
// for them. Given in Options, they outlive the environment: a second environment on the same
// Redis and the same simulators is a restart of Tandem that must carry on where it stopped.
type Simulators struct {
	EWS        *ewssim.Server
	Salesforce *sfsim.Server
	// Users are the reps: Salesforce user id → email.
	Users map[string]string

	password, profileID string
	keyPEM              []byte
}

// NewSimulators builds both simulators and seeds them with s.
func NewSimulators(s Seeding) (*Simulators, error) {
	password, err := randomHex(12)
	if err != nil {
		return nil, err
	}
	keyPEM, certPEM, err := sfsim.NewConnectedAppKey(connectedApp)
	if err != nil {
		return nil, err
	}
	sims := &Simulators{
		EWS: ewssim.New(ewssim.Config{ServiceAccounts: []ewssim.ServiceAccount{{Username: ServiceAccount, Password: password, ImpersonateAll: true}}}),
		Salesforce: sfsim.New(sfsim.Config{
			DailyAllocation: 100_000, TokenLifetime: 2 * time.Hour,
			ConnectedApps: []sfsim.ConnectedApp{{ClientID: connectedApp, CertificatePEM: certPEM}},
		}),
		password: password, keyPEM: keyPEM,
	}
	if _, err := SeedExchange(sims.EWS, s); err != nil {
		return nil, err
	}
	if sims.profileID, sims.Users, err = SeedSalesforce(sims.Salesforce, s); err != nil {
		return nil, err
	}
	return sims, nil
}

// Seeding sizes the simulated company. `tandem dev` and `tandem sim` seed through the same
// functions, so a simulator started on its own with the same Seeding holds what `tandem dev`
// would have made, and one restarted with it holds the same again.
type Seeding struct {
	// Users is the number of sales reps: rep1@acme.example, rep2@acme.example ...
	Users int
	// ContactsPerUser is split between the sides: about half in the mailbox's Salesforce_Sync
	// folder, half in Salesforce owned by the rep, and a few on both sides with the same email
	// (Salesforce holding a newer title), which the first sync links instead of duplicating.
	ContactsPerUser int
	// Seed makes the generated people reproducible; rep i uses Seed+i.
	Seed int64
}

// RepEmail is the address of the i-th rep (from 0), in Exchange and in Salesforce.
func RepEmail(i int) string { return fmt.Sprintf("rep%d@%s", i+1, domain) }

func (s Seeding) inExchange() int { return s.ContactsPerUser / 2 }

// onBoth is how many of a rep's Exchange contacts are also in Salesforce.
func (s Seeding) onBoth() int { return min(s.inExchange(), max(1, s.ContactsPerUser/20)) }

// ExchangeContacts is how many contacts each rep's Salesforce_Sync folder is seeded with.
func (s Seeding) ExchangeContacts() int { return s.inExchange() }

// SalesforceContacts is how many contacts each rep owns in Salesforce as seeded, those on both
// sides included.
func (s Seeding) SalesforceContacts() int { return s.ContactsPerUser - s.inExchange() + s.onBoth() }

// BothSides is how many of each rep's contacts are seeded on both sides (the same person, with
// the same email), which the first sync links instead of copying.
func (s Seeding) BothSides() int { return s.onBoth() }

// SeedExchange gives every rep a mailbox with the Exchange half of the rep's contacts and
// returns the mailboxes' addresses.
func SeedExchange(sim *ewssim.Server, s Seeding) ([]string, error) {
	var out []string
	for i := range s.Users {
		email := RepEmail(i)
		if err := sim.Seed(email, s.inExchange(), 0, s.Seed+int64(i)); err != nil {
			return nil, fmt.Errorf("seed the mailbox of %s: %w", email, err)
		}
		out = append(out, email)
	}
	return out, nil
}

// SeedSalesforce adds the Sales Rep profile and a user per rep with the Salesforce half of the
// rep's contacts plus the contacts on both sides, and returns the profile's id and the users
// (id → email). The contacts on both sides are the first ones SeedExchange puts in the rep's
// mailbox, generated again here in a scratch simulator from the same seed, so that a
// Salesforce simulator running apart from the Exchange one still matches it.
func SeedSalesforce(sim *sfsim.Server, s Seeding) (profileID string, users map[string]string, err error) {
	profileID = sim.AddProfile(profileName)
	users = map[string]string{}
	for i := range s.Users {
		email := RepEmail(i)
		id, err := sim.AddUser(sfsim.User{
			Username: email, Email: email, FirstName: "Rep", LastName: fmt.Sprint(i + 1), ProfileID: profileID, IsActive: true,
		})
		if err != nil {
			return "", nil, fmt.Errorf("add Salesforce user %s: %w", email, err)
		}
		if _, err := sim.SeedContacts(id, s.ContactsPerUser-s.inExchange(), s.Seed+int64(i)); err != nil {
			return "", nil, fmt.Errorf("seed the contacts of %s: %w", email, err)
		}
		scratch := ewssim.New(ewssim.Config{})
		if err := scratch.Seed(email, s.inExchange(), 0, s.Seed+int64(i)); err != nil {
			return "", nil, fmt.Errorf("generate the Exchange contacts of %s: %w", email, err)
		}
		mailbox := scratch.Items(email, exchange.SyncFolderName)
		if err := seedAccounts(sim, id, mailbox); err != nil {
			return "", nil, fmt.Errorf("seed the Accounts of %s: %w", email, err)
		}
		for j, it := range mailbox {
			if j >= s.onBoth() || it.Contact == nil {
				break
			}
			c := it.Contact
			if _, err := sim.Insert("Contact", map[string]any{
				"FirstName": c.GivenName, "LastName": c.Surname, "Email": c.Email("EmailAddress1"), "Title": "Account Executive",
			}, id); err != nil {
				return "", nil, fmt.Errorf("seed a contact on both sides for %s: %w", email, err)
			}
		}
		users[id] = email
	}
	return profileID, users, nil
}

// seedAccounts creates, in Salesforce, an Account for each company of a rep's seeded Exchange
// contacts (mailbox, generated from the same seed) that has none yet, as a sales team's org
// would hold them: a company from Exchange becomes a contact's Account only where an Account of
// that name exists, so without them the first sync would report every seeded company as
// SALESFORCE_ACCOUNT_NOT_SET.
func seedAccounts(sim *sfsim.Server, userID string, mailbox []ewssim.Item) error {
	have := map[string]bool{}
	for _, a := range sim.List("Account") {
		have[fmt.Sprint(a["Name"])] = true
	}
	for _, it := range mailbox {
		name := ""
		if it.Contact != nil {
			name = it.Contact.CompanyName
		}
		if name == "" || have[name] {
			continue
		}
		if _, err := sim.Insert("Account", map[string]any{"Name": name}, userID); err != nil {
			return fmt.Errorf("seed the Account %q: %w", name, err)
		}
		have[name] = true
	}
	return nil
}

// Configure stores the org and its sync configuration in st. It is idempotent, so that a
// restart on the same Redis carries on where the last run stopped: the org is replaced (its
// credentials are sealed with this run's key), and a configuration with the same name is
// updated in place rather than added again.
func Configure(ctx context.Context, st *store.Store, org *tandemv1.Org, cfg *tandemv1.SyncConfiguration) error {
	org.UpdatedAt = nil
	if _, err := st.PutOrg(ctx, org); err != nil {
		return fmt.Errorf("store the org: %w", err)
	}
	existing, err := st.ListConfigurations(ctx, org.GetOrgId())
	if err != nil {
		return fmt.Errorf("read the sync configurations: %w", err)
	}
	for _, c := range existing {
		if strings.EqualFold(strings.TrimSpace(c.GetName()), cfg.GetName()) {
			cfg.Id = c.GetId()
		}
	}
	if _, err := st.PutConfiguration(ctx, org.GetOrgId(), cfg); err != nil {
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
