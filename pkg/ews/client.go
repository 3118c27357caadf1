package ews

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// Defaults of Config.
const (
	DefaultServerVersion            = "Exchange2013_SP1"
	DefaultRequestTimeout           = 100 * time.Second
	DefaultMaxResponseBytes         = 32 << 20
	DefaultMaxConcurrencyPerMailbox = 10
	DefaultMaxRetries               = 3
	DefaultRetryBaseDelay           = 500 * time.Millisecond
	DefaultMaxRetryDelay            = 10 * time.Second
	DefaultMaxInlineBackOff         = 30 * time.Second
)

// supportedRequestVersions are the RequestServerVersion values the client may send: Exchange
// 2013 SP1 or later, as understood by every supported server.
var supportedRequestVersions = map[string]bool{
	"Exchange2013_SP1": true, "Exchange2015": true, "Exchange2016": true,
	"V2015_10_05": true, "V2016_01_06": true, "V2016_04_13": true, "V2016_07_13": true,
	"V2016_10_10": true, "V2017_01_07": true, "V2017_04_14": true, "V2017_07_11": true,
}

// Config configures a Client.
type Config struct {
	// Credentials authenticate every request. Required.
	Credentials Credentials
	// HTTPClient sends requests; nil means a client with TLS 1.2 or later. The client never
	// follows redirects on EWS requests (a POST cannot be replayed safely to a new place).
	HTTPClient *http.Client
	// ServerVersion is the RequestServerVersion sent; empty means Exchange2013_SP1.
	ServerVersion string
	// RequestTimeout bounds each HTTP exchange; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxResponseBytes caps a response body; zero means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// MaxConcurrencyPerMailbox caps concurrent requests per mailbox; zero means the default (10).
	MaxConcurrencyPerMailbox int
	// MaxRetries is how many times a failed request may be repeated when that is safe; zero
	// means DefaultMaxRetries, negative means never.
	MaxRetries int
	// RetryBaseDelay is the first retry's backoff, doubled per attempt up to MaxRetryDelay, with
	// jitter (the retry package's policy).
	RetryBaseDelay time.Duration
	// MaxRetryDelay caps the client's own backoff.
	MaxRetryDelay time.Duration
	// MaxInlineBackOff is the longest server-requested back-off the client waits out itself;
	// longer ones are returned as errors whose Delay tells the caller when to come back.
	MaxInlineBackOff time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// Logger receives request diagnostics; nil discards them.
	Logger *slog.Logger
}

// Target is the mailbox a request acts on and the EWS endpoint serving it.
type Target struct {
	// URL is the EWS endpoint, e.g. https://mail.contoso.com/EWS/Exchange.asmx.
	URL string
	// Address is the mailbox's primary SMTP address, impersonated and used as X-AnchorMailbox.
	Address string
}

// Client sends EWS operations. It is safe for concurrent use.
type Client struct {
	cfg     Config
	http    *http.Client
	limiter *mailboxLimiter
	log     *slog.Logger

	// wait sleeps between attempts; tests replace it to observe back-offs without waiting.
	wait func(context.Context, time.Duration) error

	mu       sync.Mutex
	versions map[string]ServerVersion
}

