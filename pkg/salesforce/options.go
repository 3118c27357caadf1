package salesforce

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/retry"
)

// MaxCollection is the most records one sObject Collections call takes: ApplyMany writes the
// commands of one operation in calls of that many.
const MaxCollection = 200

// Defaults of the connector's settings.
const (
	DefaultAPIVersion     = "v62.0"
	DefaultClientName     = "tandem"
	DefaultReservePercent = 20
	DefaultMaxConcurrent  = 10
	DefaultOverlap        = 5 * time.Minute
	// DefaultReadBackEvery is how often, at most, a poll reads back records that may have
	// committed late while getUpdated cannot yet say they all have (see Poll).
	DefaultReadBackEvery      = time.Minute
	DefaultFullRescanInterval = 24 * time.Hour
	// DefaultAccountCacheTTL is how long the answer of an Account lookup serves later writes.
	DefaultAccountCacheTTL = time.Minute
	DefaultLimitBackoff    = time.Hour
	DefaultLimitProbe      = time.Minute
	DefaultReserveRecheck  = 10 * time.Minute
	// DefaultSessionTimeout is Salesforce's default session timeout (Setup → Session Settings).
	DefaultSessionTimeout = 2 * time.Hour
	// DefaultMaxResponseBytes caps one response body: far above a query page of 2,000 large
	// records (Salesforce shrinks pages of large records), far below what would strain a worker.
	DefaultMaxResponseBytes = 64 << 20
	DefaultHTTPTimeout      = 2 * time.Minute

	// maxConcurrentCap stays below Salesforce's 25 concurrent long-running requests per org,
	// which would otherwise fail everyone's requests in the org, not only Tandem's.
	maxConcurrentCap = 24
	// maxSOQLLength is Salesforce's limit on a SOQL statement's length in characters.
	maxSOQLLength = 100_000
	// maxCollection is the most records one sObject Collections call takes.
	maxCollection = MaxCollection
	// recycleWindow is how long deleted records stay queryable in the recycle bin; a cursor
	// older than this may have missed deletes, so the next poll is a full read. A day of margin
	// covers bins purged early.
	recycleWindow = 14 * 24 * time.Hour
)

// RetryPolicy bounds the retries of idempotent requests after a server error or timeout, and
// of records Salesforce could not lock. The default is 4 attempts, 1s doubling to at most 30s,
// and 4 attempts for locked records.
type RetryPolicy struct {
	// Attempts is the most times a request is sent (1 = no retry).
	Attempts int
	// BaseDelay is the first backoff; it doubles per attempt, with jitter.
	BaseDelay time.Duration
	// MaxDelay caps one backoff.
	MaxDelay time.Duration
	// LockAttempts is the most times a record that failed with UNABLE_TO_LOCK_ROW is sent.
	LockAttempts int
}

// policy is the retry package's policy for these bounds. A delay Salesforce asks for
// (Retry-After) replaces the computed one; one longer than MaxDelay is not slept through but
// returned to the caller, whose error carries it.
func (p RetryPolicy) policy() retry.Policy {
	return retry.Policy{Base: p.BaseDelay, Max: p.MaxDelay, Jitter: retry.DefaultJitter, Attempts: p.Attempts, MaxServerDelay: p.MaxDelay}
}

type settings struct {
	httpClient         *http.Client
	logger             *slog.Logger
	now                func() time.Time
	meterProvider      metric.MeterProvider
	tracerProvider     trace.TracerProvider
	clientName         string
	retry              RetryPolicy
	overlap            time.Duration
	fullRescanInterval time.Duration
	limitBackoff       time.Duration
	reserveRecheck     time.Duration
	maxResponseBytes   int64
	maxSOQLLength      int
	// readBackSplit is the most versions read within the read-back that a poll folds into one
	// query with what changed after its watermark (poller.incrementalReads): a query page.
	readBackSplit int
	// readBackPeek is how long a split read-back goes on, from page to page, before it reads
	// what changed since meanwhile (poller.readIncremental).
	readBackPeek time.Duration
	// readBackEvery is how often a read-back runs that cannot be the last for its records
	// (pollCursor.readBackDue).
	readBackEvery   time.Duration
	sessionTimeout  time.Duration
	accountCacheTTL time.Duration
	allowHTTP       bool
}

// Option configures a Connector.
type Option func(*settings)

// WithHTTPClient sets the HTTP client (transport, TLS, proxy). Its Timeout bounds one request.
func WithHTTPClient(c *http.Client) Option { return func(s *settings) { s.httpClient = c } }

