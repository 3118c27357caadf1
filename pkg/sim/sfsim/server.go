// Package sfsim simulates one Salesforce org behind the real REST API: OAuth 2.0 token
// issuance (JWT bearer and client credentials), SOQL query and queryAll with paging, sObject
// Collections (create, update, upsert by external id, delete, retrieve), getUpdated and
// getDeleted, describe and limits, with Salesforce's JSON shapes, error codes, daily API
// allocation and Sforce-Limit-Info header.
//
// It is an independent implementation of the API (it shares no code with Tandem's Salesforce
// client), so that the client's tests catch the client's mistakes. Tests reach into the org
// through backdoor methods (Insert, Update, Delete ...) that act like a person editing
// records in the Salesforce UI, run long transactions that commit records with an older
// SystemModstamp than records saved meanwhile (Begin), seed realistic data, and inject faults:
// server errors, slow answers, row locks, expired sessions, an exhausted API allocation,
// broken JSON.
//
// `tandem dev` and `tandem sim salesforce` serve it over HTTP; it is safe for concurrent use
// and keeps 100,000 records fast by indexing them by id, owner, parent and external id.
package sfsim

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint names, used by Counts and to match faults.
const (
	EndpointToken               = "token"
	EndpointVersions            = "versions"
	EndpointResources           = "resources"
	EndpointQuery               = "query"
	EndpointQueryAll            = "queryAll"
	EndpointQueryMore           = "queryMore" // a nextRecordsUrl
	EndpointLimits              = "limits"
	EndpointDescribeGlobal      = "describeGlobal"
	EndpointSObject             = "sobject"
	EndpointDescribe            = "describe"
	EndpointUpdated             = "updated"
	EndpointDeleted             = "deleted"
	EndpointRecordGet           = "record.get"
	EndpointRecordCreate        = "record.create"
	EndpointRecordUpdate        = "record.update"
	EndpointRecordDelete        = "record.delete"
	EndpointCollectionsCreate   = "collections.create"
	EndpointCollectionsUpdate   = "collections.update"
	EndpointCollectionsUpsert   = "collections.upsert"
	EndpointCollectionsDelete   = "collections.delete"
	EndpointCollectionsRetrieve = "collections.retrieve"
)

// Defaults.
const (
	DefaultAPIVersion      = "62.0"
	DefaultDailyAllocation = 100_000
	DefaultTokenLifetime   = 2 * time.Hour
)

// Config configures a simulated org.
type Config struct {
	// OrgID is the organization id (00D...); empty picks a fixed one.
	OrgID string
	// DailyAllocation is the org's daily API request allocation (rolling 24 hours).
	DailyAllocation int64
	// APIVersion is the newest REST API version served, e.g. "62.0"; older versions down to
	// 31.0 are served too.
	APIVersion string
	// ConnectedApps are the apps that may obtain tokens.
	ConnectedApps []ConnectedApp
	// TokenLifetime is the session timeout: a token unused for this long expires.
	TokenLifetime time.Duration
	// Logger receives a debug line per request; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil uses time.Now. Tests move it to expire tokens, age the recycle
	// bin and resolve date literals.
	Now func() time.Time
	// BaseURL is the URL clients reach the simulator at, returned as instance_url; empty
	// derives it from each request's Host.
	BaseURL string
	// FaultSeed seeds the generator that decides whether a fault with a Probability fires.
	FaultSeed int64
	// FaultAdmin serves the fault admin endpoint (FaultAdminPath), through which another
	// process arms faults and reads their counts. Off by default: only a lab simulator that a
	// chaos run drives should expose it.
	FaultAdmin bool
	// WholeSecondStamps keeps SystemModstamp, CreatedDate and LastModifiedDate in whole
	// seconds, as Salesforce's API reports them (".000"): records saved in the same second share
	// a SystemModstamp, so a client must break ties by Id. Off by default: stamps then have
	// millisecond precision and strictly increase across the org.
	WholeSecondStamps bool
	// PubSub configures the change events and the Pub/Sub API (pubsub.go, changes.go).
	PubSub PubSubConfig
	// PrivateSharing makes records private to their owners for API writes (an organization-wide
	// default of Private, without role hierarchy or sharing rules): a user updates and deletes
	// only the records they own (INSUFFICIENT_ACCESS_OR_READONLY otherwise), creates records only
	// for themselves (INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY for another OwnerId), and adds
	// invitees only to their own events, unless they hold "Modify All Data" (the System
	// Administrator profile) or "Modify All" (User.ModifyAll). Reads are not restricted, as if
	// every user could "View All". Off by default: every user writes every record, as an
	// integration user with "Modify All Data" does.
	PrivateSharing bool
}

