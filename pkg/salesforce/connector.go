package salesforce

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Connector reads and writes one org's contacts and events in Salesforce. It is safe for
// concurrent use; create one per org and keep it, since it holds the org's tokens, API budget
// and concurrency cap.
type Connector struct {
	orgID      string
	apiVersion string
	cfg        settings
	log        *slog.Logger
	now        func() time.Time
	auth       *authenticator
	budget     *budget
	sem        chan struct{}
	fields     *fieldInfo
	accounts   *accountCache
	metrics    *metrics
	tracer     trace.Tracer
}

var apiVersionPattern = regexp.MustCompile(`^v\d+\.\d$`)

// NewConnector builds the connector for org from its Salesforce connection.
func NewConnector(org *tandemv1.Org, opts ...Option) (*Connector, error) {
	conn := org.GetSalesforce()
	if org == nil || conn == nil {
		return nil, syncerr.New(syncerr.SalesforceConfigMissing, "org %s has no Salesforce connection", org.GetOrgId())
	}
	cfg := defaultSettings()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	// Every request, the token endpoint's included, is a client span named for its operation
	// and carrying the org; with neither provider set the client is left as it is.
	cfg.httpClient = telemetry.InstrumentHTTPClient(cfg.httpClient, cfg.tracerProvider, cfg.meterProvider,
		attribute.String(attrOrg, org.GetOrgId()))
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.clientName == "" {
		cfg.clientName = DefaultClientName
	}
	if cfg.retry.Attempts < 1 {
		cfg.retry.Attempts = 1
	}
	if cfg.retry.LockAttempts < 1 {
		cfg.retry.LockAttempts = 1
	}
	if cfg.maxResponseBytes <= 0 {
		cfg.maxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.sessionTimeout <= 0 {
		cfg.sessionTimeout = DefaultSessionTimeout
	}
	missing := func(format string, args ...any) error {
		return syncerr.New(syncerr.SalesforceConfigMissing, "org %s: "+format, append([]any{org.GetOrgId()}, args...)...)
	}
	myDomain, err := baseURL(conn.GetMyDomainUrl(), cfg.allowHTTP)
	if err != nil {
		return nil, missing("My Domain URL: %v", err)
	}
	version := conn.GetApiVersion()
	if version == "" {
		version = DefaultAPIVersion
	}
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	if !apiVersionPattern.MatchString(version) {
		return nil, missing("API version %q is not of the form v62.0", conn.GetApiVersion())
	}
	if conn.GetClientId() == "" {
		return nil, missing("no connected app consumer key")
	}
	flow := conn.GetAuth()
	if flow == tandemv1.SalesforceAuth_SALESFORCE_AUTH_UNSPECIFIED {
		switch {
		case conn.GetPrivateKeyPem() != "":
			flow = tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER
		case conn.GetClientSecret() != "":
			flow = tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS
		}
	}
	auth := &authenticator{
		flow:            flow,
		tokenURL:        myDomain + "/services/oauth2/token",
		myDomain:        myDomain,
		clientID:        conn.GetClientId(),
		clientSecret:    conn.GetClientSecret(),
		integrationUser: conn.GetIntegrationUsername(),
		writeAs:         conn.GetWriteAs(),
		audience:        conn.GetAudience(),
		http:            cfg.httpClient,
		now:             cfg.now,
		sessionTimeout:  cfg.sessionTimeout,
		tokens:          map[string]*session{},
	}
	switch flow {
	case tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER:
		if conn.GetIntegrationUsername() == "" {
			return nil, missing("no integration username for the JWT bearer flow")
		}
		key, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(conn.GetPrivateKeyPem()))
		if err != nil {
			return nil, &syncerr.Error{Code: syncerr.SalesforceAuthFailed, Err: err,
				Detail: fmt.Sprintf("org %s: the connected app's private key is not an RSA private key in PEM: %v", org.GetOrgId(), err)}
		}
		auth.key = key
		if auth.audience == "" {
			auth.audience = defaultAudience(myDomain)
		}
	case tandemv1.SalesforceAuth_SALESFORCE_AUTH_CLIENT_CREDENTIALS:
		if conn.GetClientSecret() == "" {
			return nil, missing("no consumer secret for the client credentials flow")
		}
	default:
		return nil, missing("no private key (JWT bearer) or consumer secret (client credentials)")
	}
	reserve := int64(conn.GetDailyApiReservePercent())
	if reserve <= 0 {
		reserve = DefaultReservePercent
	}
	if reserve > 100 {
		reserve = 100
	}
	concurrent := int(conn.GetMaxConcurrentRequests())
	if concurrent <= 0 {
		concurrent = DefaultMaxConcurrent
	}
	concurrent = min(concurrent, maxConcurrentCap)
	m, err := newMetrics(cfg.meterProvider, org.GetOrgId())
	if err != nil {
		return nil, fmt.Errorf("salesforce metrics: %w", err)
	}
	c := &Connector{
		orgID:      org.GetOrgId(),
		apiVersion: version,
		cfg:        cfg,
		log:        cfg.logger.With(slog.String("org_id", org.GetOrgId())),
		now:        cfg.now,
		auth:       auth,
		budget:     &budget{reservePercent: reserve, limitBackoff: cfg.limitBackoff, limitProbe: min(DefaultLimitProbe, cfg.limitBackoff), recheck: cfg.reserveRecheck},
		sem:        make(chan struct{}, concurrent),
		fields:     newFieldInfo(),
		accounts:   newAccountCache(cfg.accountCacheTTL),
		metrics:    m,
		tracer:     newTracer(cfg.tracerProvider),
	}
	auth.fetched = func(ctx context.Context, renewal bool, err error) {
		c.metrics.token(ctx, renewal, err)
		if err != nil {
			c.log.WarnContext(ctx, "salesforce token request failed", slog.Bool("renewal", renewal), slog.String("error", err.Error()))
		}
	}
	return c, nil
}