// NewClient returns a Client for cfg.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("ews: credentials are required")
	}
	if cfg.ServerVersion == "" {
		cfg.ServerVersion = DefaultServerVersion
	}
	if !supportedRequestVersions[cfg.ServerVersion] {
		return nil, fmt.Errorf("ews: request server version %q: want Exchange2013_SP1 or later", cfg.ServerVersion)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxConcurrencyPerMailbox <= 0 {
		cfg.MaxConcurrencyPerMailbox = DefaultMaxConcurrencyPerMailbox
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.RetryBaseDelay <= 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if cfg.MaxInlineBackOff <= 0 {
		cfg.MaxInlineBackOff = DefaultMaxInlineBackOff
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Tandem-EWS/1"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg:      cfg,
		http:     noRedirects(cfg.HTTPClient),
		limiter:  newMailboxLimiter(cfg.MaxConcurrencyPerMailbox),
		log:      logger,
		wait:     retry.Sleep,
		versions: make(map[string]ServerVersion),
	}, nil
}

// DefaultHTTPClient returns the HTTP client used when Config.HTTPClient is nil: TLS 1.2 or
// later, connection reuse, no overall timeout (requests carry their own).
func DefaultHTTPClient(insecureSkipVerify bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // only for simulators and labs, set explicitly by the admin
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}

// noRedirects returns a copy of hc that hands 3xx answers back instead of following them.
func noRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = DefaultHTTPClient(false)
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// ServerVersion returns the version the server at ewsURL reported in its latest answer.
func (cl *Client) ServerVersion(ewsURL string) (ServerVersion, bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	v, ok := cl.versions[ewsURL]
	return v, ok
}

// call describes one EWS operation to send.
type call struct {
	op     string
	target Target
	body   *etree.Element
	// idempotent marks operations that may be repeated after an ambiguous failure (a timeout or
	// a dropped connection after the request left): reads, and writes made safe by change keys.
	idempotent bool
	// header, when set, adjusts each attempt's HTTP headers (the server affinity of
	// notification requests, streaming.go).
	header func(http.Header)
	// answered, when set, is given the HTTP headers of each answer (the affinity cookie).
	answered func(http.Header)
}

// do sends c and returns the parsed envelope. Failures come back classified (*syncerr.Error),
// except cancellation of ctx, which is returned as is.
func (cl *Client) do(ctx context.Context, c call) (*envelope, error) {
	if c.target.URL == "" {
		return nil, classify(fmt.Errorf("%s: no EWS URL for %s", c.op, c.target.Address))
	}
	payload, err := buildEnvelope(cl.cfg.ServerVersion, c.target.Address, c.body)
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", c.op, err)
	}
	reauthorized := false
	attempts := 0
	var env *envelope
	err = retry.Do(ctx, cl.retryPolicy(), func(ctx context.Context) error {
		attempts++
		var err error
		env, err = cl.send(ctx, c, payload, &reauthorized)
		switch {
		case err == nil, ctx.Err() != nil:
			return err
		case !transient(err), !c.idempotent && !notExecuted(err):
			// Only requests that cannot apply twice are repeated after an ambiguous failure.
			return retry.Abort(err)
		}
		if d := serverDelay(err); d > 0 {
			return retry.After(err, d)
		}
		return err
	}, retry.WithSleep(cl.wait), retry.OnRetry(func(err error, attempt int, delay time.Duration) {
		cl.log.DebugContext(ctx, "ews request retried", "op", c.op, "mailbox", c.target.Address,
			"attempt", attempt, "delay", delay, "err", err)
	}))
	if err == nil {
		return env, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s for %s: %w", c.op, c.target.Address, ctx.Err())
	}
	se := classify(fmt.Errorf("%s for %s: %w", c.op, c.target.Address, err))
	cl.log.WarnContext(ctx, "ews request failed", "op", c.op, "mailbox", c.target.Address,
		"code", string(se.Code), "upstream", se.Upstream, "attempts", attempts, "err", err)
	return nil, se
}

// retryPolicy is how failed requests are repeated. Exchange's own back-off requests
// (BackOffMilliseconds, Retry-After) set the delay; those longer than MaxInlineBackOff are not
// waited out here but returned to the caller (their Delay travels in the classified error).
func (cl *Client) retryPolicy() retry.Policy {
	return retry.Policy{
		Base: cl.cfg.RetryBaseDelay, Max: cl.cfg.MaxRetryDelay, Jitter: retry.DefaultJitter,
		Attempts: cl.cfg.MaxRetries + 1, MaxServerDelay: cl.cfg.MaxInlineBackOff,
	}
}

// send makes one attempt, recording the server's version, and fetches a new token once per
// call when the server refuses the cached one: a token may be revoked before its expiry, and
// a renewal is not a retry.
func (cl *Client) send(ctx context.Context, c call, payload []byte, reauthorized *bool) (*envelope, error) {
	for {
		env, err := cl.roundTrip(ctx, c, payload)
		if env != nil && env.version != (ServerVersion{}) {
			cl.mu.Lock()
			cl.versions[c.target.URL] = env.version
			cl.mu.Unlock()
		}
		var he *HTTPError
		if err != nil && ctx.Err() == nil && !*reauthorized && errors.As(err, &he) && he.StatusCode == http.StatusUnauthorized {
			if inv, ok := cl.cfg.Credentials.(invalidator); ok {
				inv.invalidate()
				*reauthorized = true
				continue
			}
		}
		return env, err
	}
}