// WithAllowHTTP permits a plain-http My Domain URL, and then a plain-http instance: for
// simulators and lab servers only. Without it a connector refuses them.
func WithAllowHTTP(allow bool) Option { return func(s *settings) { s.allowHTTP = allow } }

// WithLogger sets the logger; records carry the org id.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithClock sets the clock used for tokens, budgets, backoffs and cursors.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithMeterProvider sets the OpenTelemetry meter provider: the connector's own metrics and the
// HTTP client metrics of every request. The default records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(s *settings) { s.meterProvider = mp }
}

// WithTracerProvider sets the OpenTelemetry tracer provider; the default records nothing.
// Poll and Apply get a span, and every HTTP request (REST calls, sObject Collections, the token
// endpoint) a client span named "salesforce <operation>" ("salesforce query", "salesforce
// collections.upsert", "salesforce token") with the HTTP semantic conventions' attributes;
// see telemetry.InstrumentHTTPClient for what spans leave out. The Pub/Sub API's calls get
// otelgrpc's client spans.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *settings) { s.tracerProvider = tp }
}

// WithClientName sets the client name sent on writes as "Sforce-Call-Options: client=<name>",
// which lets the org (and Tandem) recognise Tandem's own changes.
func WithClientName(name string) Option { return func(s *settings) { s.clientName = name } }

// WithRetryPolicy sets how idempotent requests and locked records are retried.
func WithRetryPolicy(p RetryPolicy) Option { return func(s *settings) { s.retry = p } }

// WithOverlap sets the longest a transaction may take between stamping a record
// (SystemModstamp) and committing it, plus the time a poll's query takes. A poll reads back,
// with their content, the records stamped that long before the previous poll read, for
// transactions that committed after it with an older SystemModstamp; once the last change is
// that old, polls resume exactly after it.
func WithOverlap(d time.Duration) Option { return func(s *settings) { s.overlap = d } }

// WithFullRescanInterval sets how often a poll lists everything again although its cursor is
// valid (0 disables it). Full reads repair what incremental reads cannot see: a record
// reassigned to a user outside the audience, or a delete purged early from a full recycle bin.
func WithFullRescanInterval(d time.Duration) Option {
	return func(s *settings) { s.fullRescanInterval = d }
}

// WithRequestLimitBackoff sets the longest pause of the org after REQUEST_LIMIT_EXCEEDED; the
// first is DefaultLimitProbe (or this, if shorter), doubling while the limit persists.
func WithRequestLimitBackoff(d time.Duration) Option { return func(s *settings) { s.limitBackoff = d } }

// WithReserveRecheck sets how long calls are refused once the org's use reached the reserve
// before one probe call checks whether the rolling window freed calls up.
func WithReserveRecheck(d time.Duration) Option { return func(s *settings) { s.reserveRecheck = d } }

// WithSessionTimeout sets the org's session timeout (Setup → Session Settings): a cached
// token is replaced, before use, once its session has gone unused that long. A shorter timeout
// than the org's costs a token request per rep and timeout; a longer one costs a request that
// Salesforce rejects, then a renewal.
func WithSessionTimeout(d time.Duration) Option { return func(s *settings) { s.sessionTimeout = d } }

// WithAccountCacheTTL sets how long the answer of an Account lookup — which Accounts, as the
// writer sees them, a company's exact name names — serves later contact writes of the org
// (0: every write call looks its companies up). An Account created, renamed or deleted within it
// is seen once the answer expires.
func WithAccountCacheTTL(d time.Duration) Option { return func(s *settings) { s.accountCacheTTL = d } }

// WithMaxResponseBytes caps the size of one response body.
func WithMaxResponseBytes(n int64) Option { return func(s *settings) { s.maxResponseBytes = n } }

func defaultSettings() settings {
	return settings{
		httpClient:         &http.Client{Timeout: DefaultHTTPTimeout},
		logger:             slog.New(slog.DiscardHandler),
		now:                time.Now,
		clientName:         DefaultClientName,
		retry:              RetryPolicy{Attempts: 4, BaseDelay: time.Second, MaxDelay: 30 * time.Second, LockAttempts: 4},
		overlap:            DefaultOverlap,
		fullRescanInterval: DefaultFullRescanInterval,
		limitBackoff:       DefaultLimitBackoff,
		reserveRecheck:     DefaultReserveRecheck,
		maxResponseBytes:   DefaultMaxResponseBytes,
		maxSOQLLength:      maxSOQLLength,
		readBackSplit:      queryPageRows,
		readBackPeek:       time.Second,
		readBackEvery:      DefaultReadBackEvery,
		sessionTimeout:     DefaultSessionTimeout,
		accountCacheTTL:    DefaultAccountCacheTTL,
	}
}
