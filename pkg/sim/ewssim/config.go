package ewssim

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config configures a simulated Exchange server. The zero value is a usable Exchange 2019 with
// no accounts: add ServiceAccounts or OAuthApps so that clients can authenticate.
type Config struct {
	// ServerVersion is what the server reports in the ServerVersionInfo SOAP header and in
	// Autodiscover. Either a preset — "Exchange2016", "Exchange2019" (the default) or
	// "ExchangeOnline" — or an explicit "Major.Minor.Build.Revision SchemaVersion" such as
	// "15.2.1748.10 V2017_07_11".
	ServerVersion string
	// ServiceAccounts may authenticate with HTTP Basic.
	ServiceAccounts []ServiceAccount
	// OAuthApps may obtain bearer tokens from the token endpoint /{tenant}/oauth2/v2.0/token.
	// Their tokens carry full_access_as_app: they may impersonate every mailbox.
	OAuthApps []OAuthApp
	// TokenLifetime is how long an issued access token is valid. Default: one hour.
	TokenLifetime time.Duration
	// RequireAnchorMailbox rejects mailbox requests without an X-AnchorMailbox header with a SOAP
	// fault (ErrorInvalidRequest). By default they are served and counted under
	// "MissingAnchorMailbox" in Counts.
	RequireAnchorMailbox bool
	// MaxRequestBytes caps the size of a request body; larger requests get HTTP 413.
	// Default: 16 MiB.
	MaxRequestBytes int64
	// Logger receives one debug record per request and info records for injected faults.
	// Secrets are never logged. Default: discard.
	Logger *slog.Logger
	// Clock is the server's time source (item timestamps, token expiry, seeded event dates).
	// Default: time.Now. Tests set it to make expiry deterministic.
	Clock func() time.Time
	// FaultSeed seeds the generator that decides whether a fault with a Probability fires.
	FaultSeed int64
	// FaultAdmin serves the fault admin endpoint (FaultAdminPath), through which another
	// process arms faults and reads their counts. Off by default: only a lab simulator that a
	// chaos run drives should expose it.
	FaultAdmin bool
	// MailboxServers spreads the mailboxes over this many mailbox servers, each keeping its
	// own streaming subscriptions (see notify.go). Default: one.
	MailboxServers int
	// StreamingKeepAlive is how often an open GetStreamingEvents connection with nothing to
	// report gets a ConnectionStatus OK. Default: 30 seconds.
	StreamingKeepAlive time.Duration
	// StreamingMinute is how long one minute of a GetStreamingEvents ConnectionTimeout lasts,
	// so that tests can see connections end without waiting minutes. Default: a minute.
	StreamingMinute time.Duration
}

// ServiceAccount is an account that authenticates with HTTP Basic.
type ServiceAccount struct {
	// Username is "user@domain" or "DOMAIN\user". Either form of the same account is accepted at
	// login: "CONTOSO\svc" matches "svc@contoso.com" when CONTOSO is the first label of the
	// domain, as Active Directory's NetBIOS name usually is.
	Username string
	// Password is the account's password.
	Password string
	// ImpersonateAll grants the ApplicationImpersonation role on every mailbox.
	ImpersonateAll bool
	// Impersonate lists the mailboxes (primary SMTP addresses) the account may impersonate when
	// ImpersonateAll is false.
	Impersonate []string
	// Mailbox is the account's own mailbox, used by requests without ExchangeImpersonation. When
	// empty and Username is an address, that address is used.
	Mailbox string
}

// OAuthApp is an Entra ID (Azure AD) application registered for client-credentials access.
type OAuthApp struct {
	// TenantID is the tenant id or domain that appears in the token endpoint path.
	TenantID string
	// ClientID is the application (client) id.
	ClientID string
	// ClientSecret is the application's secret.
	ClientSecret string
}

// serverVersion is a parsed ServerVersionInfo.
type serverVersion struct {
	major, minor, build, revision int
	schema                        string
}

func (v serverVersion) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", v.major, v.minor, v.build, v.revision)
}

var versionPresets = map[string]serverVersion{
	"exchange2016":   {15, 1, 2507, 6, "V2017_07_11"},
	"exchange2019":   {15, 2, 1748, 10, "V2017_07_11"},
	"exchangeonline": {15, 20, 3370, 16, "V2018_01_08"},
}

// exchangeVersions is ExchangeVersionType from types.xsd, oldest first: a request may ask for
// any version up to the server's own schema version.
var exchangeVersions = []string{
	"Exchange2007", "Exchange2007_SP1", "Exchange2009", "Exchange2010", "Exchange2010_SP1",
	"Exchange2010_SP2", "Exchange2012", "Exchange2013", "Exchange2013_SP1", "Exchange2015",
	"Exchange2016", "V2015_10_05", "V2016_01_06", "V2016_04_13", "V2016_07_13", "V2016_10_10",
	"V2017_01_07", "V2017_04_14", "V2017_07_11", "V2017_10_09", "V2018_01_08",
}

func parseServerVersion(s string) (serverVersion, error) {
	if s == "" {
		return versionPresets["exchange2019"], nil
	}
	if v, ok := versionPresets[strings.ToLower(s)]; ok {
		return v, nil
	}
	num, schema, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return serverVersion{}, fmt.Errorf("server version %q: want a preset or \"15.2.1748.10 V2017_07_11\"", s)
	}
	parts := strings.Split(num, ".")
	if len(parts) != 4 {
		return serverVersion{}, fmt.Errorf("server version %q: want four numbers", s)
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return serverVersion{}, fmt.Errorf("server version %q: bad number %q", s, p)
		}
		n[i] = v
	}
	schema = strings.TrimSpace(schema)
	if !slices.Contains(exchangeVersions, schema) {
		return serverVersion{}, fmt.Errorf("server version %q: unknown schema version %q", s, schema)
	}
	return serverVersion{n[0], n[1], n[2], n[3], schema}, nil
}

// Validate reports whether the configuration is usable. New panics on a configuration that
// Validate rejects, so command-line front ends should call Validate first.
func (c Config) Validate() error {
	var errs []error
	if _, err := parseServerVersion(c.ServerVersion); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, a := range c.ServiceAccounts {
		if a.Username == "" {
			errs = append(errs, fmt.Errorf("service account %d: empty username", i))
		}
		if seen[strings.ToLower(a.Username)] {
			errs = append(errs, fmt.Errorf("service account %q: listed twice", a.Username))
		}
		seen[strings.ToLower(a.Username)] = true
	}
	for i, a := range c.OAuthApps {
		if a.TenantID == "" || a.ClientID == "" || a.ClientSecret == "" {
			errs = append(errs, fmt.Errorf("oauth app %d: tenant id, client id and client secret are required", i))
		}
	}
	if c.TokenLifetime < 0 {
		errs = append(errs, errors.New("negative token lifetime"))
	}
	if c.MaxRequestBytes < 0 {
		errs = append(errs, errors.New("negative max request bytes"))
	}
	if c.MailboxServers < 0 || c.StreamingKeepAlive < 0 || c.StreamingMinute < 0 {
		errs = append(errs, errors.New("negative mailbox servers, streaming keep-alive or streaming minute"))
	}
	return errors.Join(errs...)
}