// roundTrip performs one HTTP exchange under the mailbox's concurrency cap and the request timeout.
func (cl *Client) roundTrip(ctx context.Context, c call, payload []byte) (*envelope, error) {
	release, err := cl.limiter.acquire(ctx, c.target.Address)
	if err != nil {
		return nil, err
	}
	defer release()

	rctx, cancel := context.WithTimeout(telemetry.WithHTTPOperation(ctx, "ews "+c.op), cl.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.target.URL, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("Accept", "text/xml")
	req.Header.Set("SOAPAction", `"`+nsMessages+"/"+c.op+`"`)
	req.Header.Set("User-Agent", cl.cfg.UserAgent)
	req.Header.Set("client-request-id", requestID())
	req.Header.Set("return-client-request-id", "true")
	if c.target.Address != "" {
		// Exchange Online and multi-server on-premises sites route by anchor mailbox; with
		// impersonation it must name the impersonated mailbox.
		req.Header.Set("X-AnchorMailbox", c.target.Address)
	}
	if c.header != nil {
		c.header(req.Header)
	}
	if err := cl.cfg.Credentials.Authorize(rctx, req); err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	start := time.Now()
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if c.answered != nil {
		c.answered(resp.Header)
	}
	data, err := readLimited(resp.Body, resp.ContentLength, cl.cfg.MaxResponseBytes)
	cl.log.DebugContext(ctx, "ews exchange", "op", c.op, "mailbox", c.target.Address, "status", resp.StatusCode,
		"bytes", len(data), "elapsed", time.Since(start))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		// Exchange answers SOAP faults (throttling, impersonation, schema errors) with HTTP 500.
		if looksLikeXML(resp.Header, data) {
			if env, ferr := parseEnvelope(data); ferr != nil {
				var re *ResponseError
				if errors.As(ferr, &re) {
					return env, ferr
				}
			}
		}
		return nil, httpError(resp, data)
	}
	return parseEnvelope(data)
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readLimited reads a body of at most limit bytes.
func readLimited(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength > limit {
		return nil, &ResponseTooLargeError{Limit: limit}
	}
	var buf bytes.Buffer
	if contentLength > 0 {
		buf.Grow(int(contentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if n > limit {
		return nil, &ResponseTooLargeError{Limit: limit}
	}
	return buf.Bytes(), nil
}

func looksLikeXML(h http.Header, data []byte) bool {
	ct := strings.ToLower(h.Get("Content-Type"))
	if strings.Contains(ct, "xml") {
		return true
	}
	trimmed := bytes.TrimSpace(data)
	return len(trimmed) > 0 && trimmed[0] == '<'
}

func httpError(resp *http.Response, data []byte) *HTTPError {
	he := &HTTPError{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		he.Location = resp.Header.Get("Location")
	}
	snippet := strings.TrimSpace(string(data))
	if len(snippet) > 200 {
		snippet = snippet[:200]
	}
	he.Snippet = strings.ToValidUTF8(snippet, "")
	return he
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// mailboxLimiter is a counting semaphore per mailbox address. Entries exist only while in use,
// so memory follows the number of mailboxes being worked on, not the number ever seen.
type mailboxLimiter struct {
	max   int
	mu    sync.Mutex
	slots map[string]*mailboxSlot
}

type mailboxSlot struct {
	tokens chan struct{}
	users  int
}

func newMailboxLimiter(n int) *mailboxLimiter {
	return &mailboxLimiter{max: n, slots: make(map[string]*mailboxSlot)}
}

// acquire waits for a slot of address's mailbox and returns the function releasing it.
func (l *mailboxLimiter) acquire(ctx context.Context, address string) (func(), error) {
	key := strings.ToLower(address)
	l.mu.Lock()
	s := l.slots[key]
	if s == nil {
		s = &mailboxSlot{tokens: make(chan struct{}, l.max)}
		l.slots[key] = s
	}
	s.users++
	l.mu.Unlock()

	leave := func() {
		l.mu.Lock()
		s.users--
		if s.users == 0 {
			delete(l.slots, key)
		}
		l.mu.Unlock()
	}
	select {
	case s.tokens <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-s.tokens
			leave()
		})
	}, nil
}

// inUse reports the number of requests holding or awaiting a slot of address (for tests).
func (l *mailboxLimiter) inUse(address string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.slots[strings.ToLower(address)]; s != nil {
		return len(s.tokens)
	}
	return 0
}