// ConnectedApp is an OAuth client of the org.
type ConnectedApp struct {
	// ClientID is the consumer key: the JWT issuer, or client_id for client credentials.
	ClientID string
	// CertificatePEM verifies JWT assertions: an X.509 certificate or a PKIX ("PUBLIC KEY")
	// or PKCS #1 ("RSA PUBLIC KEY") RSA public key.
	CertificatePEM []byte
	// ClientSecret enables the client credentials flow.
	ClientSecret string
	// ExecutionUserID is the user the client credentials flow runs as.
	ExecutionUserID string
	// AllowedProfileIDs, when set, pre-authorizes only users of these profiles for the JWT
	// bearer flow ("Admin approved users are pre-authorized").
	AllowedProfileIDs []string
}

// LogValue keeps the client secret out of logs.
func (a ConnectedApp) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", a.ClientID), slog.Bool("has_secret", a.ClientSecret != ""),
		slog.Bool("has_certificate", len(a.CertificatePEM) > 0), slog.String("execution_user", a.ExecutionUserID))
}

// Validate checks the configuration: the org id's form, the API version, and that every
// connected app has a client id and a usable certificate or secret.
func (c Config) Validate() error {
	var errs []error
	if c.OrgID != "" {
		if _, err := checkOrgID(c.OrgID); err != nil {
			errs = append(errs, err)
		}
	}
	if c.APIVersion != "" {
		if _, err := parseVersion(c.APIVersion); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DailyAllocation < 0 {
		errs = append(errs, fmt.Errorf("daily allocation %d is negative", c.DailyAllocation))
	}
	if c.TokenLifetime < 0 {
		errs = append(errs, fmt.Errorf("token lifetime %s is negative", c.TokenLifetime))
	}
	seen := map[string]bool{}
	for i, app := range c.ConnectedApps {
		if app.ClientID == "" {
			errs = append(errs, fmt.Errorf("connected app %d: client id is empty", i))
			continue
		}
		if seen[app.ClientID] {
			errs = append(errs, fmt.Errorf("connected app %s: client id used twice", app.ClientID))
		}
		seen[app.ClientID] = true
		if len(app.CertificatePEM) == 0 && app.ClientSecret == "" {
			errs = append(errs, fmt.Errorf("connected app %s: needs a certificate (JWT bearer) or a client secret (client credentials)", app.ClientID))
		}
		if len(app.CertificatePEM) > 0 {
			if _, err := parsePublicKey(app.CertificatePEM); err != nil {
				errs = append(errs, fmt.Errorf("connected app %s: %w", app.ClientID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Server is a simulated org; it is an http.Handler.
type Server struct {
	log        *slog.Logger
	now        func() time.Time
	orgID      string
	apiVersion string
	maxVersion float64
	allocation int64
	lifetime   time.Duration
	baseURL    atomic.Pointer[string]
	faultAdmin bool

	// mu guards the schema and the records.
	mu      sync.RWMutex
	schema  *schema
	st      *store
	adminID string

	auth    authState
	cursors cursorState
	faults  faultState
	meter   meter
	// held are the records that open Transactions have written, with how many hold each: API
	// writes to them fail with UNABLE_TO_LOCK_ROW until the transaction ends. Guarded by mu.
	held map[string]int
	// open are the Transactions not yet ended, with when each began: getUpdated covers no
	// later than the earliest of them. Guarded by mu.
	open   map[*Transaction]time.Time
	pubsub pubsubState
}

// New creates a simulated org with its standard profiles (System Administrator, Standard
// User) and an administrator user, the actor of backdoor edits made without a user.
// Connected apps whose certificate does not parse are logged and cannot use the JWT flow;
// call Config.Validate first to reject them.
func New(cfg Config) *Server {
	s := &Server{
		log:        cfg.Logger,
		now:        cfg.Now,
		allocation: cfg.DailyAllocation,
		lifetime:   cfg.TokenLifetime,
		faultAdmin: cfg.FaultAdmin,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.allocation <= 0 {
		s.allocation = DefaultDailyAllocation
	}
	if s.lifetime <= 0 {
		s.lifetime = DefaultTokenLifetime
	}
	s.orgID = defaultOrgID()
	if cfg.OrgID != "" {
		if id, err := checkOrgID(cfg.OrgID); err == nil {
			s.orgID = id
		} else {
			s.log.Error("sfsim: ignoring invalid org id", "error", err)
		}
	}
	s.apiVersion = DefaultAPIVersion
	if v, err := parseVersion(cfg.APIVersion); err == nil {
		s.apiVersion = strconv.FormatFloat(v, 'f', 1, 64)
	} else if cfg.APIVersion != "" {
		s.log.Error("sfsim: ignoring invalid API version", "error", err)
	}
	s.maxVersion, _ = parseVersion(s.apiVersion)
	if cfg.BaseURL != "" {
		s.SetBaseURL(cfg.BaseURL)
	}
	s.schema = defaultSchema()
	s.st = newStore(s.schema, instanceOf(s.orgID), s.now())
	s.st.wholeSeconds = cfg.WholeSecondStamps
	s.st.privateSharing = cfg.PrivateSharing
	s.held = map[string]int{}
	s.open = map[*Transaction]time.Time{}
	s.pubsub.init(cfg.PubSub)
	s.st.changes = s.pubsub.log
	s.auth.init()
	s.cursors.init()
	s.faults.init(cfg.FaultSeed)
	s.meter.init()
	for _, app := range cfg.ConnectedApps {
		if err := s.AddConnectedApp(app); err != nil {
			s.log.Error("sfsim: connected app unusable", "app", app, "error", err)
		}
	}

	admin := s.AddProfile("System Administrator")
	s.AddProfile("Standard User")
	alias := strings.ToLower(s.orgID[:15])
	id, err := s.AddUser(User{
		Username: "admin@" + alias + ".sim.example", Email: "admin@sim.example",
		FirstName: "Org", LastName: "Admin", ProfileID: admin, IsActive: true,
	})
	if err != nil {
		// The built-in administrator is valid by construction.
		panic(fmt.Sprintf("sfsim: create administrator: %v", err))
	}
	s.adminID = id
	return s
}

// OrgID returns the organization id.
func (s *Server) OrgID() string { return s.orgID }

// AdminUserID returns the id of the org's built-in administrator.
func (s *Server) AdminUserID() string { return s.adminID }

// APIVersion returns the newest API version served, e.g. "62.0".
func (s *Server) APIVersion() string { return s.apiVersion }

// SetBaseURL sets the URL clients reach the simulator at (the instance_url of tokens and the
// prefix of identity URLs), e.g. an httptest.Server's URL.
func (s *Server) SetBaseURL(u string) {
	u = strings.TrimRight(u, "/")
	s.baseURL.Store(&u)
}

func (s *Server) base(r *http.Request) string {
	if u := s.baseURL.Load(); u != nil && *u != "" {
		return *u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func parseVersion(v string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimPrefix(v, "v"), 64)
	if err != nil || f < 20 || f > 999 {
		return 0, fmt.Errorf("API version %q is not of the form 62.0", v)
	}
	return f, nil
}

// minVersion is the oldest version served: the first with getUpdated and Collections-era
// resources Tandem relies on.
const minVersion = 31.0

// ServeHTTP serves the OAuth token endpoint and the REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The Date header is the org's clock, as Salesforce's servers send theirs: a client may
	// read the server's time from it.
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	endpoint := s.serve(rec, r)
	s.log.DebugContext(r.Context(), "sfsim request", "method", r.Method, "path", r.URL.Path, "endpoint", endpoint,
		"status", rec.status, "duration", time.Since(start))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) string {
	path := r.URL.Path
	switch {
	case s.faultAdmin && path == FaultAdminPath:
		s.serveFaultAdmin(w, r)
		return ""
	case path == "/services/oauth2/token":
		s.meter.count(EndpointToken)
		if handled := s.preFaults(w, r, EndpointToken); handled {
			return EndpointToken
		}
		s.serveToken(w, r)
		return EndpointToken
	case path == "/services/data" || path == "/services/data/":
		s.meter.count(EndpointVersions)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, r, "GET", "HEAD")
			return EndpointVersions
		}
		s.serveVersions(w)
		return EndpointVersions
	case strings.HasPrefix(path, "/services/data/"):
		return s.serveREST(w, r)
	default:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return ""
	}
}

// call is one authenticated REST request.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	version string // "62.0"
	userID  string
	segs    []string
}

type handlerFunc func(s *Server, c *call)

type route struct {
	endpoint string
	handler  handlerFunc
}

// routeFor maps a path below /services/data/vXX.X/ to an endpoint. ok is false for an unknown
// resource; allowed lists the methods of a known resource when the method is not one of them.
func routeFor(method string, segs []string) (rt route, allowed []string, ok bool) {
	type entry map[string]route
	var table entry
	switch {
	case len(segs) == 0:
		table = entry{http.MethodGet: {EndpointResources, (*Server).serveResources}}
	case segs[0] == "query" && len(segs) == 1:
		table = entry{http.MethodGet: {EndpointQuery, (*Server).serveQuery}}
	case segs[0] == "queryAll" && len(segs) == 1:
		table = entry{http.MethodGet: {EndpointQueryAll, (*Server).serveQuery}}
	case (segs[0] == "query" || segs[0] == "queryAll") && len(segs) == 2:
		table = entry{http.MethodGet: {EndpointQueryMore, (*Server).serveQueryMore}}
	case segs[0] == "limits" && len(segs) == 1:
		table = entry{http.MethodGet: {EndpointLimits, (*Server).serveLimits}}
	case segs[0] == "sobjects" && len(segs) == 1:
		table = entry{http.MethodGet: {EndpointDescribeGlobal, (*Server).serveDescribeGlobal}}
	case segs[0] == "sobjects" && len(segs) == 2:
		table = entry{
			http.MethodGet:  {EndpointSObject, (*Server).serveSObject},
			http.MethodPost: {EndpointRecordCreate, (*Server).serveRecordCreate},
		}
	case segs[0] == "sobjects" && len(segs) == 3 && segs[2] == "describe":
		table = entry{http.MethodGet: {EndpointDescribe, (*Server).serveDescribe}}
	case segs[0] == "sobjects" && len(segs) == 3 && segs[2] == "updated":
		table = entry{http.MethodGet: {EndpointUpdated, (*Server).serveUpdated}}
	case segs[0] == "sobjects" && len(segs) == 3 && segs[2] == "deleted":
		table = entry{http.MethodGet: {EndpointDeleted, (*Server).serveDeleted}}
	case segs[0] == "sobjects" && len(segs) == 3:
		table = entry{
			http.MethodGet:    {EndpointRecordGet, (*Server).serveRecordGet},
			http.MethodPatch:  {EndpointRecordUpdate, (*Server).serveRecordUpdate},
			http.MethodDelete: {EndpointRecordDelete, (*Server).serveRecordDelete},
		}
	case segs[0] == "composite" && len(segs) == 2 && segs[1] == "sobjects":
		table = entry{
			http.MethodPost:   {EndpointCollectionsCreate, (*Server).serveCollectionsCreate},
			http.MethodPatch:  {EndpointCollectionsUpdate, (*Server).serveCollectionsUpdate},
			http.MethodDelete: {EndpointCollectionsDelete, (*Server).serveCollectionsDelete},
		}
	case segs[0] == "composite" && len(segs) == 3 && segs[1] == "sobjects":
		table = entry{
			http.MethodGet:  {EndpointCollectionsRetrieve, (*Server).serveCollectionsRetrieve},
			http.MethodPost: {EndpointCollectionsRetrieve, (*Server).serveCollectionsRetrieve},
		}
	case segs[0] == "composite" && len(segs) == 4 && segs[1] == "sobjects":
		table = entry{http.MethodPatch: {EndpointCollectionsUpsert, (*Server).serveCollectionsUpsert}}
	default:
		return route{}, nil, false
	}
	if rt, ok := table[method]; ok {
		return rt, nil, true
	}
	if method == http.MethodHead {
		if rt, ok := table[http.MethodGet]; ok {
			return rt, nil, true
		}
	}
	for m := range table {
		allowed = append(allowed, m)
	}
	return route{}, allowed, true
}

func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) string {
	rest := strings.TrimPrefix(r.URL.Path, "/services/data/")
	version, rest, _ := strings.Cut(rest, "/")
	v, err := parseVersion(version)
	if err != nil || !strings.HasPrefix(version, "v") || v < minVersion || v > s.maxVersion {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return ""
	}
	var segs []string
	if rest = strings.Trim(rest, "/"); rest != "" {
		segs = strings.Split(rest, "/")
	}
	rt, allowed, ok := routeFor(r.Method, segs)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return ""
	case rt.handler == nil:
		methodNotAllowed(w, r, allowed...)
		return ""
	}
	s.meter.count(rt.endpoint)
	if handled := s.preFaults(w, r, rt.endpoint); handled {
		return rt.endpoint
	}
	userID, ok := s.authenticate(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
		return rt.endpoint
	}
	if s.faults.take(rt.endpoint, r.Method, FaultRequestLimit) {
		used, allocation := s.APIUsage()
		w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", max(used, allocation), allocation))
		writeError(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
		return rt.endpoint
	}
	used, ok := s.meter.use(s.now(), s.allocation)
	w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", used, s.allocation))
	if !ok {
		writeError(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
		return rt.endpoint
	}
	c := &call{w: w, r: r, version: strconv.FormatFloat(v, 'f', 1, 64), userID: userID, segs: segs}
	if s.faults.take(rt.endpoint, r.Method, FaultMalformedJSON) {
		// The request takes effect; its answer arrives cut in half, as through a proxy that
		// dropped the connection.
		buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
		for k, v := range w.Header() {
			buf.header[k] = v
		}
		c.w = buf
		rt.handler(s, c)
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.status)
		body := buf.body.Bytes()
		_, _ = w.Write(body[:len(body)/2])
		return rt.endpoint
	}
	rt.handler(s, c)
	return rt.endpoint
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
		fmt.Sprintf("HTTP Method '%s' not allowed. Allowed are %s", r.Method, strings.Join(allowed, ",")))
}

// apiError is Salesforce's REST error element.
type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, message string, fields ...string) {
	writeJSON(w, status, []apiError{{Message: message, ErrorCode: code, Fields: fields}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`[{"message":"An unexpected error occurred.","errorCode":"UNKNOWN_EXCEPTION"}]`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// bufferedWriter holds a response so that a fault can break it before it is sent.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) WriteHeader(code int)        { b.status = code }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