// Usage returns the org's API budget as the connector tracks it.
func (c *Connector) Usage() Usage { return c.budget.usage(c.now()) }

// limitsResponse is the part of GET /limits the connector reads.
type limitsResponse struct {
	DailyAPIRequests *struct {
		Max       int64 `json:"Max"`
		Remaining int64 `json:"Remaining"`
	} `json:"DailyApiRequests"`
}

// Check verifies the connection for a connection test: it obtains the integration user's
// token and reads the org's limits (one API call), which also seeds the API budget.
func (c *Connector) Check(ctx context.Context) error {
	resp, err := c.do(ctx, request{op: "limits", method: http.MethodGet, path: "limits", subject: c.auth.integrationSubject(), idempotent: true})
	if err != nil {
		return fmt.Errorf("check Salesforce connection of org %s: %w", c.orgID, err)
	}
	var l limitsResponse
	if err := decodeJSON(resp.body, &l); err != nil || l.DailyAPIRequests == nil || l.DailyAPIRequests.Max <= 0 {
		return syncerr.New(syncerr.SalesforceMalformedResponse, "check Salesforce connection of org %s: limits without DailyApiRequests", c.orgID)
	}
	if resp.header.Get(LimitInfoHeader) == "" {
		c.budget.observe(c.now(), l.DailyAPIRequests.Max-l.DailyAPIRequests.Remaining, l.DailyAPIRequests.Max)
	}
	return nil
}

// Users reads the org's user directory.
func (c *Connector) Users(ctx context.Context) ([]*tandemv1.SyncUser, error) {
	var out []*tandemv1.SyncUser
	err := c.queryPages(ctx, c.auth.integrationSubject(), usersStmt().String(), false, func(page *QueryResult) error {
		for _, r := range page.Records {
			out = append(out, &tandemv1.SyncUser{
				UserId:    r.String("Id"),
				Username:  r.String("Username"),
				Email:     r.String("Email"),
				ProfileId: r.String("ProfileId"),
				Active:    r.Bool("IsActive"),
				Name:      r.String("Name"),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read users of org %s: %w", c.orgID, err)
	}
	return out, nil
}

// usersStmt reads the user directory.
func usersStmt() selectStmt {
	return selectStmt{fields: []string{"Id", "Username", "Email", "ProfileId", "IsActive", "Name"}, from: objUser, orderBy: "Id ASC"}
}
